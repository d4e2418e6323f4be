"""Guidance for each way a photographed page can be wrong, and the auto-capture trigger."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from devices.sim.document_scenes import Scene, SceneVariant, render_scene
from devices.vision.document import PaperKind
from devices.vision.quality import (
    Assessment,
    AutoCapture,
    Guidance,
    QualitySettings,
    assess,
    same_page,
)

V = SceneVariant
EXPECTED = {
    V.WELL_PLACED: Guidance.OK,
    V.TOO_SMALL: Guidance.MOVE_CLOSER,
    V.TOO_CLOSE: Guidance.MOVE_FURTHER,
    V.CORNER_OUT: Guidance.CORNER_CUT,
    V.BLURRED: Guidance.HOLD_STILL,
    V.GLARE: Guidance.TOO_MUCH_GLARE,
    V.DARK: Guidance.TOO_DARK,
    V.NO_DOCUMENT: Guidance.NO_DOCUMENT,
}


@functools.cache
def scene(variant: SceneVariant, kind: PaperKind = PaperKind.A4, seed: int = 0,
          frame: int = 0, shift: tuple[float, float] = (0.0, 0.0)) -> Scene:
    return render_scene(variant, kind, seed=seed, frame=frame, shift=shift)


@functools.cache
def assessed(variant: SceneVariant, kind: PaperKind = PaperKind.A4, seed: int = 0,
             frame: int = 0) -> Assessment:
    return assess(scene(variant, kind, seed, frame).image, kind)


@pytest.mark.parametrize("variant", list(SceneVariant))
def test_each_fault_gets_its_own_guidance(variant):
    assert assessed(variant).guidance is EXPECTED[variant]


@pytest.mark.parametrize("kind", [PaperKind.ID1, PaperKind.PASSPORT])
@pytest.mark.parametrize("variant", [V.WELL_PLACED, V.TOO_SMALL, V.CORNER_OUT, V.GLARE])
def test_guidance_holds_for_cards_and_passports(kind, variant):
    assert assessed(variant, kind, 1).guidance is EXPECTED[variant]


def test_the_measurements_behind_the_guidance():
    good = assessed(V.WELL_PLACED).measurements
    blurred = assessed(V.BLURRED).measurements
    glare = assessed(V.GLARE).measurements
    dark = assessed(V.DARK).measurements
    small = assessed(V.TOO_SMALL).measurements
    assert good and blurred and glare and dark and small
    assert good.sharpness > 4 * blurred.sharpness
    assert glare.glare_blob > 0.05 > good.glare_blob
    assert dark.brightness < 0.4 * good.brightness
    assert small.coverage < 0.25 * good.coverage
    assert good.motion is None  # no previous frame given


def test_a_moving_page_is_asked_to_hold_still():
    still = assess(scene(V.WELL_PLACED).image, PaperKind.A4)
    moved = scene(V.WELL_PLACED, shift=(14.0, 6.0))
    assert still.quad is not None
    moving = assess(moved.image, PaperKind.A4, previous=still.quad)
    assert moving.guidance is Guidance.HOLD_STILL
    assert moving.measurements and moving.measurements.motion and \
        moving.measurements.motion > 0.01
    # The same page lying still from frame to frame (only sensor noise differs) is OK.
    next_frame = assess(scene(V.WELL_PLACED, frame=1).image, PaperKind.A4,
                        previous=still.quad)
    assert next_frame.guidance is Guidance.OK


def test_a_black_frame_is_too_dark_not_empty():
    black = np.full((720, 1280, 3), 8, np.uint8)
    assert assess(black, PaperKind.A4).guidance is Guidance.TOO_DARK


def test_thresholds_are_settings():
    image = scene(V.WELL_PLACED).image
    assert assess(image, PaperKind.A4, settings=QualitySettings(
        min_sharpness=1e9)).guidance is Guidance.HOLD_STILL
    assert assess(image, PaperKind.A4, settings=QualitySettings(
        min_coverage={PaperKind.A4: 0.5})).guidance is Guidance.MOVE_CLOSER
    assert assess(image, PaperKind.A4, settings=QualitySettings(
        min_brightness=250)).guidance is Guidance.TOO_DARK


def test_a_page_tells_itself_from_another_page():
    first = assessed(V.WELL_PLACED, PaperKind.A4, 0, 0).signature
    again = assessed(V.WELL_PLACED, PaperKind.A4, 0, 1).signature
    other = assessed(V.WELL_PLACED, PaperKind.PASSPORT, 1).signature
    assert first is not None and again is not None and other is not None
    assert same_page(first, again)
    assert not same_page(first, other)


# -- auto-capture -------------------------------------------------------------------------------
def good_frames(count: int, seed: int = 0) -> list[Assessment]:
    return [assessed(V.WELL_PLACED, PaperKind.A4, seed, frame) for frame in range(count)]


def test_auto_capture_fires_on_the_nth_good_frame_only():
    trigger = AutoCapture(frames_needed=4)
    fired = [trigger.update(a) for a in good_frames(4)]
    assert fired == [False, False, False, True]
    assert trigger.waiting_for_new_page


def test_blurred_or_glaring_frames_break_the_run():
    trigger = AutoCapture(frames_needed=3)
    good = good_frames(3)
    sequence = [good[0], good[1], assessed(V.BLURRED), good[2], good[0],
                assessed(V.GLARE), good[1], good[2]]
    assert [trigger.update(a) for a in sequence] == [False] * len(sequence)
    assert trigger.update(good[0]) is True


def test_never_fires_on_blurred_or_glaring_frames():
    for variant in (V.BLURRED, V.GLARE, V.CORNER_OUT, V.NO_DOCUMENT):
        trigger = AutoCapture(frames_needed=2)
        assert not any(trigger.update(assessed(variant)) for _ in range(6))
        assert trigger.progress == 0


def test_a_page_still_moving_does_not_fire():
    # Each frame's guidance may say OK on its own (no previous quad given to assess), but
    # the trigger compares the quads itself.
    frames = [assess(scene(V.WELL_PLACED, shift=(12.0 * i, 0.0)).image, PaperKind.A4)
              for i in range(3)]
    assert all(a.guidance is Guidance.OK for a in frames)
    trigger = AutoCapture(frames_needed=2)
    assert [trigger.update(a) for a in frames] == [False, False, False]


def test_after_firing_it_waits_for_another_page():
    trigger = AutoCapture(frames_needed=2)
    good = good_frames(3)
    assert [trigger.update(a) for a in good[:2]] == [False, True]
    # The same page still lying there is not captured twice.
    assert not any(trigger.update(good[i % 3]) for i in range(6))
    # Taken away and put back (or the next page put down): armed again.
    assert trigger.update(assessed(V.NO_DOCUMENT)) is False
    assert [trigger.update(a) for a in good[:2]] == [False, True]


def test_a_different_page_rearms_without_taking_the_first_away():
    trigger = AutoCapture(frames_needed=2)
    first, second = good_frames(2), good_frames(2, seed=1)
    assert [trigger.update(a) for a in first] == [False, True]
    assert [trigger.update(a) for a in second] == [False, True]


def test_the_same_page_picked_up_and_put_down_elsewhere_rearms():
    trigger = AutoCapture(frames_needed=2)
    good = good_frames(2)
    assert [trigger.update(a) for a in good] == [False, True]
    moved = assess(scene(V.WELL_PLACED, shift=(90.0, 0.0)).image, PaperKind.A4)
    assert moved.guidance is Guidance.OK
    assert [trigger.update(moved), trigger.update(moved)] == [False, True]


def test_reset_allows_the_same_page_again():
    trigger = AutoCapture(frames_needed=2)
    good = good_frames(2)
    assert [trigger.update(a) for a in good] == [False, True]
    trigger.reset()
    assert [trigger.update(a) for a in good] == [False, True]


def test_progress_counts_towards_the_capture():
    trigger = AutoCapture(frames_needed=4)
    good = good_frames(2)
    trigger.update(good[0])
    trigger.update(good[1])
    assert trigger.progress == pytest.approx(0.5)
    trigger.update(assessed(V.BLURRED))
    assert trigger.progress == 0


def test_frames_needed_must_be_positive():
    with pytest.raises(ValueError):
        AutoCapture(frames_needed=0)
