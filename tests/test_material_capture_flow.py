"""材料拍照 as a state machine, driven end to end by generated camera frames (and once by
the simulated camera, as the UI drives it)."""

from __future__ import annotations

import dataclasses
import functools
import io
import re
import shutil
import subprocess
import threading
import time

import numpy as np
import pytest
from PIL import Image

from devices.sim.camera import SimCamera
from devices.sim.document_scenes import SceneVariant, render_scene
from devices.vision.document import Orientation, PaperKind
from devices.vision.quality import Guidance
from flows.material_capture import (
    CaptureAction,
    CaptureProblem,
    CaptureStep,
    Material,
    MaterialCaptureFlow,
    MaterialCaptureSettings,
)
from tests.fakes import ListAudit

V = SceneVariant
CERTIFICATE = Material("M-001", "在职证明", PaperKind.A4, max_pages=2)
ID_CARD = Material("M-002", "身份证", PaperKind.ID1, max_pages=2)


@functools.cache
def frame(variant: SceneVariant = V.WELL_PLACED, kind: PaperKind = PaperKind.A4,
          seed: int = 0, index: int = 0) -> np.ndarray:
    return render_scene(variant, kind, seed=seed, frame=index).image


def page_count_of(pdf: bytes, tmp_path) -> int:
    path = tmp_path / "material.pdf"
    path.write_bytes(pdf)
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True,
                          check=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))


def make_flow(material: Material = CERTIFICATE, **settings: object):
    """A flow on its own audit log. Tests that do not check the resolution pass a low
    ``dpi`` (a setting): the page images then take a fraction of the time to make."""
    audit = ListAudit()
    flow = MaterialCaptureFlow(material, session_id="S-1", audit=audit,
                               settings=MaterialCaptureSettings(**settings))
    views = []
    flow.on_change(views.append)
    flow.start()
    return flow, audit, views


def show_still(flow: MaterialCaptureFlow, count: int, **scene: object) -> list[object]:
    return [flow.on_frame(frame(index=i, **scene)) for i in range(count)]


@pytest.mark.skipif(shutil.which("pdfinfo") is None, reason="poppler-utils")
def test_two_pages_captured_automatically_become_one_pdf(tmp_path):
    flow, audit, views = make_flow(auto_capture_frames=3)
    assert flow.view.step is CaptureStep.AIMING

    # The citizen walks up: nothing, then a page held too far, then placed well.
    assert flow.on_frame(frame(V.NO_DOCUMENT)) is Guidance.NO_DOCUMENT
    assert flow.view.outline is None
    assert flow.on_frame(frame(V.TOO_SMALL)) is Guidance.MOVE_CLOSER
    assert flow.view.outline is not None and len(flow.view.outline) == 4
    assert all(0 <= x <= 1 and 0 <= y <= 1 for x, y in flow.view.outline)
    # Just moved into place: the first frame there differs from the one before.
    assert show_still(flow, 3) == [Guidance.HOLD_STILL, Guidance.OK, Guidance.OK]
    assert flow.view.step is CaptureStep.AIMING
    assert flow.view.steady == pytest.approx(2 / 3)
    flow.on_frame(frame(index=3))

    review = flow.view
    assert review.step is CaptureStep.REVIEW
    assert review.page_count == 1 and review.auto_captured
    assert review.actions == (CaptureAction.RETAKE, CaptureAction.ADD_PAGE,
                              CaptureAction.FINISH)
    thumb = Image.open(io.BytesIO(review.preview))
    assert max(thumb.size) == 240 and thumb.size[0] < thumb.size[1]  # a portrait sheet
    # Reviewing: frames are not looked at.
    assert flow.on_frame(frame()) is None

    flow.add_page()
    assert flow.view.step is CaptureStep.AIMING and flow.view.waiting_for_new_page
    # The first page still lies there: it is not taken a second time.
    show_still(flow, 4)
    assert flow.view.step is CaptureStep.AIMING and flow.page_count == 1
    # The next page is put down instead (a frame to settle, three good ones).
    guidance = [flow.on_frame(frame(seed=1, index=i)) for i in range(4)]
    assert guidance == [Guidance.HOLD_STILL, Guidance.OK, Guidance.OK, Guidance.OK]
    assert flow.view.step is CaptureStep.REVIEW and flow.view.page_count == 2
    assert flow.view.actions == (CaptureAction.RETAKE, CaptureAction.FINISH)  # max 2

    result = flow.finish()
    assert result is not None and result is flow.result
    assert result.page_count == 2
    assert page_count_of(result.pdf, tmp_path) == 2
    assert flow.view.step is CaptureStep.DONE and flow.view.page_count == 2
    assert flow.view.preview is None
    assert [p.dpi for p in result.pages] == [200, 200]
    assert [(p.width_px, p.height_px) for p in result.pages] == [(1654, 2339)] * 2
    assert audit.kinds() == ["material.page", "material.page", "material.done"]
    assert audit.rows[0][2]["auto"] is True and audit.rows[0][1] == "S-1"


def test_manual_capture_takes_a_poor_frame_but_not_an_empty_one():
    flow, audit, _ = make_flow(ID_CARD)
    assert flow.capture_now() is False
    assert flow.view.problem is CaptureProblem.NO_FRAME

    flow.on_frame(frame(V.NO_DOCUMENT))
    assert flow.capture_now() is False
    assert flow.view.problem is CaptureProblem.NO_DOCUMENT
    assert flow.view.step is CaptureStep.AIMING and flow.page_count == 0

    assert flow.on_frame(frame(V.BLURRED, PaperKind.ID1)) is Guidance.HOLD_STILL
    assert flow.view.problem is None
    assert flow.capture_now() is True
    assert flow.view.step is CaptureStep.REVIEW and not flow.view.auto_captured
    assert audit.rows[-1][2]["guidance"] == "hold_still"
    assert audit.rows[-1][2]["auto"] is False
    result = flow.finish()
    assert result is not None
    page = result.pages[0]
    assert (page.width_px, page.height_px) == (1011, 638)  # ID-1 at 300 dpi, landscape
    assert page.orientation is Orientation.LANDSCAPE


def test_the_problem_stays_until_a_document_is_seen():
    flow, _, _ = make_flow()
    flow.on_frame(frame(V.NO_DOCUMENT))
    flow.capture_now()
    flow.on_frame(frame(V.NO_DOCUMENT, index=1))
    assert flow.view.problem is CaptureProblem.NO_DOCUMENT
    flow.on_frame(frame(V.TOO_SMALL))
    assert flow.view.problem is None


def test_retake_drops_the_page_and_may_take_the_same_one_again():
    flow, audit, _ = make_flow(auto_capture_frames=2, dpi=100)
    show_still(flow, 2)
    assert flow.view.step is CaptureStep.REVIEW
    flow.retake()
    assert flow.view.step is CaptureStep.AIMING and flow.page_count == 0
    assert not flow.view.waiting_for_new_page
    show_still(flow, 2)
    assert flow.view.step is CaptureStep.REVIEW and flow.page_count == 1
    assert audit.kinds() == ["material.page", "material.retake", "material.page"]


def test_no_more_pages_than_the_material_has():
    flow, _, _ = make_flow(dataclasses.replace(CERTIFICATE, max_pages=1), auto_capture_frames=2,
                           dpi=100)
    show_still(flow, 2)
    assert CaptureAction.ADD_PAGE not in flow.view.actions
    flow.add_page()
    assert flow.view.step is CaptureStep.REVIEW
    assert flow.view.problem is CaptureProblem.PAGE_LIMIT
    assert flow.view.preview is not None  # the page is still shown


def test_finishing_without_a_page_is_refused():
    flow, _, _ = make_flow()
    flow.on_frame(frame(V.NO_DOCUMENT))
    assert flow.finish() is None
    assert flow.view.problem is CaptureProblem.NO_PAGES
    assert flow.view.step is CaptureStep.AIMING
    assert CaptureAction.FINISH not in flow.view.actions


def test_finish_from_the_preview_after_adding_a_page():
    flow, _, _ = make_flow(auto_capture_frames=2, dpi=100)
    show_still(flow, 2)
    flow.add_page()
    assert CaptureAction.FINISH in flow.view.actions
    result = flow.finish()
    assert result is not None and result.page_count == 1


def test_auto_capture_can_be_switched_off():
    flow, _, _ = make_flow(auto_capture=False, auto_capture_frames=1, dpi=100)
    show_still(flow, 3)
    assert flow.view.step is CaptureStep.AIMING and flow.view.guidance is Guidance.OK
    assert flow.capture_now() is True


def test_wipe_drops_every_image():
    flow, _, views = make_flow(auto_capture_frames=2, dpi=100)
    show_still(flow, 2)
    assert flow.finish() is not None
    flow.wipe()
    assert flow.result is None and flow.page_count == 0
    assert flow.view.step is CaptureStep.CANCELLED and flow.view.preview is None
    assert flow.on_frame(frame()) is None
    assert flow.capture_now() is False


def test_views_hold_no_image_but_the_small_preview():
    flow, _, views = make_flow(auto_capture_frames=2, dpi=100)
    flow.on_frame(frame(V.TOO_SMALL))
    show_still(flow, 3)
    assert flow.finish() is not None
    for view in views:
        for field in dataclasses.fields(view):
            value = getattr(view, field.name)
            assert not isinstance(value, np.ndarray)
            if isinstance(value, bytes):
                assert field.name == "preview" and len(value) < 30_000
        assert "preview=" not in repr(view)
    assert "bytes)" in repr(flow.result) and "%PDF" not in repr(flow.result)


def test_watch_feeds_the_simulated_cameras_newest_frames_until_review():
    """As the UI does it: ``watch`` on a worker, the camera's newest frames, auto-capture."""
    camera = SimCamera(fps=30.0)
    try:
        camera.show_image(frame(V.WELL_PLACED, PaperKind.PASSPORT, seed=1))
        flow, _, _ = make_flow(Material("M-003", "护照", PaperKind.PASSPORT),
                               auto_capture_frames=3)
        fed: list[int] = []
        on_frame = flow.on_frame
        flow.on_frame = lambda f: (fed.append(f.sequence), on_frame(f))[1]  # type: ignore
        watcher = threading.Thread(target=flow.watch, args=(camera, 10.0))
        watcher.start()
        deadline = time.monotonic() + 10
        while flow.view.step is not CaptureStep.REVIEW and time.monotonic() < deadline:
            time.sleep(0.02)
        assert flow.view.step is CaptureStep.REVIEW
        assert len(fed) >= 3 and fed == sorted(set(fed))  # each frame once, in order
        flow.stop_watching()
        watcher.join(2)
        assert not watcher.is_alive()
        result = flow.finish()
        assert result is not None and result.pages[0].width_px == 1476
    finally:
        camera.close()


def test_cancel_ends_the_watch():
    camera = SimCamera(fps=30.0)
    try:
        camera.show_image(frame(V.NO_DOCUMENT))
        flow, _, _ = make_flow(CERTIFICATE)
        watcher = threading.Thread(target=flow.watch, args=(camera, 30.0))
        watcher.start()
        time.sleep(0.2)
        assert flow.view.guidance is Guidance.NO_DOCUMENT
        flow.cancel()
        watcher.join(2)
        assert not watcher.is_alive()
    finally:
        camera.close()


def test_material_needs_a_page():
    with pytest.raises(ValueError):
        Material("M-9", "空", max_pages=0)
