"""The MRZ corrector alone, on text with the errors OCR makes: letter/digit look-alikes in
typed fields, confusions the check digits must settle, miscounted fillers, stray lines, and
the cases it must refuse. No Tesseract here."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.emrtd.mrz import format_mrz, parse_mrz
from devices.sim.mrz_scenes import SPECIMENS, random_specimen
from devices.vision.mrz_ocr import MrzReading, correct_mrz

TD3 = format_mrz(SPECIMENS["utopia-td3"]).split("\n")
TD2 = format_mrz(SPECIMENS["utopia-td2"]).split("\n")
TD1 = format_mrz(SPECIMENS["chn-permit-td1"]).split("\n")


def with_chars(lines: list[str], *edits: tuple[int, int, str]) -> list[str]:
    out = list(lines)
    for row, column, char in edits:
        out[row] = out[row][:column] + char + out[row][column + 1:]
    return out


@pytest.mark.parametrize("lines", [TD3, TD2, TD1], ids=["TD3", "TD2", "TD1"])
def test_a_clean_mrz_reads_as_it_is(lines: list[str]) -> None:
    reading = correct_mrz(lines)
    assert reading is not None
    assert reading.lines == tuple(lines)
    assert reading.mrz == parse_mrz("\n".join(lines))
    assert reading.corrections == 0


@pytest.mark.parametrize(("lines", "edits"), [
    # TD3 line 2: birth date 740812, its check digit 2, expiry 120415
    (TD3, [(1, 15, "O"), (1, 17, "I")]),
    (TD3, [(1, 19, "Z"), (1, 22, "Z"), (1, 26, "S")]),
    # TD1 line 2: 851120 5 F 310815 8, composite 0
    (TD1, [(1, 0, "B"), (1, 4, "Z"), (1, 29, "O")]),
    # TD2 line 2: expiry 120415; the composite 6, read in lower case
    (TD2, [(1, 21, "I"), (1, 24, "A"), (1, 35, "g")]),
], ids=["td3-birth", "td3-digits", "td1-dates", "td2-expiry"])
def test_letters_read_in_digit_fields_become_digits(lines: list[str],
                                                     edits: list[tuple[int, int, str]]) -> None:
    reading = correct_mrz(with_chars(lines, *edits))
    assert reading is not None
    assert reading.lines == tuple(lines)
    assert reading.corrections == len(edits)


def test_digits_read_in_letter_fields_become_letters() -> None:
    # ERIKSSON read as ER1KSS0N and nationality UTO as UT0 come back; a 7 in the issuing
    # state looks like no letter and is not guessed at.
    seen = with_chars(TD3, (0, 7, "1"), (0, 11, "0"), (1, 12, "0"))
    reading = correct_mrz(seen)
    assert reading is not None
    assert reading.lines == tuple(TD3)
    assert reading.mrz.surname == "ERIKSSON"
    assert correct_mrz(with_chars(TD3, (0, 3, "7"))) is None


def test_the_check_digit_settles_a_letter_for_a_digit_in_the_document_number() -> None:
    # L898902C3 read as L8989O2C3: both O and 0 may stand in a document number.
    reading = correct_mrz(with_chars(TD3, (1, 5, "O")))
    assert reading is not None
    assert reading.mrz.document_number == "L898902C3"
    assert reading.corrections == 1


def test_two_corrections_that_pass_equally_give_nothing() -> None:
    # Document number L86012904 read as LB6012904: B->8 passes its check digit, and so do
    # 0->D and 1->I; the composite weighs the number as its own digit does, so nothing
    # tells them apart.
    truth = ["P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
             "L860129049UTO7408122F1204159ZE184226B<<<<<14"]
    assert parse_mrz("\n".join(truth))
    assert correct_mrz(with_chars(truth, (1, 1, "B"))) is None


def test_a_wrong_digit_that_no_confusion_explains_gives_nothing() -> None:
    assert correct_mrz(with_chars(TD3, (1, 14, "3"))) is None  # birth date 740812 -> 730812
    assert correct_mrz(with_chars(TD1, (1, 29, "7"))) is None  # the composite


def test_miscounted_fillers_are_refitted() -> None:
    # Tesseract reads long filler runs as K and counts them wrong.
    name = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<KK<<KKKKKKKKKKKK"
    data = TD3[1].replace("B<<<<<10", "B<<<<10")
    reading = correct_mrz([name, data])
    assert reading is not None
    assert reading.lines == tuple(TD3)
    assert reading.corrections > 0


def test_a_line_of_page_print_around_the_zone_is_left_out() -> None:
    reading = correct_mrz(["REPUBLICOFUTOPIAPASSPORT", *TD2, "  "])
    assert reading is not None
    assert reading.lines == tuple(TD2)


def test_lines_that_are_no_mrz_give_nothing() -> None:
    assert correct_mrz([]) is None
    assert correct_mrz(["HELLO", "WORLD"]) is None
    assert correct_mrz([TD3[0], TD3[1][:30]]) is None


def test_the_reading_shows_no_personal_data() -> None:
    reading = correct_mrz(TD3)
    assert isinstance(reading, MrzReading)
    shown = repr(reading) + str(reading)
    for secret in ("L898902C3", "ERIKSSON", "ANNA", "740812"):
        assert secret not in shown
    assert "TD3" in shown


_DIGIT_LOOKALIKE = {"0": "O", "1": "I", "2": "Z", "4": "A", "5": "S", "6": "G", "8": "B"}
_LETTER_LOOKALIKE = {letter: digit for digit, letter in _DIGIT_LOOKALIKE.items()}


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), fmt=st.sampled_from(["TD1", "TD2", "TD3"]),
       pick=st.integers(0, 10_000))
def test_any_look_alike_in_a_typed_field_is_undone(seed: int, fmt: str, pick: int) -> None:
    """A date or check digit read as its letter look-alike, or a name letter read as its
    digit look-alike, always comes back exactly."""
    text = format_mrz(random_specimen(fmt, np.random.default_rng(seed)))
    lines = text.split("\n")
    digit_fields = {"TD3": [(1, c) for c in (*range(13, 20), *range(21, 28), 43)],
                    "TD2": [(1, c) for c in (*range(13, 20), *range(21, 28), 35)],
                    "TD1": [(1, c) for c in (*range(0, 7), *range(8, 15), 29)]}[fmt]
    name_row = 2 if fmt == "TD1" else 0
    name_start = 0 if fmt == "TD1" else 5
    places = [(r, c, _DIGIT_LOOKALIKE[lines[r][c]]) for r, c in digit_fields
              if lines[r][c] in _DIGIT_LOOKALIKE]
    places += [(name_row, c, _LETTER_LOOKALIKE[ch]) for c, ch in enumerate(lines[name_row])
               if c >= name_start and ch in _LETTER_LOOKALIKE]
    if not places:
        return
    row, column, char = places[pick % len(places)]
    reading = correct_mrz(with_chars(lines, (row, column, char)))
    assert reading is not None
    assert reading.text == text
