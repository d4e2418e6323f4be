"""GB 11643 citizen identity numbers: check character and sanity checks."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices import idnumber

# The two worked examples printed in GB 11643-1999 itself.
STANDARD_EXAMPLES = ["11010519491231002X", "440524188001010014"]

digits17 = st.text(alphabet="0123456789", min_size=17, max_size=17)


@pytest.mark.parametrize("number", STANDARD_EXAMPLES)
def test_standard_examples_are_valid(number):
    assert idnumber.validate(number)
    assert idnumber.check_digit(number[:17]) == number[17]
    assert idnumber.problems(number) == []


def test_weights_are_those_of_the_standard():
    assert idnumber.WEIGHTS == (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


@pytest.mark.parametrize("number", [
    "11010519491231002x",   # lower-case x is not what the card holds
    "1101051949123100X2",   # X not in the last place
    "11010519491231002",    # 17 characters
    "110105194912310021X",  # 19 characters
    "１１０１０５１９４９１２３１００２X",  # full-width digits
    "",
])
def test_malformed_numbers_are_rejected(number):
    assert not idnumber.validate(number)
    assert idnumber.problems(number) == ["format"]


def test_check_digit_rejects_bad_input():
    with pytest.raises(ValueError):
        idnumber.check_digit("1234")
    with pytest.raises(ValueError):
        idnumber.check_digit("1101051949123100X")


@given(digits17)
def test_check_digit_makes_a_valid_number(first17):
    assert idnumber.validate(first17 + idnumber.check_digit(first17))


@given(digits17, st.integers(0, 17), st.sampled_from("0123456789X"))
def test_any_single_character_change_is_caught(first17, position, replacement):
    number = first17 + idnumber.check_digit(first17)
    if position < 17 and replacement == "X":
        replacement = "0"
    changed = number[:position] + replacement + number[position + 1:]
    if changed != number:
        assert not idnumber.validate(changed)


def test_region_and_birth_date_sanity():
    def with_check(first17: str) -> str:
        return first17 + idnumber.check_digit(first17)

    today = date(2025, 6, 1)
    assert idnumber.problems(with_check("11010119900307123"), today) == []
    assert idnumber.problems(with_check("99010119900307123"), today) == ["region"]
    assert idnumber.problems(with_check("11010119900230123"), today) == ["birthDate"]
    assert idnumber.problems(with_check("11010120300101123"), today) == ["birthDate"]
    assert idnumber.problems(with_check("11010118000101123"), today) == ["birthDate"]
    wrong = with_check("11010119900307123")
    wrong = wrong[:17] + ("0" if wrong[17] != "0" else "1")
    assert idnumber.problems(wrong, today) == ["checkDigit"]


def test_birth_date():
    assert idnumber.birth_date("11010519491231002X") == date(1949, 12, 31)
    assert idnumber.birth_date("110105194913310020") is None
