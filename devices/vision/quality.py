"""Is this frame good enough to keep? Measurements on the found document, one piece of
guidance for the citizen, and the auto-capture trigger.

Measured on the page warped flat at about the resolution the camera gives it: sharpness
(variance of the Laplacian), glare (blown-out pixels and the largest blown-out blob),
brightness, coverage (the page's share of the frame), whether it runs off the frame, and
motion (how far the corners moved since the previous frame). Thresholds are named settings;
their defaults were set on the synthetic 1280x720 scenes of ``devices.sim.document_scenes``
with a wide margin either side (the figures are by each constant). A camera of another
resolution or noise level may need its own, through ``QualitySettings``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import cv2
import numpy as np

from devices.vision.document import Detection, PaperKind, Quad, find_document, warp

# Below this share of the frame the page is too far away for a clerk to read it. A card is
# held closer than a sheet but is still smaller in the frame.
MIN_COVERAGE: Mapping[PaperKind, float] = MappingProxyType({
    PaperKind.A4: 0.15, PaperKind.PASSPORT: 0.12, PaperKind.ID1: 0.08})
# Above this the page is so close that its edges are at the frame's.
MAX_COVERAGE = 0.9
# Variance of the Laplacian of the page at camera resolution; in-focus print on the test
# scenes measures 650-2000, defocused (sigma 3.5 px) under 80, sensor noise alone ~50.
MIN_SHARPNESS = 150.0
# A pixel this bright (max of B, G, R) has lost the print under it.
GLARE_LEVEL = 250
# Glare: the largest blown-out blob, or all blown-out pixels together, as a page share.
# (A brightly lit clean sheet clips in specks: under 0.01 on the test scenes; a reflection
# of a ceiling light is a blob of 0.1 and more.)
MAX_GLARE_BLOB = 0.02
MAX_GLARE_FRACTION = 0.05
# Mean grey level of the page below which text loses contrast in the JPEG (a sheet under
# normal light measures 180-220, an under-exposed one about 50).
MIN_BRIGHTNESS = 90.0
# Mean grey level of a whole frame below which the camera sees nothing (lights out, lens
# covered): "too dark", not "no document".
MIN_FRAME_BRIGHTNESS = 25.0
# The largest corner movement from one frame to the next, as a share of the page diagonal,
# beyond which the page (or the hand holding it) is still moving.
MAX_MOTION = 0.01
# Pages are measured warped to at most this long side (pixels): enough to see focus.
ANALYSIS_LONG_SIDE = 800
# Frames of OK guidance in a row before auto-capture fires.
AUTO_CAPTURE_FRAMES = 5
# Signatures (32x32 normalised grey) this close belong to the same page lying there still:
# frames of one page measure under 0.01 on the test scenes, two copies of one form with
# different figures in its table 0.18.
SAME_PAGE_DISTANCE = 0.12
# A page moved this far (largest corner shift over the diagonal) since it was captured was
# picked up and put down again: auto-capture re-arms.
REARM_SHIFT = 0.1


class Guidance(enum.StrEnum):
    """What the citizen should do next, one thing at a time (in this order of priority)."""

    NO_DOCUMENT = "no_document"  # 请将材料放在拍摄区
    MOVE_FURTHER = "move_further"  # 请将材料放远一些 (it runs off opposite sides)
    CORNER_CUT = "corner_cut"  # 请将材料完整放入画面
    MOVE_CLOSER = "move_closer"  # 请将材料靠近一些
    TOO_DARK = "too_dark"  # 光线太暗
    TOO_MUCH_GLARE = "too_much_glare"  # 反光太强，请调整角度
    HOLD_STILL = "hold_still"  # 请保持不动
    OK = "ok"


@dataclass(frozen=True)
class QualitySettings:
    min_coverage: Mapping[PaperKind, float] = field(default_factory=lambda: MIN_COVERAGE)
    max_coverage: float = MAX_COVERAGE
    min_sharpness: float = MIN_SHARPNESS
    glare_level: int = GLARE_LEVEL
    max_glare_blob: float = MAX_GLARE_BLOB
    max_glare_fraction: float = MAX_GLARE_FRACTION
    min_brightness: float = MIN_BRIGHTNESS
    min_frame_brightness: float = MIN_FRAME_BRIGHTNESS
    max_motion: float = MAX_MOTION
    analysis_long_side: int = ANALYSIS_LONG_SIDE


@dataclass(frozen=True)
class Measurements:
    coverage: float
    sharpness: float
    glare_fraction: float
    glare_blob: float
    brightness: float
    motion: float | None  # None on the first frame with a document


@dataclass(frozen=True, repr=False)
class Assessment:
    """One frame judged. Holds no image: ``signature`` is a 32x32 normalised grey thumbnail,
    enough to tell one page from the next and nothing a person could read."""

    guidance: Guidance
    detection: Detection | None = None
    measurements: Measurements | None = None
    signature: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"Assessment({self.guidance}, {self.detection!r}, {self.measurements})"

    @property
    def quad(self) -> Quad | None:
        return self.detection.quad if self.detection is not None else None


def assess(image: np.ndarray, kind: PaperKind, previous: Quad | None = None,
           settings: QualitySettings | None = None) -> Assessment:
    """Find the document of ``kind`` in a BGR frame and judge it. ``previous`` is the quad
    found in the frame before, for motion."""
    settings = settings or QualitySettings()
    detection = find_document(image, kind)
    if detection is None:
        gray_mean = float(cv2.mean(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))[0])
        dark = gray_mean < settings.min_frame_brightness
        return Assessment(Guidance.TOO_DARK if dark else Guidance.NO_DOCUMENT)
    page = warp(image, detection.quad, kind, _analysis_side(detection.quad, settings))
    measurements = measure(page, detection, previous, settings)
    return Assessment(guidance_for(detection, measurements, kind, settings), detection,
                      measurements, signature(page))


def measure(page: np.ndarray, detection: Detection, previous: Quad | None = None,
            settings: QualitySettings | None = None) -> Measurements:
    """The measurements of a page already warped flat (BGR) from ``detection``."""
    settings = settings or QualitySettings()
    gray = cv2.cvtColor(page, cv2.COLOR_BGR2GRAY)
    # The outermost pixels are the paper's edge and the desk's blur: not the print.
    inset = max(1, min(gray.shape) // 40)
    core = gray[inset:-inset, inset:-inset]
    sharpness = float(cv2.Laplacian(core, cv2.CV_32F).var())
    blown = (page.max(axis=2) >= settings.glare_level).astype(np.uint8)
    glare_fraction = float(blown.mean())
    glare_blob = 0.0
    if glare_fraction > 0:
        count, _, stats, _ = cv2.connectedComponentsWithStats(blown, connectivity=8)
        if count > 1:
            glare_blob = float(stats[1:, cv2.CC_STAT_AREA].max()) / blown.size
    motion = detection.quad.shift(previous) if previous is not None else None
    return Measurements(detection.coverage, sharpness, glare_fraction, glare_blob,
                        float(core.mean()), motion)


def guidance_for(detection: Detection, m: Measurements, kind: PaperKind,
                 settings: QualitySettings | None = None) -> Guidance:
    """One instruction: placement first (nothing else can be judged on a page half out of
    view), then light, then steadiness."""
    settings = settings or QualitySettings()
    cut = detection.cut_sides
    if ({"top", "bottom"} <= cut or {"left", "right"} <= cut
            or (cut and m.coverage > settings.max_coverage)):
        return Guidance.MOVE_FURTHER
    if cut:
        return Guidance.CORNER_CUT
    if m.coverage > settings.max_coverage:
        return Guidance.MOVE_FURTHER
    if m.coverage < settings.min_coverage.get(kind, min(settings.min_coverage.values())):
        return Guidance.MOVE_CLOSER
    if m.brightness < settings.min_brightness:
        return Guidance.TOO_DARK
    if m.glare_blob > settings.max_glare_blob or m.glare_fraction > settings.max_glare_fraction:
        return Guidance.TOO_MUCH_GLARE
    if m.motion is not None and m.motion > settings.max_motion:
        return Guidance.HOLD_STILL
    if m.sharpness < settings.min_sharpness:
        return Guidance.HOLD_STILL
    return Guidance.OK


def signature(page: np.ndarray) -> np.ndarray:
    """32x32 grey, zero mean, unit variance: what a page looks like from far away."""
    gray = cv2.cvtColor(page, cv2.COLOR_BGR2GRAY) if page.ndim == 3 else page
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    return (small - small.mean()) / max(1e-3, float(small.std()))


def same_page(first: np.ndarray, second: np.ndarray,
              distance: float = SAME_PAGE_DISTANCE) -> bool:
    return float(np.abs(first - second).mean()) < distance


def _analysis_side(quad: Quad, settings: QualitySettings) -> int:
    return max(32, min(settings.analysis_long_side, round(max(quad.sides))))


class AutoCapture:
    """Fires once the guidance has been OK for ``frames_needed`` frames in a row with the
    page not moving between them. Having fired it waits for a different page, so the page
    just captured is not captured again while it still lies there: it re-arms when the
    camera sees no document, the page is moved well away from where it was captured, or a
    page that looks different lies there. ``reset`` re-arms at once (a retake)."""

    def __init__(self, frames_needed: int = AUTO_CAPTURE_FRAMES, max_motion: float = MAX_MOTION,
                 same_page_distance: float = SAME_PAGE_DISTANCE,
                 rearm_shift: float = REARM_SHIFT) -> None:
        if frames_needed < 1:
            raise ValueError("frames_needed must be at least 1")
        self.frames_needed = frames_needed
        self.max_motion = max_motion
        self.same_page_distance = same_page_distance
        self.rearm_shift = rearm_shift
        self._streak = 0
        self._last_quad: Quad | None = None
        # The page last captured: its signature and where it lay.
        self._captured: tuple[np.ndarray | None, Quad | None] | None = None

    @property
    def progress(self) -> float:
        """0..1 towards firing, for a ring on the preview."""
        return min(1.0, self._streak / self.frames_needed)

    @property
    def waiting_for_new_page(self) -> bool:
        return self._captured is not None

    def update(self, assessment: Assessment) -> bool:
        """Feed one frame's assessment; True exactly on the frame that should be captured."""
        quad = assessment.quad
        if self._captured is not None:
            if self._another_page(assessment):
                self._captured = None
            else:
                self._streak = 0
                self._last_quad = quad
                return False
        steady = (quad is not None and self._last_quad is not None
                  and quad.shift(self._last_quad) <= self.max_motion)
        if assessment.guidance is not Guidance.OK:
            self._streak = 0
        elif steady or self._streak == 0:
            self._streak += 1
        else:
            self._streak = 1
        self._last_quad = quad
        if self._streak >= self.frames_needed:
            self.latch(assessment)
            return True
        return False

    def _another_page(self, assessment: Assessment) -> bool:
        assert self._captured is not None
        captured_signature, captured_quad = self._captured
        if assessment.detection is None:
            return assessment.guidance is Guidance.NO_DOCUMENT
        if captured_quad is not None and assessment.detection.quad.shift(captured_quad) \
                > self.rearm_shift:
            return True
        return (assessment.signature is not None and captured_signature is not None
                and not same_page(assessment.signature, captured_signature,
                                  self.same_page_distance))

    def latch(self, captured: Assessment) -> None:
        """A page was captured (automatically or by the button): wait for another."""
        self._streak = 0
        signature = captured.signature.copy() if captured.signature is not None else None
        self._captured = (signature, captured.quad)

    def reset(self) -> None:
        self._streak = 0
        self._last_quad = None
        self._captured = None
