"""The citizen identity number (公民身份号码) of GB 11643-1999.

Eighteen characters: a six-digit region code (地址码, GB/T 2260), the birth date YYYYMMDD
(出生日期码), a three-digit sequence (顺序码, odd for men, even for women) and a check
character (校验码) computed with ISO 7064 MOD 11-2, where ``X`` stands for ten.

``validate`` answers only "is this a well-formed number with the right check character";
``problems`` adds the sanity checks a card reader can make without a region table. Nothing
here logs or repeats the number it is given.
"""

from __future__ import annotations

from datetime import date

# ISO 7064 MOD 11-2: weight of position i (0-based from the left) is 2^(17-i) mod 11, so
# 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2. None is 0 mod 11, so any single changed digit is caught.
WEIGHTS: tuple[int, ...] = tuple(pow(2, 17 - i, 11) for i in range(17))
_CHECK_CHARS = "10X98765432"  # indexed by (sum of weighted digits) mod 11

# First two digits of GB/T 2260: the province-level division (省级行政区). 71 台湾, 81 香港,
# 82 澳门 and 83 (台湾居民居住证) appear on residence permits that use this same number format.
PROVINCES: frozenset[str] = frozenset({
    "11", "12", "13", "14", "15",
    "21", "22", "23",
    "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46",
    "50", "51", "52", "53", "54",
    "61", "62", "63", "64", "65",
    "71", "81", "82", "83",
})

# Nobody alive was born earlier; a date before this is a decoding or data error.
EARLIEST_BIRTH = date(1880, 1, 1)


def check_digit(first17: str) -> str:
    """The check character (``0``-``9`` or ``X``) for the first seventeen digits."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("expected seventeen ASCII digits")
    total = sum(int(ch) * weight for ch, weight in zip(first17, WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def validate(number: str) -> bool:
    """True if ``number`` has the GB 11643 form and its check character matches.

    A lower-case ``x`` is not accepted: the card stores upper case, and accepting both would
    let two spellings of one person through.
    """
    if len(number) != 18 or not number.isascii():
        return False
    body, last = number[:17], number[17]
    if not body.isdigit() or not (last.isdigit() or last == "X"):
        return False
    return check_digit(body) == last


def birth_date(number: str) -> date | None:
    """The birth date the number encodes, or None if those eight digits are not a date."""
    digits = number[6:14]
    if len(digits) != 8 or not digits.isascii() or not digits.isdigit():
        return None
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def problems(number: str, today: date | None = None) -> list[str]:
    """What is wrong with ``number``: a list of ``format``, ``checkDigit``, ``region``,
    ``birthDate``; empty when it passes. The words are safe to log, the number is not."""
    if (len(number) != 18 or not number.isascii() or not number[:17].isdigit()
            or not (number[17].isdigit() or number[17] == "X")):
        return ["format"]
    found: list[str] = []
    if not validate(number):
        found.append("checkDigit")
    if number[:2] not in PROVINCES:
        found.append("region")
    born = birth_date(number)
    if born is None or not EARLIEST_BIRTH <= born <= (today or date.today()):
        found.append("birthDate")
    return found
