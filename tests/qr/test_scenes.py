"""The generated hard set: reproducible from its seed, the frames the issue asks for."""

from __future__ import annotations

import numpy as np
import pytest

from devices.qr.decoders import ZxingDecoder
from devices.sim import qr_scenes
from devices.sim.qr_scenes import CONDITIONS, NO_CODE
from tests.qr.frames import frame


def test_a_frame_is_a_function_of_its_seed():
    again = qr_scenes.sample(3, "glare")
    assert np.array_equal(frame("glare", 3).image, again.image)
    assert frame("glare", 3).expected == again.expected
    other_seed = qr_scenes.sample(3, "glare", seed=qr_scenes.DEFAULT_SEED + 1)
    assert other_seed.expected != again.expected


@pytest.mark.parametrize("condition", [*CONDITIONS, NO_CODE])
def test_frames_are_1280x720_bgr(condition):
    image = frame(condition, 0).image
    assert image.shape == (720, 1280, 3)
    assert image.dtype == np.uint8


def test_payloads_look_like_appointment_codes():
    rng = np.random.default_rng(7)
    payloads = [qr_scenes.appointment_payload(rng) for _ in range(200)]
    assert all(80 <= len(p) <= 200 for p in payloads)
    assert all(p.isascii() and p.startswith("ZZA1.k") for p in payloads)
    assert len(set(payloads)) == len(payloads)


def test_corners_say_where_the_code_is():
    sample = frame("rotated", 0)
    assert sample.corners is not None
    decoder = ZxingDecoder()
    found = decoder.detect(sample.image.mean(axis=2).astype(np.uint8))
    assert [d.text for d in found] == [sample.expected]
    # zxing-cpp's corners are the symbol's; ours include the 4-module quiet zone around it.
    assert np.linalg.norm(found[0].quad.mean(axis=0) - sample.corners.mean(axis=0)) < 6


def test_the_hard_set_mixes_every_condition_with_frames_without_a_code():
    samples = qr_scenes.hard_set(count=16)
    assert len(samples) == 16
    assert sum(s.expected is None for s in samples) == 2
    assert {s.condition for s in samples if s.expected} == set(CONDITIONS)
    assert len({s.name for s in samples}) == 16


def test_a_clip_holds_the_code_still_but_each_frame_is_new():
    c = qr_scenes.clip(0, "clean", frames=3)
    assert len(c.frames) == 3 and c.expected is not None
    assert not np.array_equal(c.frames[0], c.frames[1])
    # The same scene: the frames differ by noise and a hand's tremor, not by content.
    assert np.abs(c.frames[0].astype(int) - c.frames[1].astype(int)).mean() < 12


def test_unknown_condition_is_refused():
    with pytest.raises(ValueError):
        qr_scenes.qr_scene("x" * 80, "underwater", np.random.default_rng(0))
