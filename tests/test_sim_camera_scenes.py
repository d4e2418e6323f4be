"""The simulated camera's scripted scenes are what testers show it: each must be what the real
analysis recognises (a readable QR, a detectable page, a readable MRZ)."""

from __future__ import annotations

import time

import pytest

from devices.emrtd.mrz import format_mrz
from devices.qr.camera_reader import CameraQrReader
from devices.sim.camera import SimCamera
from devices.sim.mrz_scenes import SPECIMENS
from devices.vision.document import PaperKind, find_document
from devices.vision.mrz_ocr import read_mrz_text
from devices.vision.quality import Guidance, assess


@pytest.fixture
def camera():
    cam = SimCamera(width=1280, height=720, fps=30)
    yield cam
    cam.close()


def newest(camera: SimCamera):
    """A frame made after the scene changed (the one on screen may predate it)."""
    shown = camera.latest_frame()
    after = shown.sequence + 1 if shown is not None else 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        frame = camera.capture(2.0).wait().data
        if frame is not None and frame.sequence > after:
            return frame
        time.sleep(0.02)
    raise AssertionError("the camera made no new frame")


def test_a_code_held_at_an_angle_is_read_by_the_camera_reader(camera):
    reader = CameraQrReader(camera, device_id="barcode")
    try:
        camera.show_qr("ZZAPT:APT-DEMO-0001", "perspective", seed=3)
        result = reader.read(5.0).wait()
        assert result.ok and result.data == "ZZAPT:APT-DEMO-0001"
    finally:
        reader.close()


def test_a_page_on_the_desk_is_found_and_the_empty_desk_is_not(camera):
    camera.show_document("well_placed", "a4", seed=1)
    assert find_document(newest(camera).image) is not None
    camera.show_document("no_document", seed=1)
    frame = newest(camera)
    assert find_document(frame.image) is None


def test_a_passport_page_shows_its_mrz(camera):
    text = format_mrz(SPECIMENS["utopia-td3"])
    camera.show_passport(text, seed=2)
    assert read_mrz_text(newest(camera).image) == text


def test_the_demo_camera_shows_each_kind_of_page_in_turn():
    """``make run``'s camera: an A4 page and an ID card by turns, each found by the analysis."""
    camera = SimCamera(width=1280, height=720, fps=20.0, demo_documents=["a4", "id1"],
                       demo_period_s=0.4)
    seen: set[PaperKind] = set()
    try:
        deadline = time.monotonic() + 10
        while seen != {PaperKind.A4, PaperKind.ID1} and time.monotonic() < deadline:
            frame = camera.latest_frame()
            if frame is not None:
                for kind in (PaperKind.A4, PaperKind.ID1):
                    if assess(frame.image, kind).guidance is Guidance.OK:
                        seen.add(kind)
            time.sleep(0.05)
    finally:
        camera.close()
    assert seen == {PaperKind.A4, PaperKind.ID1}
