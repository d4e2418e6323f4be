"""The replay driver on generated recordings: a folder of PNGs, a lossless video file."""

from __future__ import annotations

import shutil
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from devices.contract import CameraState, Completion, DeviceClass, DeviceState, EventKind
from devices.video.replay import ReplayCamera
from tests.camera.media import noise_frames, write_video
from tests.device_events import Events, wait_until

COUNT = 6


@pytest.fixture
def cameras() -> Iterator[list[ReplayCamera]]:
    made: list[ReplayCamera] = []
    yield made
    for camera in made:
        camera.close()


@pytest.fixture
def make(cameras):
    def build(**options) -> ReplayCamera:
        camera = ReplayCamera("camera", **options)
        cameras.append(camera)
        return camera
    return build


@pytest.fixture
def images() -> list[np.ndarray]:
    return noise_frames(seed=4, count=COUNT)


@pytest.fixture
def folder(tmp_path, images) -> Path:
    """PNGs written in an order other than their names', with a file that is not an image."""
    where = tmp_path / "frames"
    where.mkdir()
    for index in reversed(range(COUNT)):
        cv2.imwrite(str(where / f"frame_{index:02d}.png"), images[index])
    (where / "README.txt").write_text("not a frame")
    return where


@pytest.fixture
def video(tmp_path, images) -> Path:
    return write_video(tmp_path / "scene.avi", images, fps=25.0)


def shows(frame, images: list[np.ndarray]) -> bool:
    """Frame n of a looping recording is image (n - 1) mod COUNT: played in order, none
    skipped by the player, whichever frames the test happened to look at."""
    return np.array_equal(frame.image, images[(frame.sequence - 1) % len(images)])


def observe(camera: ReplayCamera, until_sequence: int) -> list:
    seen, last = [], 0
    while last < until_sequence:
        frame = camera.wait_for_frame(last, 5)
        assert frame is not None, "the replay stopped delivering"
        seen.append(frame)
        last = frame.sequence
    return seen


def test_a_folder_plays_in_name_order_and_loops(make, folder, images):
    camera = make(path=str(folder), fps=200)
    events = Events(camera)
    seen = observe(camera, 2 * COUNT + 2)
    assert all(shows(frame, images) for frame in seen)
    status = camera.status()
    assert status.state is DeviceState.ONLINE and status.cameras == {"main": CameraState.OK}
    assert status.detail["frameSize"] == "64x48" and status.detail["loop"] is True
    assert status.detail["frames"] >= 2 * COUNT + 2 and not status.detail["ended"]
    assert camera.capabilities().driver == "replay"
    assert camera.capabilities().device_class is DeviceClass.CAMERA
    assert events.count(EventKind.DETACHED) == 0


def test_a_folder_played_once_holds_its_last_frame(make, folder, images):
    camera = make(path=str(folder), fps=200, loop=False)
    assert wait_until(lambda: camera.status().detail["ended"])
    status = camera.status()
    assert status.state is DeviceState.ONLINE and status.detail["frames"] == COUNT
    assert status.detail["fps"] == 0.0
    frame = camera.latest_frame()
    assert frame.sequence == COUNT and np.array_equal(frame.image, images[-1])
    result = camera.capture(2).wait(5)
    assert result.ok and result.data.sequence == COUNT
    assert np.array_equal(result.data.image, images[-1])


def test_a_video_file_plays_at_its_own_rate_and_loops(make, video, images):
    camera = make(path=str(video))
    assert camera.playback_fps == 25.0
    assert camera.status().detail["playbackFps"] == 25.0
    seen = observe(camera, COUNT + 2)  # into the second pass
    assert all(shows(frame, images) for frame in seen)


def test_a_video_played_once_ends_on_its_last_frame(make, video, images):
    camera = make(path=str(video), fps=200, loop=False)
    assert wait_until(lambda: camera.status().detail["ended"])
    frame = camera.latest_frame()
    assert frame.sequence == COUNT and np.array_equal(frame.image, images[-1])
    assert camera.status().state is DeviceState.ONLINE


def test_one_image_is_a_still_scene(make, folder, images):
    camera = make(path=str(folder / "frame_02.png"))
    assert camera.playback_fps == 15.0  # images have no rate of their own
    seen = observe(camera, 3)
    assert all(np.array_equal(frame.image, images[2]) for frame in seen)


def test_unreadable_images_in_the_folder_are_skipped(make, folder, images):
    (folder / "frame_01.png").write_bytes(b"not a png")
    camera = make(path=str(folder), fps=200, loop=False)
    assert wait_until(lambda: camera.status().detail["ended"])
    assert camera.status().detail["frames"] == COUNT - 1
    assert np.array_equal(camera.latest_frame().image, images[-1])


def test_a_slow_consumer_sees_sequence_numbers_jump_and_memory_stays_flat(make, tmp_path):
    frames = noise_frames(seed=9, count=20, width=160, height=120)
    video = write_video(tmp_path / "fast.avi", frames)
    tracemalloc.start()
    try:
        camera = make(path=str(video), fps=1000)
        first = camera.wait_for_frame(0, 5)
        assert first is not None
        assert wait_until(lambda: camera.status().detail["frames"] >= first.sequence + 50)
        before = tracemalloc.get_traced_memory()[0]
        later = camera.latest_frame()
        assert later.sequence >= first.sequence + 50  # the newest, not the one after first
        assert wait_until(lambda: camera.status().detail["frames"] >= later.sequence + 400,
                          timeout=20)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert camera.latest_frame().sequence >= later.sequence + 400
    # 400 frames of 57.6 kB went by unread; memory grew by far less than one tenth of them.
    assert after - before < 40 * frames[0].nbytes


def test_a_removed_recording_is_an_unplugged_camera(make, folder, images, tmp_path):
    camera = make(path=str(folder), fps=100, reconnect_interval_s=0.05)
    events = Events(camera)
    assert camera.wait_for_frame(0, 5) is not None
    away = tmp_path / "away"
    shutil.move(folder, away)
    assert events.wait(EventKind.DETACHED)
    assert camera.status().state is DeviceState.NO_DEVICE
    assert camera.status().cameras == {"main": CameraState.INOPERATIVE}
    result = camera.capture(1).wait(5)
    assert (result.completion, result.error_code) == (Completion.DEVICE_NOT_READY, "noDevice")
    shutil.move(away, folder)
    assert events.wait(EventKind.ATTACHED)
    assert wait_until(lambda: camera.status().state is DeviceState.ONLINE)
    assert camera.capture(2).wait(5).ok


def test_closing_stops_the_thread_and_refuses_capture(make, folder):
    camera = make(path=str(folder), fps=100)
    assert camera.wait_for_frame(0, 5) is not None
    camera.close()
    assert not any(t.name == "camera:grab" for t in threading.enumerate())
    assert camera.status().state is DeviceState.OFFLINE
    result = camera.capture(1).wait(5)
    assert (result.completion, result.error_code) == (Completion.DEVICE_NOT_READY, "offline")


@pytest.mark.parametrize("options, message", [
    ({}, "path"),
    ({"path": "{tmp}/missing.avi"}, "does not exist"),
    ({"path": "{tmp}/empty"}, "no images"),
    ({"path": "{tmp}/junk.avi"}, "not a video"),
    ({"path": "{tmp}/frames", "fps": 0}, "fps"),
    ({"path": "{tmp}/frames", "fps": "fast"}, "fps"),
    ({"path": "{tmp}/frames", "loop": "yes"}, "loop"),
    ({"path": "{tmp}/frames", "reconnect_interval_s": -1}, "reconnect_interval_s"),
])
def test_bad_settings_are_value_errors_naming_them(tmp_path, folder, options, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk.avi").write_bytes(bytes(range(256)) * 8)
    before = threading.active_count()
    resolved = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v
                for k, v in options.items()}
    with pytest.raises(ValueError, match=message):
        ReplayCamera("camera", **resolved)
    assert threading.active_count() == before  # refused before any thread started
