"""MRZ parsing and check digits: the ICAO specimens (Parts 4 and 5), every check digit that
can fail, malformed input, and properties of the check digit."""

from __future__ import annotations

import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from devices.emrtd.mrz import (
    Mrz,
    MrzError,
    access_from_fields,
    check_digit,
    format_mrz,
    parse_mrz,
)
from devices.identity import MrzAccess

TD3 = ("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\n"
       "L898902C36UTO7408122F1204159ZE184226B<<<<<10")
TD1 = ("I<UTOD231458907<<<<<<<<<<<<<<<\n"
       "7408122F1204159UTO<<<<<<<<<<<6\n"
       "ERIKSSON<<ANNA<MARIA<<<<<<<<<<")
TD2 = ("I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\n"
       "D231458907UTO7408122F1204159<<<<<<<6")
# Part 5's long document number D23145890734: nine characters in the field, a filler for
# its check digit, the rest and the check digit (9) in the optional data.
TD1_LONG = ("I<UTOD23145890<7349<<<<<<<<<<<\n"
            "3407127M9507122UTO<<<<<<<<<<<2\n"
            "STEVENSON<<PETER<JOHN<<<<<<<<<")


def with_char(text: str, line: int, column: int, char: str) -> str:
    lines = text.split("\n")
    row = lines[line]
    lines[line] = row[:column] + char + row[column + 1:]
    return "\n".join(lines)


def other_digit(text: str, line: int, column: int) -> str:
    current = text.split("\n")[line][column]
    return with_char(text, line, column, "5" if current != "5" else "6")


# -- specimens ------------------------------------------------------------------------------
def test_td3_specimen() -> None:
    mrz = parse_mrz(TD3)
    assert mrz == Mrz(format="TD3", document_code="P", issuing_state="UTO",
                      document_number="L898902C3", birth_date="740812", sex="F",
                      expiry_date="120415", nationality="UTO", surname="ERIKSSON",
                      given_names="ANNA MARIA", optional_data="ZE184226B")
    assert mrz.access() == MrzAccess("L898902C3", "740812", "120415")


def test_td1_specimen() -> None:
    mrz = parse_mrz(TD1)
    assert (mrz.format, mrz.document_code, mrz.issuing_state, mrz.document_number) == \
        ("TD1", "I", "UTO", "D23145890")
    assert (mrz.birth_date, mrz.sex, mrz.expiry_date, mrz.nationality) == \
        ("740812", "F", "120415", "UTO")
    assert (mrz.surname, mrz.given_names, mrz.optional_data, mrz.optional_data_2) == \
        ("ERIKSSON", "ANNA MARIA", "", "")


def test_td2_specimen() -> None:
    mrz = parse_mrz(TD2)
    assert (mrz.format, mrz.document_number, mrz.birth_date, mrz.expiry_date) == \
        ("TD2", "D23145890", "740812", "120415")
    assert (mrz.surname, mrz.given_names, mrz.sex) == ("ERIKSSON", "ANNA MARIA", "F")


def test_td1_long_document_number_continues_in_the_optional_data() -> None:
    mrz = parse_mrz(TD1_LONG)
    assert mrz.document_number == "D23145890734"
    assert mrz.optional_data == ""
    assert (mrz.surname, mrz.given_names) == ("STEVENSON", "PETER JOHN")
    assert mrz.access().document_number == "D23145890734"


def test_td1_long_document_number_with_a_wrong_check_digit() -> None:
    with pytest.raises(MrzError) as err:
        parse_mrz(with_char(TD1_LONG, 0, 18, "8"))
    assert err.value.field == "document_number"


@pytest.mark.parametrize("text", [TD3, TD1, TD2, TD1_LONG])
def test_format_gives_back_the_specimen(text: str) -> None:
    assert format_mrz(parse_mrz(text)) == text


@pytest.mark.parametrize("text", [TD3, TD1, TD2])
def test_tolerates_surrounding_whitespace_trailing_spaces_and_crlf(text: str) -> None:
    messy = "\n  " + text.replace("\n", "   \r\n") + "  \n\n"
    assert parse_mrz(messy) == parse_mrz(text)


@pytest.mark.parametrize("text", [TD3, TD1, TD2])
def test_accepts_the_unbroken_form_dg1_stores(text: str) -> None:
    assert parse_mrz(text.replace("\n", "")) == parse_mrz(text)


def test_td3_personal_number_of_fillers_may_have_a_filler_check_digit() -> None:
    text = ("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\n"
            "L898902C36UTO7408122F1204159<<<<<<<<<<<<<<<8")
    assert check_digit("L898902C36" + "7408122" + "1204159" + "<" * 15) == "8"
    assert parse_mrz(text).optional_data == ""


# -- check digits that fail -----------------------------------------------------------------
@pytest.mark.parametrize(("text", "line", "column", "field"), [
    (TD3, 1, 9, "document_number"),
    (TD3, 1, 19, "birth_date"),
    (TD3, 1, 27, "expiry_date"),
    (TD3, 1, 42, "optional_data"),
    (TD3, 1, 43, "composite"),
    (TD1, 0, 14, "document_number"),
    (TD1, 1, 6, "birth_date"),
    (TD1, 1, 14, "expiry_date"),
    (TD1, 1, 29, "composite"),
    (TD2, 1, 9, "document_number"),
    (TD2, 1, 19, "birth_date"),
    (TD2, 1, 27, "expiry_date"),
    (TD2, 1, 35, "composite"),
])
def test_each_check_digit_failure_is_named(text: str, line: int, column: int,
                                           field: str) -> None:
    with pytest.raises(MrzError) as err:
        parse_mrz(other_digit(text, line, column))
    assert err.value.field == field
    assert str(err.value).startswith(field)
    assert "check digit" in str(err.value)


@pytest.mark.parametrize(("line", "column", "field"), [
    (1, 0, "document_number"),  # a data character changed, its check digit left alone
    (1, 14, "birth_date"),
    (1, 22, "expiry_date"),
    (1, 30, "optional_data"),
])
def test_changed_data_fails_its_own_check_digit(line: int, column: int, field: str) -> None:
    original = TD3.split("\n")[line][column]
    with pytest.raises(MrzError) as err:
        parse_mrz(with_char(TD3, line, column, "9" if original != "9" else "8"))
    assert err.value.field == field


def test_changed_nationality_is_not_covered_by_a_check_digit() -> None:
    # Nationality and sex are outside every check digit (Part 3): parsing accepts them.
    assert parse_mrz(with_char(TD3, 1, 10, "D")).nationality == "DTO"


def test_error_messages_carry_no_personal_data() -> None:
    for text, line, column in ((TD3, 1, 9), (TD3, 1, 19), (TD1, 1, 29)):
        with pytest.raises(MrzError) as err:
            parse_mrz(other_digit(text, line, column))
        message = str(err.value)
        for secret in ("L898902C", "D23145890", "ERIKSSON", "740812", "120415"):
            assert secret not in message


# -- malformed ------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "field"), [
    ("", "format"),
    ("P<UTOERIKSSON", "format"),
    (TD3.split("\n")[0] + "\n" + TD2.split("\n")[1], "format"),  # 44 + 36
    (TD3 + "\n" + TD3.split("\n")[1], "format"),  # three TD3 lines
    (TD3.lower(), "characters"),
    (with_char(TD3, 0, 7, "-"), "characters"),
    (with_char(TD3, 0, 7, "É"), "characters"),
    (TD3.replace("<", " "), "format"),
    (with_char(TD3, 0, 0, "V"), "document_code"),  # a visa
    (with_char(TD3, 0, 0, "1"), "document_code"),
    (with_char(TD3, 1, 20, "Q"), "sex"),
])
def test_malformed_input(text: str, field: str) -> None:
    with pytest.raises(MrzError) as err:
        parse_mrz(text)
    assert err.value.field == field


def test_impossible_month_with_a_matching_check_digit() -> None:
    line = TD3.split("\n")[1]
    birth = "741312"
    body = line[:13] + birth + check_digit(birth) + line[20:43]
    composite = check_digit(body[0:10] + body[13:20] + body[21:43])
    with pytest.raises(MrzError) as err:
        parse_mrz(TD3.split("\n")[0] + "\n" + body + composite)
    assert err.value.field == "birth_date"


def test_mrz_error_is_a_value_error() -> None:
    assert issubclass(MrzError, ValueError)


def test_repr_hides_personal_data() -> None:
    text = repr(parse_mrz(TD3))
    assert "ERIKSSON" not in text and "L898902C" not in text


# -- fields typed by hand -------------------------------------------------------------------
def test_access_from_fields() -> None:
    assert access_from_fields("L898902C3", "740812", "120415") == \
        MrzAccess("L898902C3", "740812", "120415")
    assert access_from_fields("D23145890734", "340712", "950712").document_number == \
        "D23145890734"


@pytest.mark.parametrize(("number", "birth", "expiry", "field"), [
    ("", "740812", "120415", "document_number"),
    ("<<<", "740812", "120415", "document_number"),
    ("L8989-02C", "740812", "120415", "document_number"),
    ("l898902c3", "740812", "120415", "document_number"),
    ("A" * 23, "740812", "120415", "document_number"),
    ("L898902C3", "74081", "120415", "birth_date"),
    ("L898902C3", "7408122", "120415", "birth_date"),
    ("L898902C3", "74O812", "120415", "birth_date"),
    ("L898902C3", "741312", "120415", "birth_date"),
    ("L898902C3", "740800", "120415", "birth_date"),
    ("L898902C3", "740812", "12041", "expiry_date"),
    ("L898902C3", "740812", "١٢٠٤١٥", "expiry_date"),  # non-ASCII digits
])
def test_access_from_fields_rejects(number: str, birth: str, expiry: str, field: str) -> None:
    with pytest.raises(MrzError) as err:
        access_from_fields(number, birth, expiry)
    assert err.value.field == field


# -- properties -----------------------------------------------------------------------------
MRZ_CHARS = string.ascii_uppercase + string.digits + "<"
mrz_text = st.text(alphabet=MRZ_CHARS, max_size=40)


def reference_check_digit(s: str) -> str:
    # Independent formulation: base-36 value of each character, fillers zero.
    values = [0 if c == "<" else int(c, 36) for c in s]
    return str(sum(v * (7, 3, 1)[i % 3] for i, v in enumerate(values)) % 10)


@given(mrz_text)
def test_check_digit_matches_the_reference(s: str) -> None:
    digit = check_digit(s)
    assert len(digit) == 1 and digit.isdigit()
    assert digit == reference_check_digit(s)


@given(mrz_text, st.integers(min_value=0, max_value=5))
def test_trailing_fillers_do_not_change_the_check_digit(s: str, fillers: int) -> None:
    assert check_digit(s + "<" * fillers) == check_digit(s)


@given(st.text(alphabet=MRZ_CHARS, min_size=1, max_size=40), st.data())
def test_every_single_substitution_that_changes_the_value_mod_10_is_caught(
        s: str, data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(s) - 1))
    replacement = data.draw(st.sampled_from(MRZ_CHARS))
    old = 0 if s[index] == "<" else int(s[index], 36)
    new = 0 if replacement == "<" else int(replacement, 36)
    assume((old - new) % 10 != 0)
    # The weights 7, 3, 1 are units mod 10, so such a change always moves the digit.
    assert check_digit(s[:index] + replacement + s[index + 1:]) != check_digit(s)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz-. é", min_size=1, max_size=5))
def test_check_digit_rejects_characters_outside_the_mrz_set(bad: str) -> None:
    with pytest.raises(MrzError):
        check_digit("L898" + bad)


alnum = string.ascii_uppercase + string.digits
word = st.text(alphabet=string.ascii_uppercase, min_size=1, max_size=8)


@st.composite
def documents(draw: st.DrawFn) -> Mrz:
    fmt = draw(st.sampled_from(["TD1", "TD2", "TD3"]))
    longest = 9 if fmt == "TD3" else 14
    number = draw(st.text(alphabet=alnum, min_size=1, max_size=longest))
    overflow = len(number) - 9 + 2 if len(number) > 9 else 0
    room = {"TD1": 15, "TD2": 7, "TD3": 14}[fmt] - overflow
    optional = draw(st.text(alphabet=alnum, max_size=max(0, room)))
    date = st.dates().map(lambda d: d.strftime("%y%m%d"))
    surname = " ".join(draw(st.lists(word, min_size=1, max_size=2)))
    given_names = " ".join(draw(st.lists(word, max_size=2)))
    name_room = {"TD1": 30, "TD2": 31, "TD3": 39}[fmt]
    assume(len(surname) + 2 + len(given_names) <= name_room)
    code = draw(st.sampled_from(["P", "PO", "I", "AC", "C", "ID"] if fmt == "TD3"
                                else ["I", "AC", "C", "ID", "CS"]))
    state = st.text(alphabet=string.ascii_uppercase, min_size=3, max_size=3)
    return Mrz(format=fmt, document_code=code, issuing_state=draw(state),
               document_number=number, birth_date=draw(date), sex=draw(st.sampled_from("MF<")),
               expiry_date=draw(date), nationality=draw(state), surname=surname,
               given_names=given_names, optional_data=optional,
               optional_data_2=draw(st.text(alphabet=alnum, max_size=11)) if fmt == "TD1"
               else "")


@given(documents())
def test_format_then_parse_round_trips(mrz: Mrz) -> None:
    text = format_mrz(mrz)
    rows, width = {"TD1": (3, 30), "TD2": (2, 36), "TD3": (2, 44)}[mrz.format]
    assert [len(line) for line in text.split("\n")] == [width] * rows
    assert parse_mrz(text) == mrz
