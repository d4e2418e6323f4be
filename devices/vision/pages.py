"""Captured pages as the back office receives them: a JPEG per page at a resolution a clerk
can read, bounded in size, and one PDF per material with every page at its paper's size.

Everything stays in memory (bytes): these are personal data and must not reach a disk
outside the encrypted outbox (DESIGN.md). The PDF embeds each JPEG as it is (DCTDecode, no
second compression); reportlab wraps the stream in ASCII85 unless ``RL_useA85=0`` is set in
the environment, which makes the PDF a quarter smaller.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import cv2
import numpy as np
from PIL import Image
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from devices.vision.document import Orientation, PaperKind, page_size_px

# A clerk reads a sheet at 200 dpi (1654x2339 for A4); a card's or a passport's small print
# and photo need 300.
PAGE_DPI: Mapping[PaperKind, int] = MappingProxyType({
    PaperKind.A4: 200, PaperKind.ID1: 300, PaperKind.PASSPORT: 300})
# Upper bound of one page's JPEG: what the outbox and the back office budget per page.
MAX_PAGE_BYTES: Mapping[PaperKind, int] = MappingProxyType({
    PaperKind.A4: 600_000, PaperKind.ID1: 250_000, PaperKind.PASSPORT: 400_000})
# JPEG qualities tried, best first; below the floor the text's edges ring, so the
# resolution is reduced instead (by at least RESOLUTION_STEP a time).
JPEG_QUALITIES = (90, 85, 80, 75, 70, 65, 60, 55, 50)
RESOLUTION_STEP = 0.85
# The preview the citizen sees of a captured page (long side, pixels).
THUMBNAIL_PX = 240


@dataclass(frozen=True, repr=False)
class PageImage:
    """One page's JPEG and what it measures. Personal data: never logged, never on disk."""

    jpeg: bytes
    kind: PaperKind
    orientation: Orientation
    width_px: int
    height_px: int
    dpi: float
    quality: int

    def __repr__(self) -> str:
        return (f"PageImage({self.kind}, {self.width_px}x{self.height_px} px, "
                f"{self.dpi:.0f} dpi, q{self.quality}, {len(self.jpeg)} bytes)")

    @property
    def size_mm(self) -> tuple[float, float]:
        """(width, height) of the paper as this page lies."""
        short, long = self.kind.size_mm
        return (long, short) if self.orientation is Orientation.LANDSCAPE else (short, long)


def page_pixels(kind: PaperKind, orientation: Orientation, dpi: float | None = None) -> tuple[int, int]:
    """(width, height) of a page of ``kind`` at ``dpi`` (default: the kind's)."""
    dpi = dpi or PAGE_DPI[kind]
    return page_size_px(kind, orientation, round(kind.size_mm[1] / 25.4 * dpi))


def encode_page(page: np.ndarray, kind: PaperKind, *, orientation: Orientation | None = None,
                dpi: float | None = None, max_bytes: int | None = None) -> PageImage:
    """A flat page (BGR, as warped) as a JPEG at ``dpi`` no larger than ``max_bytes``: the
    quality steps down first, then the resolution, until it fits."""
    if page.ndim != 3 or page.shape[2] != 3 or page.dtype != np.uint8:
        raise ValueError("page must be an H x W x 3 uint8 BGR image")
    if orientation is None:
        landscape = page.shape[1] > page.shape[0]
        orientation = Orientation.LANDSCAPE if landscape else Orientation.PORTRAIT
    dpi = float(dpi or PAGE_DPI[kind])
    limit = max_bytes or MAX_PAGE_BYTES[kind]
    rgb = cv2.cvtColor(page, cv2.COLOR_BGR2RGB)
    while True:
        width, height = page_pixels(kind, orientation, dpi)
        if (width, height) != (rgb.shape[1], rgb.shape[0]):
            shrinking = width < rgb.shape[1]
            sized = cv2.resize(rgb, (width, height), interpolation=(
                cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC))
        else:
            sized = rgb
        image = Image.fromarray(sized)
        found = _best_quality(image, dpi, limit)
        if found is not None:
            quality, data = found
            return PageImage(data, kind, orientation, width, height, dpi, quality)
        if min(width, height) <= 16:
            raise ValueError(f"cannot fit a page in {limit} bytes")
        # Bytes grow about with the pixel count: aim under the bound in one step if we can.
        floor_size = len(_jpeg(image, JPEG_QUALITIES[-1], dpi))
        dpi *= min(RESOLUTION_STEP, 0.95 * math.sqrt(limit / floor_size))


def _best_quality(image: Image.Image, dpi: float, limit: int) -> tuple[int, bytes] | None:
    """The highest of JPEG_QUALITIES whose JPEG fits in ``limit`` (a bisection: the size
    falls with the quality), or None when not even the floor fits."""
    first = _jpeg(image, JPEG_QUALITIES[0], dpi)
    if len(first) <= limit:
        return JPEG_QUALITIES[0], first
    floor = _jpeg(image, JPEG_QUALITIES[-1], dpi)
    if len(floor) > limit:
        return None
    fits, best = len(JPEG_QUALITIES) - 1, floor
    too_big = 0
    while fits - too_big > 1:
        middle = (fits + too_big) // 2
        data = _jpeg(image, JPEG_QUALITIES[middle], dpi)
        if len(data) <= limit:
            fits, best = middle, data
        else:
            too_big = middle
    return JPEG_QUALITIES[fits], best


def thumbnail_jpeg(page: np.ndarray, max_side: int = THUMBNAIL_PX) -> bytes:
    """A small JPEG of the page for the review screen."""
    height, width = page.shape[:2]
    factor = min(1.0, max_side / max(height, width))
    small = cv2.resize(page, (max(1, round(width * factor)), max(1, round(height * factor))),
                       interpolation=cv2.INTER_AREA)
    return _jpeg(Image.fromarray(cv2.cvtColor(small, cv2.COLOR_BGR2RGB)), 80, None)


def material_pdf(pages: Sequence[PageImage], title: str = "") -> bytes:
    """One PDF, a page per image, each page the size of its paper with the image filling it.
    The same pages give the same bytes (no timestamp), so a resend is recognisable."""
    if not pages:
        raise ValueError("a material needs at least one page")
    out = io.BytesIO()
    canvas = Canvas(out, invariant=True, pageCompression=1)
    canvas.setCreator("Zizhu kiosk")
    if title:
        canvas.setTitle(title)
    for page in pages:
        width_mm, height_mm = page.size_mm
        canvas.setPageSize((width_mm * mm, height_mm * mm))
        canvas.drawImage(ImageReader(io.BytesIO(page.jpeg)), 0, 0, width_mm * mm, height_mm * mm)
        canvas.showPage()
    canvas.save()
    return out.getvalue()


def _jpeg(image: Image.Image, quality: int, dpi: float | None) -> bytes:
    buffer = io.BytesIO()
    options: dict[str, object] = {"quality": quality, "optimize": True}
    if dpi:
        options["dpi"] = (round(dpi), round(dpi))
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()
