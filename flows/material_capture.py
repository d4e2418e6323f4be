"""材料拍照: photograph one material of an application, page by page, with live guidance.

The UI feeds camera frames to ``on_frame`` from a worker (at the camera's rate or less); the
flow finds the document, tells the citizen what to do ("move closer", "hold still") and
captures by itself once the page has been good and still for a few frames. A manual button
(``capture_now``) takes the latest frame whatever its quality, as long as a document is in
it. Each page is reviewed (retake / next page / done); ``finish`` gives the material's PDF.

Images are personal data: they live only in this flow until ``finish`` hands the PDF on, and
``wipe`` drops them all. The view carries no image but the small preview of the page just
taken; the audit log gets counts and sizes, never pixels.
"""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from devices.camera import Camera, Frame
from devices.vision.document import PaperKind, warp
from devices.vision.pages import (
    THUMBNAIL_PX,
    PageImage,
    encode_page,
    material_pdf,
    page_pixels,
    thumbnail_jpeg,
)
from devices.vision.quality import (
    AUTO_CAPTURE_FRAMES,
    Assessment,
    AutoCapture,
    Guidance,
    QualitySettings,
    assess,
)
from flows.base import Flow
from flows.ports import AuditSink


class CaptureStep(enum.StrEnum):
    AIMING = "aiming"  # live preview with guidance; captures by itself when the page is good
    REVIEW = "review"  # the page just taken: retake, next page, or done
    DONE = "done"
    CANCELLED = "cancelled"


class CaptureProblem(enum.StrEnum):
    NO_FRAME = "no_frame"  # the camera has shown nothing yet
    NO_DOCUMENT = "no_document"  # the button was pressed with no document in view
    NO_PAGES = "no_pages"  # done before any page was taken
    PAGE_LIMIT = "page_limit"  # the material has no more pages


class CaptureAction(enum.StrEnum):
    CAPTURE = "capture"
    RETAKE = "retake"
    ADD_PAGE = "add_page"
    FINISH = "finish"


@dataclass(frozen=True)
class Material:
    """One required material (申请材料) as the service item lists it."""

    code: str
    name: str  # 材料名称, e.g. 户口簿, shown on screen and as the PDF's title
    kind: PaperKind = PaperKind.A4
    max_pages: int = 1

    def __post_init__(self) -> None:
        if self.max_pages < 1:
            raise ValueError("a material has at least one page")


@dataclass(frozen=True)
class MaterialCaptureView:
    step: CaptureStep
    material: Material
    page_count: int = 0
    guidance: Guidance | None = None  # None until the first frame
    # The document's corners as shares of the frame's width and height, for the overlay.
    outline: tuple[tuple[float, float], ...] | None = None
    steady: float = 0.0  # 0..1 towards the automatic capture
    # Auto-capture waits for the next page: the one just taken is still in view.
    waiting_for_new_page: bool = False
    # The page just taken, a small JPEG for the review screen; nothing else here is an image.
    preview: bytes | None = field(default=None, repr=False)
    auto_captured: bool = False
    problem: CaptureProblem | None = None
    actions: tuple[CaptureAction, ...] = ()


@dataclass(frozen=True, repr=False)
class MaterialResult:
    material: Material
    pdf: bytes
    pages: tuple[PageImage, ...]

    @property
    def page_count(self) -> int:
        return len(self.pages)

    def __repr__(self) -> str:
        return (f"MaterialResult({self.material.code}, {self.page_count} pages, "
                f"{len(self.pdf)} bytes)")


@dataclass(frozen=True)
class MaterialCaptureSettings:
    quality: QualitySettings = field(default_factory=QualitySettings)
    auto_capture: bool = True
    auto_capture_frames: int = AUTO_CAPTURE_FRAMES
    dpi: float | None = None  # None: the paper kind's (pages.PAGE_DPI)
    max_page_bytes: int | None = None  # None: the paper kind's (pages.MAX_PAGE_BYTES)
    thumbnail_px: int = THUMBNAIL_PX


class MaterialCaptureFlow(Flow[MaterialCaptureView]):
    def __init__(self, material: Material, *, session_id: str | None = None,
                 audit: AuditSink | None = None,
                 settings: MaterialCaptureSettings | None = None) -> None:
        super().__init__(MaterialCaptureView(CaptureStep.AIMING, material,
                                             actions=(CaptureAction.CAPTURE,)))
        self.material = material
        self.session_id = session_id
        self.audit = audit
        self.settings = settings or MaterialCaptureSettings()
        self._auto = AutoCapture(self.settings.auto_capture_frames,
                                 self.settings.quality.max_motion)
        # Frames and commands come from different threads; one at a time.
        self._work = threading.RLock()
        self._pages: list[PageImage] = []
        self._latest: tuple[np.ndarray, Assessment] | None = None
        self._problem: CaptureProblem | None = None
        self._result: MaterialResult | None = None
        self._stop_watching = threading.Event()

    @property
    def result(self) -> MaterialResult | None:
        """The material once ``finish`` has run; None after ``wipe``."""
        return self._result

    @property
    def page_count(self) -> int:
        return len(self._pages)

    def start(self) -> None:
        """Begin (or begin again): no pages, the live preview."""
        with self._work:
            self._pages.clear()
            self._result = None
            self._latest = None
            self._problem = None
            self._auto.reset()
            self._aim(None)

    # -- frames ---------------------------------------------------------------------------
    def on_frame(self, frame: Frame | np.ndarray) -> Guidance | None:
        """Judge one camera frame; may capture the page. Returns the guidance shown, or None
        when the flow is not aiming (reviewing, done) and ignored the frame."""
        image = frame.image if isinstance(frame, Frame) else frame
        with self._work:
            if self.view.step is not CaptureStep.AIMING:
                return None
            previous = self._latest[1].quad if self._latest is not None else None
            assessment = assess(image, self.material.kind, previous, self.settings.quality)
            self._latest = (image, assessment)
            if self._problem is CaptureProblem.NO_FRAME or (
                    self._problem is CaptureProblem.NO_DOCUMENT
                    and assessment.detection is not None):
                self._problem = None
            if self.settings.auto_capture and self._auto.update(assessment):
                self._take(image, assessment, auto=True)
                return assessment.guidance
            self._aim(assessment)
            return assessment.guidance

    def _aim(self, assessment: Assessment | None) -> None:
        outline = None
        if assessment is not None and assessment.detection is not None:
            width, height = assessment.detection.frame_size
            outline = tuple((float(x) / width, float(y) / height)
                            for x, y in assessment.detection.quad.corners)
        actions = (CaptureAction.CAPTURE, CaptureAction.FINISH) if self._pages \
            else (CaptureAction.CAPTURE,)
        self._show(MaterialCaptureView(
            CaptureStep.AIMING, self.material, len(self._pages),
            guidance=assessment.guidance if assessment is not None else None,
            outline=outline, steady=self._auto.progress,
            waiting_for_new_page=self._auto.waiting_for_new_page,
            problem=self._problem, actions=actions))

    def watch(self, camera: Camera, timeout_s: float) -> None:
        """Feed the camera's newest frames to ``on_frame`` until the material is done, the
        citizen leaves (``stop_watching``/``cancel``) or ``timeout_s`` passes. Blocks: the UI
        runs it on a worker. Frames come from ``latest_frame``, so a slow analysis skips frames
        and never holds back the preview."""
        self._stop_watching.clear()
        deadline = time.monotonic() + timeout_s
        last_sequence = -1
        while (not self._stop_watching.is_set() and time.monotonic() < deadline
               and self.view.step in (CaptureStep.AIMING, CaptureStep.REVIEW)):
            frame = camera.latest_frame()
            if (frame is None or frame.sequence == last_sequence
                    or self.view.step is not CaptureStep.AIMING):
                self._stop_watching.wait(0.03)
                continue
            last_sequence = frame.sequence
            self.on_frame(frame)

    def stop_watching(self) -> None:
        self._stop_watching.set()

    def cancel(self) -> None:
        self._stop_watching.set()
        super().cancel()

    # -- capturing ------------------------------------------------------------------------
    def capture_now(self) -> bool:
        """The citizen pressed the button: take the latest frame even if its quality is not
        OK, provided a document is in it. False (and a problem on screen) otherwise."""
        with self._work:
            if self.view.step is not CaptureStep.AIMING:
                return False
            if self._latest is None:
                self._problem = CaptureProblem.NO_FRAME
                self._aim(None)
                return False
            image, assessment = self._latest
            if assessment.detection is None:
                self._problem = CaptureProblem.NO_DOCUMENT
                self._aim(assessment)
                return False
            self._take(image, assessment, auto=False)
            return True

    def _take(self, image: np.ndarray, assessment: Assessment, *, auto: bool) -> None:
        detection = assessment.detection
        assert detection is not None
        kind = self.material.kind
        orientation = detection.quad.orientation
        width, height = page_pixels(kind, orientation, self.settings.dpi)
        flat = warp(image, detection.quad, kind, max(width, height), orientation)
        page = encode_page(flat, kind, orientation=orientation, dpi=self.settings.dpi,
                           max_bytes=self.settings.max_page_bytes)
        preview = thumbnail_jpeg(flat, self.settings.thumbnail_px)
        self._auto.latch(assessment)
        self._pages.append(page)
        self._latest = None
        self._problem = None
        self._record("material.page", {
            "material": self.material.code, "page": len(self._pages), "auto": auto,
            "guidance": str(assessment.guidance), "dpi": round(page.dpi),
            "quality": page.quality, "bytes": len(page.jpeg)})
        self._review(preview, auto)

    def _review(self, preview: bytes | None, auto: bool,
                problem: CaptureProblem | None = None) -> None:
        more = len(self._pages) < self.material.max_pages
        actions = (CaptureAction.RETAKE, CaptureAction.ADD_PAGE, CaptureAction.FINISH) if more \
            else (CaptureAction.RETAKE, CaptureAction.FINISH)
        self._show(MaterialCaptureView(CaptureStep.REVIEW, self.material, len(self._pages),
                                       preview=preview, auto_captured=auto, problem=problem,
                                       actions=actions))

    # -- review ---------------------------------------------------------------------------
    def retake(self) -> None:
        """Drop the page just taken and photograph it again (the same page may be taken)."""
        with self._work:
            if self.view.step is not CaptureStep.REVIEW or not self._pages:
                return
            self._pages.pop()
            self._auto.reset()
            self._latest = None
            self._record("material.retake", {"material": self.material.code,
                                             "page": len(self._pages) + 1})
            self._aim(None)

    def add_page(self) -> None:
        """Go on to the next page; auto-capture waits until a different page is in view."""
        with self._work:
            if self.view.step is not CaptureStep.REVIEW:
                return
            if len(self._pages) >= self.material.max_pages:
                view = self.view
                self._review(view.preview, view.auto_captured, CaptureProblem.PAGE_LIMIT)
                return
            self._latest = None
            self._aim(None)

    def finish(self) -> MaterialResult | None:
        """The pages taken as one PDF; None (and a problem on screen) before any page."""
        with self._work:
            if self.view.step not in (CaptureStep.AIMING, CaptureStep.REVIEW):
                return self._result
            if not self._pages:
                self._problem = CaptureProblem.NO_PAGES
                self._aim(self._latest[1] if self._latest is not None else None)
                return None
            pages = tuple(self._pages)
            pdf = material_pdf(pages, title=self.material.name)
            self._result = MaterialResult(self.material, pdf, pages)
            self._latest = None
            self._record("material.done", {"material": self.material.code,
                                           "pages": len(pages), "bytes": len(pdf)})
            self._show(MaterialCaptureView(CaptureStep.DONE, self.material, len(pages)))
            return self._result

    def wipe(self) -> None:
        """Session end: every image, page and PDF this flow holds is dropped."""
        self.cancel()
        with self._work:
            self._pages.clear()
            self._latest = None
            self._result = None
            self._problem = None
            self._auto.reset()
            with self._lock:
                self._view = MaterialCaptureView(CaptureStep.CANCELLED, self.material)

    def _record(self, kind: str, detail: dict[str, object]) -> None:
        if self.audit is not None:
            self.audit.record(kind, session_id=self.session_id, detail=detail)
