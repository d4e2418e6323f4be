"""Machine-readable zones of ICAO 9303 travel documents (Parts 3, 4 and 5): TD3 passports
(2 x 44), TD2 (2 x 36) and TD1 cards (3 x 30, e.g. card-format travel permits 通行证).

The MRZ is personal data. ``MrzError`` messages name the field that is wrong (check digit or
layout), never its content, so they can be shown on screen and written to a log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devices.identity import MrzAccess

ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<")
_WEIGHTS = (7, 3, 1)
# Lines x characters per format; DG1 stores the same text without line breaks.
SHAPES: dict[str, tuple[int, int]] = {"TD1": (3, 30), "TD2": (2, 36), "TD3": (2, 44)}
DOCUMENT_NUMBER_MAX = 22  # 9 in the field, the rest carried in the optional data (TD1/TD2)
_SEXES = frozenset("MFX<")


class MrzError(ValueError):
    """An MRZ that is malformed or fails a check digit. ``field`` is a stable code
    (``document_number``, ``birth_date``, ``expiry_date``, ``optional_data``, ``composite``,
    ``format``, ``characters``, ``document_code``, ``sex``, ``nationality``,
    ``issuing_state``, ``name``); the message begins with it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


def _value(char: str) -> int:
    if "0" <= char <= "9":
        return ord(char) - ord("0")
    if "A" <= char <= "Z":
        return ord(char) - ord("A") + 10
    if char == "<":
        return 0
    raise MrzError("characters", "only A-Z, 0-9 and < may appear in an MRZ")


def check_digit(s: str) -> str:
    """Part 3 4.9: weights 7, 3, 1 repeating; digits count as themselves, A-Z as 10-35,
    the filler < as 0; the sum modulo 10."""
    return str(sum(_value(c) * _WEIGHTS[i % 3] for i, c in enumerate(s)) % 10)


def _check(field: str, data: str, digit: str, *, filler_ok: bool = False) -> None:
    # A filler in place of a digit is allowed only over an all-filler field (an empty
    # optional data / personal number field, Part 4 4.2.2).
    if filler_ok and digit == "<" and set(data) <= {"<"}:
        return
    if not digit.isdigit():
        raise MrzError(field, "check digit is not a digit")
    if check_digit(data) != digit:
        raise MrzError(field, "check digit does not match")


@dataclass(frozen=True)
class Mrz:
    """The fields of an MRZ with fillers removed (``<`` inside names becomes a space).
    ``optional_data`` is the personal number (TD3), the optional data (TD2) or the line-1
    optional data (TD1); ``optional_data_2`` is TD1's line-2 optional data."""

    format: str  # "TD1" | "TD2" | "TD3"
    document_code: str  # "P", "I", "AC", "C" ...
    issuing_state: str
    document_number: str
    birth_date: str  # YYMMDD; unknown parts stay "<"
    sex: str  # "M", "F" or "<" (unspecified; some issuers write "X")
    expiry_date: str  # YYMMDD
    nationality: str
    surname: str
    given_names: str
    optional_data: str
    optional_data_2: str = ""

    def access(self) -> MrzAccess:
        """The three fields that open the chip with Basic Access Control."""
        return MrzAccess(self.document_number, self.birth_date, self.expiry_date)

    def __repr__(self) -> str:
        # Personal data: only the shape of the document goes into a repr.
        return f"Mrz({self.format}, {self.document_code}, {self.issuing_state})"


def _strip(field: str) -> str:
    return field.rstrip("<")


def _name(field: str) -> tuple[str, str]:
    surname, _, given = field.partition("<<")
    return _words(surname), _words(given)


def _words(part: str) -> str:
    return " ".join(w for w in part.split("<") if w)


def _lines(text: str) -> list[str]:
    if not isinstance(text, str):
        raise MrzError("format", "an MRZ is text")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) == 1:
        # DG1 and some scanners give the MRZ as one run of 90, 72 or 88 characters.
        for rows, width in SHAPES.values():
            if len(lines[0]) == rows * width:
                return [lines[0][i * width:(i + 1) * width] for i in range(rows)]
    return lines


def _format_of(lines: list[str]) -> str:
    for name, (rows, width) in SHAPES.items():
        if len(lines) == rows and all(len(line) == width for line in lines):
            return name
    shape = " x ".join(str(len(line)) for line in lines) or "no lines"
    raise MrzError("format", f"lines of {shape} characters are not TD1 (3 x 30), "
                             "TD2 (2 x 36) or TD3 (2 x 44)")


def _date(field: str, value: str, *, unknown_ok: bool) -> None:
    allowed = "0123456789<" if unknown_ok else "0123456789"
    if any(c not in allowed for c in value):
        raise MrzError(field, "date is not YYMMDD")
    month, day = value[2:4], value[4:6]
    if month.isdigit() and not 1 <= int(month) <= 12:
        raise MrzError(field, "month is not 01-12")
    if day.isdigit() and not 1 <= int(day) <= 31:
        raise MrzError(field, "day is not 01-31")


def _code(field: str, value: str) -> None:
    if not re.fullmatch(r"[A-Z<]+", value):
        raise MrzError(field, "must be letters or fillers")


def parse_mrz(text: str) -> Mrz:
    """Parse and check an MRZ given as its lines (newline separated; surrounding whitespace
    and trailing spaces ignored) or as one unbroken string as DG1 stores it. Every check digit
    is verified; ``MrzError`` names the first one that fails."""
    lines = _lines(text)
    fmt = _format_of(lines)
    if any(c not in ALPHABET for line in lines for c in line):
        raise MrzError("characters", "only A-Z, 0-9 and < may appear in an MRZ")
    if lines[0][0] == "V":
        raise MrzError("document_code", "a visa (MRV) is not a chip document read here")
    if fmt == "TD1":
        return _parse_td1(lines)
    return _parse_td23(lines, fmt)


def _long_number(head: str, overflow: str) -> tuple[str, str, str]:
    """Part 5 4.2.4 / Part 6: when the document number has more than 9 characters, the
    check-digit position holds a filler and the optional data begins with the remaining
    characters followed by the check digit and a filler. Returns (number, digit, rest)."""
    end = overflow.find("<")
    if end < 2:
        raise MrzError("document_number", "long document number has no check digit "
                                          "in the optional data")
    return head + overflow[:end - 1], overflow[end - 1], overflow[end + 1:]


def _parse_td1(lines: list[str]) -> Mrz:
    l1, l2, l3 = lines
    number, digit, optional = l1[5:14], l1[14], l1[15:30]
    if digit == "<":
        number, digit, optional = _long_number(number, optional)
    _check("document_number", number, digit)
    _date("birth_date", l2[0:6], unknown_ok=True)
    _check("birth_date", l2[0:6], l2[6])
    _date("expiry_date", l2[8:14], unknown_ok=False)
    _check("expiry_date", l2[8:14], l2[14])
    # The composite covers line 1 from the document number on and line 2 up to the
    # optional data, skipping sex and nationality (Part 5 4.2.2.1).
    _check("composite", l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29], l2[29])
    surname, given = _name(l3)
    return _finish(
        format="TD1", document_code=l1[0:2], issuing_state=l1[2:5], document_number=number,
        birth_date=l2[0:6], sex=l2[7], expiry_date=l2[8:14], nationality=l2[15:18],
        surname=surname, given_names=given, optional_data=_strip(optional),
        optional_data_2=_strip(l2[18:29]))


def _parse_td23(lines: list[str], fmt: str) -> Mrz:
    l1, l2 = lines
    width = len(l2)
    number, digit = l2[0:9], l2[9]
    optional_end = width - 2 if fmt == "TD3" else width - 1
    optional = l2[28:optional_end]
    if fmt == "TD3":
        _check("document_number", number, digit)
    elif digit == "<":
        number, digit, optional = _long_number(number, optional)
        _check("document_number", number, digit)
    else:
        _check("document_number", number, digit)
    _date("birth_date", l2[13:19], unknown_ok=True)
    _check("birth_date", l2[13:19], l2[19])
    _date("expiry_date", l2[21:27], unknown_ok=False)
    _check("expiry_date", l2[21:27], l2[27])
    if fmt == "TD3":
        _check("optional_data", l2[28:42], l2[42], filler_ok=True)
    _check("composite", l2[0:10] + l2[13:20] + l2[21:width - 1], l2[width - 1])
    surname, given = _name(l1[5:])
    return _finish(
        format=fmt, document_code=l1[0:2], issuing_state=l1[2:5], document_number=number,
        birth_date=l2[13:19], sex=l2[20], expiry_date=l2[21:27], nationality=l2[10:13],
        surname=surname, given_names=given, optional_data=_strip(optional))


def _finish(**fields: str) -> Mrz:
    code = fields["document_code"]
    if not re.fullmatch(r"[A-Z][A-Z<]", code):
        raise MrzError("document_code", "must be a letter and a letter or filler")
    _code("issuing_state", fields["issuing_state"])
    _code("nationality", fields["nationality"])
    if fields["sex"] not in _SEXES:
        raise MrzError("sex", "must be M, F, X or <")
    if not fields["surname"]:
        raise MrzError("name", "the primary identifier (surname) is empty")
    fields["document_code"] = _strip(code)
    fields["document_number"] = _strip(fields["document_number"])
    if not fields["document_number"]:
        raise MrzError("document_number", "is empty")
    return Mrz(**fields)


def access_from_fields(document_number: str, birth_date: str, expiry_date: str) -> MrzAccess:
    """The BAC key fields typed from the data page: the document number as printed (up to
    22 characters; fillers at its end ignored), birth and expiry dates as YYMMDD."""
    number = document_number.rstrip("<")
    if not number:
        raise MrzError("document_number", "is empty")
    if any(c not in ALPHABET for c in number):
        raise MrzError("document_number", "only A-Z, 0-9 and < are allowed")
    if len(number) > DOCUMENT_NUMBER_MAX:
        raise MrzError("document_number", f"longer than {DOCUMENT_NUMBER_MAX} characters")
    for field, value in (("birth_date", birth_date), ("expiry_date", expiry_date)):
        if len(value) != 6 or not value.isascii() or not value.isdigit():
            raise MrzError(field, "must be six digits YYMMDD")
        _date(field, value, unknown_ok=False)
    return MrzAccess(number, birth_date, expiry_date)


def format_mrz(mrz: Mrz) -> str:
    """The MRZ text (lines joined by newlines) with every check digit computed: for test
    documents and simulated chips. Long names are truncated to the field; document numbers
    longer than 9 characters use the TD1/TD2 overflow rule."""
    width = SHAPES[mrz.format][1]
    name = (mrz.surname.replace(" ", "<") + "<<" + mrz.given_names.replace(" ", "<"))
    code = mrz.document_code.ljust(2, "<")
    number = mrz.document_number
    if len(number) > 9 and mrz.format == "TD3":
        raise MrzError("document_number", "TD3 has no room for more than 9 characters")
    if len(number) > 9:
        field, digit = number[:9], "<"
        optional = number[9:] + check_digit(number) + "<" + mrz.optional_data
    else:
        field = number.ljust(9, "<")
        digit = check_digit(field)
        optional = mrz.optional_data
    room = {"TD1": 15, "TD2": 7, "TD3": 14}[mrz.format]
    if len(optional) > room or len(mrz.optional_data_2) > 11:
        raise MrzError("optional_data", "does not fit the field")
    if mrz.format == "TD1":
        l1 = (code + mrz.issuing_state + field + digit + optional.ljust(15, "<"))[:30]
        l2 = (mrz.birth_date + check_digit(mrz.birth_date) + mrz.sex + mrz.expiry_date
              + check_digit(mrz.expiry_date) + mrz.nationality.ljust(3, "<")
              + mrz.optional_data_2.ljust(11, "<"))
        l2 += check_digit(l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29])
        l3 = name.ljust(30, "<")[:30]
        return "\n".join((l1, l2, l3))
    l1 = (code + mrz.issuing_state + name).ljust(width, "<")[:width]
    body = (field + digit + mrz.nationality.ljust(3, "<") + mrz.birth_date
            + check_digit(mrz.birth_date) + mrz.sex + mrz.expiry_date
            + check_digit(mrz.expiry_date))
    if mrz.format == "TD3":
        personal = optional.ljust(14, "<")
        personal_digit = "<" if set(personal) == {"<"} else check_digit(personal)
        body += personal + personal_digit
    else:
        body += optional.ljust(7, "<")
    l2 = body + check_digit(body[0:10] + body[13:20] + body[21:])
    return "\n".join((l1, l2))
