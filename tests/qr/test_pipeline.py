"""The pipeline reads every condition of the hard set, more than raw zxing-cpp, never falsely."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from devices.qr.decoders import Detection, ZxingDecoder
from devices.qr.pipeline import MEMORY, OUTLINE, SHARPEN, STAGES, QrPipeline, to_gray
from devices.qr.regions import MAX_UPSCALE
from devices.sim.qr_scenes import NO_CODE
from tests.qr.frames import clip, frame

# One frame of each condition (index into the generated set) and whether raw zxing-cpp reads it:
# the frames raw zxing-cpp misses are the pipeline's second pass at work.
READABLE = [("clean", 0, True), ("rotated", 0, True), ("perspective", 0, True),
            ("blur", 1, False), ("noise", 1, False), ("low_contrast", 0, True),
            ("glare", 0, True), ("small", 2, False), ("perspective", 7, False)]


def raw_reads(image: np.ndarray) -> list[str]:
    return ZxingDecoder().decode(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))


@pytest.mark.parametrize(("condition", "index", "raw"), READABLE,
                         ids=[f"{c}-{i}" for c, i, _ in READABLE])
def test_each_condition_decodes(condition, index, raw):
    sample = frame(condition, index)
    pipeline = QrPipeline()
    assert pipeline.decode(sample.image) == [sample.expected]
    assert (sample.expected in raw_reads(sample.image)) is raw
    assert (pipeline.last_stage == "first") is raw


def test_strong_perspective_needs_the_outline_and_sharpening():
    sample = frame("perspective", 7)
    assert QrPipeline().decode(sample.image) == [sample.expected]
    assert QrPipeline(stages=STAGES - {OUTLINE}).decode(sample.image) == []
    assert QrPipeline(stages=STAGES - {SHARPEN}).decode(sample.image) == []


def test_without_enhancement_it_is_the_raw_decoder():
    sample = frame("small", 2)
    assert QrPipeline(enhance=False).decode(sample.image) == []
    assert QrPipeline(enhance=False).decode(frame("clean", 1).image) == [frame("clean", 1).expected]


@pytest.mark.parametrize("index", range(6))
def test_frames_without_a_code_read_nothing(index):
    image = frame(NO_CODE, index).image
    pipeline = QrPipeline()
    assert pipeline.decode(image) == []
    assert [pipeline.feed(image) for _ in range(4)] == [None] * 4


def test_grey_frames_are_read_too():
    sample = frame("clean", 0)
    assert QrPipeline().decode(cv2.cvtColor(sample.image, cv2.COLOR_BGR2GRAY)) == [sample.expected]
    with pytest.raises(ValueError):
        to_gray(np.zeros((4, 4, 4), np.uint8))


# -- streaming ---------------------------------------------------------------------------------
def test_feed_confirms_on_the_second_agreeing_frame_and_only_once():
    c = clip("clean", 0, 4)
    pipeline = QrPipeline()
    assert [pipeline.feed(f) for f in c.frames] == [None, c.expected, None, None]


def test_reset_forgets_the_votes():
    c = clip("clean", 0, 4)
    pipeline = QrPipeline()
    pipeline.feed(c.frames[0])
    pipeline.reset()
    assert pipeline.feed(c.frames[1]) is None
    assert pipeline.feed(c.frames[2]) == c.expected


def test_a_clip_of_a_hard_condition_is_confirmed():
    c = clip("small", 1, 6)
    pipeline = QrPipeline()
    confirmed = [p for p in (pipeline.feed(f) for f in c.frames) if p is not None]
    assert confirmed == [c.expected]


class Scripted:
    """A decoder that reads what the test says, and remembers what it was shown."""

    name = "scripted"

    def __init__(self, answers: list[list[Detection]]) -> None:
        self.answers = answers
        self.shown: list[tuple[int, ...]] = []

    def decode(self, gray: np.ndarray) -> list[str]:
        return [d.text for d in self.detect(gray) if d.text]

    def detect(self, gray: np.ndarray, thorough: bool = True) -> list[Detection]:
        self.shown.append(gray.shape)
        return self.answers.pop(0) if self.answers else []


QUAD = np.array([[600, 300], [700, 300], [700, 400], [600, 400]], dtype=np.float32)
FLAT = np.full((720, 1280, 3), 128, np.uint8)  # nothing code-like: no likely regions


def test_memory_looks_again_where_the_code_was_last_seen():
    decoder = Scripted([[Detection("ZZA1.k1.seen", QUAD)]])
    pipeline = QrPipeline(decoder)
    pipeline.feed(FLAT)
    pipeline.feed(FLAT)
    # Second frame: the whole frame, then the 100 px box where the code was, with its margin,
    # scaled up towards 400 px: that is the only region on a flat frame.
    assert decoder.shown[1] == (720, 1280)
    side = (100 + 2 * (0.35 * 100 + 8)) * MAX_UPSCALE
    assert decoder.shown[2] == pytest.approx((side, side), abs=4)
    assert len(decoder.shown) == 3

    forgetful = Scripted([[Detection("ZZA1.k1.seen", QUAD)]])
    pipeline = QrPipeline(forgetful, stages=STAGES - {MEMORY})
    pipeline.feed(FLAT)
    pipeline.feed(FLAT)
    assert forgetful.shown == [(720, 1280), (720, 1280)]


def test_a_frame_without_a_code_costs_at_most_the_budget():
    decoder = Scripted([])
    busy = frame(NO_CODE, 0).image
    QrPipeline(decoder, budget=3).decode(busy)
    assert 2 <= len(decoder.shown) <= 1 + 3
    decoder.shown.clear()
    QrPipeline(decoder, enhance=False).decode(busy)
    assert len(decoder.shown) == 1


def test_two_codes_in_view_are_not_confirmed():
    other = QUAD + 300
    both = [Detection("ZZA1.k1.first", QUAD), Detection("ZZA1.k1.second", other)]
    pipeline = QrPipeline(Scripted([both] * 4))
    assert [pipeline.feed(FLAT) for _ in range(4)] == [None] * 4


def test_unknown_stage_is_refused():
    with pytest.raises(ValueError):
        QrPipeline(stages={"magic"})
