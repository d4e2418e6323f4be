"""A camera as a barcode reader, end to end with the simulated camera showing generated frames."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from devices.contract import Completion, DeviceClass, DeviceState, EventKind
from devices.qr.camera_reader import CameraQrReader
from devices.qr.decoders import Detection
from devices.qr.pipeline import QrPipeline
from devices.sim.camera import SimCamera
from devices.sim.qr_scenes import NO_CODE
from tests.qr.frames import frame


@pytest.fixture
def camera() -> Iterator[SimCamera]:
    cam = SimCamera(width=1280, height=720, fps=30)
    yield cam
    cam.close()


@pytest.fixture
def reader(camera: SimCamera) -> Iterator[CameraQrReader]:
    r = CameraQrReader(camera)
    yield r
    r.close()


def until(predicate, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def test_reads_the_code_the_camera_sees(camera, reader):
    sample = frame("noise", 1)  # one raw zxing-cpp misses: the pipeline is behind the reader
    events = []
    reader.subscribe(events.append)
    camera.show_image(sample.image)
    result = reader.read(10).wait(15)
    assert result.ok, result
    assert result.data == sample.expected
    (data_read,) = [e for e in events if e.kind is EventKind.DATA_READ]
    assert data_read.request_id == result.request_id
    assert data_read.payload == sample.expected


def test_a_bare_backend_reads_with_voting_only(camera):
    sample = frame("clean", 0)
    camera.show_image(sample.image)
    reader = CameraQrReader(camera, "pyzbar")
    try:
        assert reader.capabilities().driver == "camera"
        assert reader.capabilities().device_class is DeviceClass.BARCODE_READER
        assert "pyzbar" in reader.capabilities().model
        result = reader.read(10).wait(15)
        assert result.data == sample.expected
    finally:
        reader.close()


def test_nothing_in_view_times_out(camera, reader):
    camera.show_image(frame(NO_CODE, 0).image)
    result = reader.read(0.5).wait(10)
    assert result.completion is Completion.TIME_OUT


def test_cancel_ends_the_read_as_canceled(camera, reader):
    camera.show_image(frame(NO_CODE, 1).image)
    pending = reader.read(30)
    until(lambda: camera.latest_frame() is not None)
    pending.cancel()
    assert pending.wait(10).completion is Completion.CANCELED


def test_the_camera_dropped_mid_read(camera, reader):
    camera.show_image(frame(NO_CODE, 2).image)
    pending = reader.read(30)
    until(lambda: camera.latest_frame() is not None)
    camera.drop()
    result = pending.wait(10)
    assert (result.completion, result.error_code) == (Completion.DEVICE_NOT_READY, "noDevice")
    assert reader.status().state is DeviceState.NO_DEVICE
    assert not reader.status().usable
    assert reader.read(1).wait(5).completion is Completion.DEVICE_NOT_READY


def test_status_follows_the_camera(camera, reader):
    events = []
    reader.subscribe(events.append)
    assert reader.status().state is DeviceState.ONLINE
    camera.drop()
    assert reader.status().state is DeviceState.NO_DEVICE
    camera.restore()
    assert reader.status().state is DeviceState.ONLINE
    assert reader.status().usable
    kinds = [e.kind for e in events]
    assert EventKind.DETACHED in kinds and EventKind.ATTACHED in kinds
    camera.go_offline()
    assert reader.status().state is DeviceState.OFFLINE


def test_after_the_camera_comes_back_reading_works(camera, reader):
    sample = frame("clean", 1)
    camera.drop()
    camera.restore()
    camera.show_image(sample.image)
    assert reader.read(10).wait(15).data == sample.expected


class Slow:
    """A decoder that does not finish until the test lets it: a frame that takes long."""

    name = "slow"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def decode(self, gray: np.ndarray) -> list[str]:
        return []

    def detect(self, gray: np.ndarray, thorough: bool = True) -> list[Detection]:
        self.entered.set()
        self.release.wait(20)
        return []


def test_decoding_never_holds_up_the_preview(camera):
    slow = Slow()
    reader = CameraQrReader(camera, QrPipeline(slow, enhance=False))
    try:
        pending = reader.read(30)
        assert slow.entered.wait(10)
        first = camera.latest_frame()
        assert first is not None
        # While one frame is being decoded, the camera keeps delivering new ones.
        until(lambda: camera.latest_frame().sequence >= first.sequence + 3)
        slow.release.set()
        pending.cancel()
        assert pending.wait(10).completion is Completion.CANCELED
    finally:
        slow.release.set()
        reader.close()


def test_decoding_share_must_be_a_share(camera):
    with pytest.raises(ValueError):
        CameraQrReader(camera, decode_share=0)
