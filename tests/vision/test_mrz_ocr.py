"""Reading the MRZ from camera frames of rendered specimen pages, through the real Tesseract:
every format clean and moderately degraded, a page held upside down, frames without an MRZ,
blotted check digits (never a wrong reading), and OCR that fails. Read rates over many frames
are measured outside the tests (see the issue's closing note)."""

from __future__ import annotations

import functools
import logging

import numpy as np
import pytesseract
import pytest

from devices.emrtd.mrz import parse_mrz
from devices.sim.mrz_scenes import (
    CLEAN,
    MODERATE,
    SPECIMENS,
    Conditions,
    MrzScene,
    page_without_mrz_scene,
)
from devices.sim.mrz_scenes import mrz_scene as draw_scene
from devices.vision.mrz_ocr import read_mrz, read_mrz_text

FORMATS = ["utopia-td3", "utopia-td2", "chn-permit-td1"]


@functools.cache
def mrz_scene(specimen: str, seed: int, conditions: Conditions = CLEAN,
              smudge: tuple[tuple[int, int], ...] = ()) -> MrzScene:
    return draw_scene(specimen, seed, conditions, smudge)


@pytest.mark.parametrize("specimen", FORMATS)
def test_a_clean_frame_reads_back_exactly(specimen: str) -> None:
    scene = mrz_scene(specimen, seed=1, conditions=CLEAN)
    reading = read_mrz(scene.image)
    assert reading is not None
    assert reading.text == scene.text
    assert reading.mrz == parse_mrz(scene.text)


@pytest.mark.parametrize("specimen", FORMATS)
def test_a_moderately_degraded_frame_reads_back_exactly(specimen: str) -> None:
    # Tilted up to 8 degrees, perspective, blur, noise, uneven light, JPEG.
    scene = mrz_scene(specimen, seed=2, conditions=MODERATE)
    reading = read_mrz(scene.image)
    assert reading is not None
    assert reading.text == scene.text
    assert reading.mrz.access() == SPECIMENS[specimen].access()


def test_a_page_held_upside_down_reads_the_same() -> None:
    scene = mrz_scene("chn-passport-td3", seed=2, conditions=MODERATE)
    reading = read_mrz(np.ascontiguousarray(scene.image[::-1, ::-1]))
    assert reading is not None
    assert reading.text == scene.text


def test_frames_without_an_mrz_give_nothing_and_cost_no_ocr(monkeypatch) -> None:
    def no_ocr(*args: object, **kwargs: object) -> str:
        raise AssertionError("Tesseract ran on a frame without an MRZ")

    monkeypatch.setattr(pytesseract, "image_to_string", no_ocr)
    desk = np.random.default_rng(5).integers(60, 160, (720, 1280, 3), dtype=np.uint8)
    assert read_mrz(desk) is None
    assert read_mrz(page_without_mrz_scene(3, MODERATE).image) is None
    assert read_mrz(np.zeros((720, 1280, 3), np.uint8)) is None


@pytest.mark.parametrize(("specimen", "cells"), [
    ("utopia-td3", ((1, 9),)),  # the document number's check digit
    ("chn-passport-td3", ((1, 15), (1, 16))),  # two digits of the birth date
    ("chn-permit-td1", ((1, 29),)),  # the composite check digit
])
def test_a_blotted_check_region_never_reads_wrong(specimen: str,
                                                  cells: tuple[tuple[int, int], ...]) -> None:
    scene = mrz_scene(specimen, seed=4, conditions=CLEAN, smudge=cells)
    reading = read_mrz(scene.image)
    assert reading is None or reading.text == scene.text


def test_the_flows_reader_gives_the_corrected_text() -> None:
    scene = mrz_scene("utopia-td3", seed=1)
    assert read_mrz_text(scene.image) == scene.text
    assert read_mrz_text(page_without_mrz_scene(1).image) is None


def test_when_tesseract_fails_nothing_is_read_and_nothing_personal_logged(monkeypatch,
                                                                          caplog) -> None:
    def missing(*args: object, **kwargs: object) -> str:
        raise pytesseract.TesseractNotFoundError()

    monkeypatch.setattr(pytesseract, "image_to_string", missing)
    scene = mrz_scene("utopia-td3", seed=1)
    with caplog.at_level(logging.DEBUG, logger="devices.vision"):
        assert read_mrz(scene.image) is None
    assert "TesseractNotFoundError" in caplog.text
    assert "L898902C3" not in caplog.text and "ERIKSSON" not in caplog.text


def test_only_a_bgr_frame_is_accepted() -> None:
    with pytest.raises(ValueError):
        read_mrz(np.zeros((720, 1280), np.uint8))
    with pytest.raises(ValueError):
        read_mrz(np.zeros((720, 1280, 3), np.float32))
