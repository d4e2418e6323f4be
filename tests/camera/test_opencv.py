"""The opencv driver. There is no /dev/video* here, so it reads a video file standing in for
the camera; removing the file and putting it back is the unplug and the replug."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from devices.contract import CameraState, Completion, DeviceState, EventKind
from devices.video.opencv import OpencvCamera
from tests.camera.media import noise_frames, write_video
from tests.device_events import Events, wait_until

COUNT = 5
FAST = {"fps": 100, "reconnect_interval_s": 0.05}


@pytest.fixture
def images() -> list[np.ndarray]:
    return noise_frames(seed=7, count=COUNT, width=96, height=64)


@pytest.fixture
def video(tmp_path, images) -> Path:
    return write_video(tmp_path / "camera.avi", images)


@pytest.fixture
def make() -> Iterator:
    made: list[OpencvCamera] = []

    def build(**options) -> OpencvCamera:
        camera = OpencvCamera("camera", **{**FAST, **options})
        made.append(camera)
        return camera

    yield build
    for camera in made:
        camera.close()


def test_reads_the_file_as_a_looping_camera(make, video, images):
    camera = make(device=str(video))
    last, seen = 0, []
    while last < COUNT + 2:  # into the second pass: the end of a file is not an unplug
        frame = camera.wait_for_frame(last, 5)
        assert frame is not None
        seen.append(frame)
        last = frame.sequence
    assert all(np.array_equal(f.image, images[(f.sequence - 1) % COUNT]) for f in seen)
    status = camera.status()
    assert status.state is DeviceState.ONLINE and status.cameras == {"main": CameraState.OK}
    assert status.detail["source"] == str(video)
    assert status.detail["requested"] == "1280x720@100 MJPG"
    assert status.detail["frameSize"] == "96x64"
    assert camera.capabilities().driver == "opencv"


def test_unplug_and_replug(make, video, tmp_path):
    camera = make(device=str(video))
    events = Events(camera)
    before = camera.capture(2).wait(5)
    assert before.ok

    away = tmp_path / "unplugged.avi"
    os.replace(video, away)
    assert events.wait(EventKind.DETACHED)
    status = camera.status()
    assert status.state is DeviceState.NO_DEVICE
    assert status.cameras == {"main": CameraState.INOPERATIVE}
    assert camera.latest_frame() is None  # no frozen picture of a camera that is gone
    result = camera.capture(1).wait(5)
    assert (result.completion, result.error_code) == (Completion.DEVICE_NOT_READY, "noDevice")

    os.replace(away, video)
    assert events.wait(EventKind.ATTACHED)
    assert wait_until(lambda: camera.status().state is DeviceState.ONLINE)
    assert camera.status().cameras == {"main": CameraState.OK}
    after = camera.capture(2).wait(5)
    assert after.ok and after.data.sequence > before.data.sequence
    assert events.count(EventKind.DETACHED) == 1 and events.count(EventKind.ATTACHED) == 1
    assert events.kinds().index(EventKind.DETACHED) < events.kinds().index(EventKind.ATTACHED)


def test_a_camera_absent_at_start_is_no_device_until_it_appears(make, video, tmp_path):
    late = tmp_path / "late.avi"
    camera = make(device=str(late))
    events = Events(camera)
    assert wait_until(lambda: camera.status().state is DeviceState.NO_DEVICE)
    result = camera.capture(1).wait(5)
    assert (result.completion, result.error_code) == (Completion.DEVICE_NOT_READY, "noDevice")
    os.link(video, late)
    assert events.wait(EventKind.ATTACHED)
    assert wait_until(lambda: camera.status().state is DeviceState.ONLINE)
    assert events.count(EventKind.DETACHED) == 0  # it was never there


def test_a_file_that_is_not_a_video_is_no_device(make, tmp_path):
    junk = tmp_path / "junk.avi"
    junk.write_bytes(bytes(range(256)) * 8)
    camera = make(device=str(junk))
    assert wait_until(lambda: camera.status().state is DeviceState.NO_DEVICE)
    assert camera.latest_frame() is None


@pytest.mark.skipif(os.path.exists("/dev/video0"), reason="a real camera is attached")
@pytest.mark.parametrize("device", [0, "0"])
def test_an_index_names_its_v4l2_node(make, device):
    camera = make(device=device)
    assert wait_until(lambda: camera.status().state is DeviceState.NO_DEVICE)
    assert camera.status().detail["source"] == "/dev/video0"


def test_close_stops_the_thread(make, video):
    camera = make(device=str(video))
    assert camera.wait_for_frame(0, 5) is not None
    camera.close()
    assert not any(t.name == "camera:grab" for t in threading.enumerate())
    assert camera.status().state is DeviceState.OFFLINE
    result = camera.capture(1).wait(5)
    assert (result.completion, result.error_code) == (Completion.DEVICE_NOT_READY, "offline")


@pytest.mark.parametrize("options, message", [
    ({"device": -1}, "device"),
    ({"device": ""}, "device"),
    ({"device": True}, "device"),
    ({"device": 1.5}, "device"),
    ({"width": 0}, "width"),
    ({"height": "720"}, "height"),
    ({"fps": 0}, "fps"),
    ({"fps": float("nan")}, "fps"),
    ({"fourcc": "MJPEG"}, "fourcc"),
    ({"fourcc": 42}, "fourcc"),
    ({"reconnect_interval_s": 0}, "reconnect_interval_s"),
])
def test_bad_settings_are_value_errors_naming_them(options, message):
    before = threading.active_count()
    with pytest.raises(ValueError, match=message):
        OpencvCamera("camera", **options)
    assert threading.active_count() == before
