"""The latest-frame grabber with scripted sources, and the camera base class on top of it."""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Iterator

import numpy as np
import pytest

from devices.contract import CameraState, Completion, DeviceState, EventKind
from devices.video.base import GrabbingCamera
from devices.video.grabber import MAX_READ_FAILURES, EndOfStream, FrameGrabber
from tests.camera.media import noise_frames
from tests.device_events import Events, wait_until


class ScriptedSource:
    """Reads come from ``script``: an array, None (a failed read), an exception to raise;
    when the script is used up it repeats ``then``."""

    def __init__(self, script: list | None = None, then: object = "fresh",
                 pace_fps: float | None = None, opens: list[bool] | None = None) -> None:
        self.description = "scripted"
        self.pace_fps = pace_fps
        self.script = list(script or [])
        self.then = then
        self.opens = list(opens or [])
        self.open_calls = 0
        self.closed = 0
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()

    def open(self) -> bool:
        self.open_calls += 1
        return self.opens.pop(0) if self.opens else True

    def read(self) -> np.ndarray | None:
        self.gate.wait()
        with self._lock:
            step = self.script.pop(0) if self.script else self.then
        if isinstance(step, str) and step == "fresh":
            return np.zeros((8, 8, 3), np.uint8)
        if isinstance(step, BaseException) or (isinstance(step, type)
                                               and issubclass(step, BaseException)):
            raise step
        return step

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def grabbers() -> Iterator[list[FrameGrabber]]:
    made: list[FrameGrabber] = []
    yield made
    for grabber in made:
        grabber.stop()


def start(made: list[FrameGrabber], source: ScriptedSource, **options) -> FrameGrabber:
    calls: dict[str, list] = {"running": [], "lost": [], "ended": []}
    grabber = FrameGrabber(source, reconnect_interval_s=0.02,
                           on_running=lambda: calls["running"].append(1),
                           on_lost=lambda reason: calls["lost"].append(reason),
                           on_ended=lambda: calls["ended"].append(1), **options)
    grabber.calls = calls  # type: ignore[attr-defined]
    made.append(grabber)
    grabber.start()
    return grabber


def test_a_slow_consumer_gets_the_newest_frame_not_the_next(grabbers):
    grabber = start(grabbers, ScriptedSource(pace_fps=500))
    first = grabber.wait_for_frame(0, 5)
    assert first is not None
    assert wait_until(lambda: grabber.frames >= first.sequence + 10)
    later = grabber.latest()
    assert later is not None and later.sequence >= first.sequence + 10
    # What a consumer waiting for "the next one" gets is the newest there is, too.
    newer = grabber.wait_for_frame(later.sequence, 5)
    assert newer is not None and newer.sequence > later.sequence
    assert newer.sequence <= grabber.frames


def test_memory_stays_flat_however_slow_the_consumer(grabbers):
    frame_bytes = 120 * 160 * 3

    class Fresh(ScriptedSource):
        def read(self) -> np.ndarray:
            return np.ones((120, 160, 3), np.uint8)  # a new allocation per frame, as cv2 does

    tracemalloc.start()
    try:
        grabber = start(grabbers, Fresh(pace_fps=1000))
        assert wait_until(lambda: grabber.frames >= 50)
        before = tracemalloc.get_traced_memory()[0]
        assert wait_until(lambda: grabber.frames >= 550, timeout=20)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # 500 frames went by unread; queued they would be 500 x 57.6 kB.
    assert after - before < 20 * frame_bytes


def test_frames_are_read_only(grabbers):
    grabber = start(grabbers, ScriptedSource())
    frame = grabber.wait_for_frame(0, 5)
    assert frame is not None and not frame.image.flags.writeable
    with pytest.raises(ValueError):
        frame.image[0, 0] = 1


def test_a_few_failed_reads_are_not_an_unplug(grabbers):
    source = ScriptedSource(script=[None] * (MAX_READ_FAILURES - 1) + ["fresh", None])
    grabber = start(grabbers, source)
    assert wait_until(lambda: grabber.frames >= 5)
    assert grabber.calls["lost"] == [] and source.open_calls == 1


def test_failed_reads_lose_the_source_and_it_is_reopened(grabbers):
    # Frames, then the camera fails (reads and one reopen), then it works again.
    source = ScriptedSource(script=["fresh"] * 3 + [None] * MAX_READ_FAILURES,
                            opens=[True, False, True])
    grabber = start(grabbers, source)
    assert wait_until(lambda: len(grabber.calls["running"]) == 2)
    assert len(grabber.calls["lost"]) == 1  # told once, not at each retry
    assert "failed reads" in grabber.calls["lost"][0]
    assert source.open_calls == 3 and source.closed >= 1
    assert grabber.wait_for_frame(3, 5) is not None  # numbering goes on after a reconnect


def test_a_source_that_raises_or_gives_odd_arrays_is_a_failing_source(grabbers):
    bad = [RuntimeError("driver bug"), np.zeros((8, 8), np.uint8),
           np.zeros((8, 8, 3), np.float32)]
    source = ScriptedSource(script=["fresh"] + bad, then=None)
    grabber = start(grabbers, source)
    assert wait_until(lambda: len(grabber.calls["lost"]) == 1)
    assert grabber.latest() is None  # a lost camera shows no frozen frame
    assert grabber.frames == 1


def test_end_of_stream_keeps_the_last_frame(grabbers):
    last = noise_frames(1, 1)[0]
    source = ScriptedSource(script=["fresh", "fresh", last, EndOfStream])
    grabber = start(grabbers, source)
    assert wait_until(lambda: grabber.ended)
    frame = grabber.latest()
    assert frame is not None and frame.sequence == 3
    assert np.array_equal(frame.image, last)
    assert grabber.calls["ended"] == [1] and grabber.calls["lost"] == []
    assert grabber.fps == 0.0
    assert wait_until(lambda: not grabber.alive) and source.closed >= 1


def test_stop_ends_the_thread_and_closes_the_source(grabbers):
    source = ScriptedSource(pace_fps=200)
    grabber = start(grabbers, source)
    assert grabber.wait_for_frame(0, 5) is not None
    grabber.stop()
    assert not grabber.alive and source.closed >= 1
    assert grabber.wait_for_frame(grabber.frames, 5) is None  # returns at once when stopped


def test_nonsense_settings_are_refused():
    with pytest.raises(ValueError, match="reconnect_interval_s"):
        FrameGrabber(ScriptedSource(), reconnect_interval_s=0)
    with pytest.raises(ValueError, match="max_read_failures"):
        FrameGrabber(ScriptedSource(), max_read_failures=0)


# -- the camera base class ----------------------------------------------------------------
class Camera(GrabbingCamera):
    driver_name = "scripted"


@pytest.fixture
def blocked_camera() -> Iterator[tuple[Camera, ScriptedSource]]:
    source = ScriptedSource()
    source.gate.clear()  # opened, but no frame comes yet
    camera = Camera("camera", source, reconnect_interval_s=0.02)
    yield camera, source
    source.gate.set()
    camera.close()


def test_capture_without_a_frame_times_out(blocked_camera):
    camera, _ = blocked_camera
    assert camera.status().state is DeviceState.STARTING
    result = camera.capture(0.2).wait(5)
    assert (result.completion, result.error_code) == (Completion.TIME_OUT, "timeOut")


def test_capture_waiting_for_a_frame_can_be_cancelled(blocked_camera):
    camera, _ = blocked_camera
    pending = camera.capture(10)
    assert wait_until(lambda: camera._current is pending)
    pending.cancel()
    assert pending.wait(5).completion is Completion.CANCELED


def test_capture_waits_for_the_first_frame(blocked_camera):
    camera, source = blocked_camera
    events = Events(camera)
    pending = camera.capture(10)
    source.gate.set()
    result = pending.wait(5)
    assert result.ok and result.data.sequence >= 1
    assert camera.status().state is DeviceState.ONLINE
    assert camera.status().cameras == {"main": CameraState.OK}
    # Starting is not an unplug: no Attached for the first frames.
    assert EventKind.ATTACHED not in events.kinds()
    assert EventKind.STATUS_CHANGED in events.kinds()
