"""Page JPEGs (resolution, size bound) and the material PDF, read back with poppler's
pdfinfo / pdfimages as a clerk's viewer would read it."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from devices.sim.document_scenes import render_page
from devices.vision.document import Orientation, PaperKind
from devices.vision.pages import (
    JPEG_QUALITIES,
    MAX_PAGE_BYTES,
    PageImage,
    encode_page,
    material_pdf,
    page_pixels,
    thumbnail_jpeg,
)

needs_poppler = pytest.mark.skipif(shutil.which("pdfinfo") is None, reason="poppler-utils")


def printed(kind: PaperKind, orientation: Orientation | None = None) -> np.ndarray:
    page = render_page(kind, seed=3)
    if orientation is Orientation.LANDSCAPE and page.shape[0] > page.shape[1]:
        page = np.ascontiguousarray(np.rot90(page))
    return page


def noise_page(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """The worst case for JPEG: nothing to compress."""
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


@pytest.mark.parametrize(("kind", "size"), [
    (PaperKind.A4, (1654, 2339)),  # 200 dpi
    (PaperKind.ID1, (1011, 638)),  # 300 dpi
    (PaperKind.PASSPORT, (1476, 1039)),  # 300 dpi
])
def test_a_page_is_encoded_at_the_kinds_resolution_within_its_bound(kind, size):
    page = encode_page(printed(kind), kind)
    assert (page.width_px, page.height_px) == size
    assert len(page.jpeg) <= MAX_PAGE_BYTES[kind]
    decoded = Image.open(io.BytesIO(page.jpeg))
    assert decoded.format == "JPEG"
    assert decoded.size == size
    assert decoded.info["dpi"] == pytest.approx((page.dpi, page.dpi), abs=0.5)


def test_a_landscape_sheet_stays_landscape():
    page = encode_page(printed(PaperKind.A4, Orientation.LANDSCAPE), PaperKind.A4)
    assert page.orientation is Orientation.LANDSCAPE
    assert (page.width_px, page.height_px) == (2339, 1654)
    assert page.size_mm == (297.0, 210.0)


def test_quality_steps_down_before_resolution():
    page_image = printed(PaperKind.A4)
    best = encode_page(page_image, PaperKind.A4, max_bytes=10_000_000)
    assert best.quality == JPEG_QUALITIES[0]
    bound = len(best.jpeg) * 3 // 4
    squeezed = encode_page(page_image, PaperKind.A4, max_bytes=bound)
    assert len(squeezed.jpeg) <= bound
    assert squeezed.quality < best.quality
    # The best quality that fits: one step up would not have.
    better = JPEG_QUALITIES[JPEG_QUALITIES.index(squeezed.quality) - 1]
    decoded = Image.open(io.BytesIO(best.jpeg))
    again = io.BytesIO()
    Image.fromarray(cv2.resize(page_image, decoded.size, interpolation=cv2.INTER_CUBIC)[
        :, :, ::-1]).save(again, "JPEG", quality=better, optimize=True, dpi=(200, 200))
    assert len(again.getvalue()) > bound
    assert squeezed.dpi == 200 and (squeezed.width_px, squeezed.height_px) == (1654, 2339)


def test_a_page_that_will_not_compress_loses_resolution_not_the_bound():
    page = encode_page(noise_page((1039, 1476)), PaperKind.PASSPORT, max_bytes=150_000)
    assert len(page.jpeg) <= 150_000
    assert page.dpi < 300
    assert (page.width_px, page.height_px) == page_pixels(PaperKind.PASSPORT,
                                                          Orientation.LANDSCAPE, page.dpi)
    # Still the passport page's shape.
    assert page.width_px / page.height_px == pytest.approx(125 / 88, rel=0.01)


def test_the_bound_holds_whatever_the_page_shows():
    page = encode_page(noise_page((2339, 1654)), PaperKind.A4)
    assert len(page.jpeg) <= MAX_PAGE_BYTES[PaperKind.A4]
    assert page.quality in JPEG_QUALITIES


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        encode_page(np.zeros((10, 10), np.uint8), PaperKind.A4)
    with pytest.raises(ValueError):
        material_pdf([])


def test_the_thumbnail_is_small():
    data = thumbnail_jpeg(printed(PaperKind.A4))
    thumb = Image.open(io.BytesIO(data))
    assert max(thumb.size) == 240
    assert len(data) < 30_000
    assert repr(encode_page(printed(PaperKind.ID1), PaperKind.ID1)).startswith("PageImage(id1")


def pdf_pages(pdf: bytes, tmp_path: Path) -> tuple[int, list[tuple[float, float]]]:
    path = tmp_path / "material.pdf"
    path.write_bytes(pdf)
    info = subprocess.run(["pdfinfo", "-f", "1", "-l", "99", str(path)], capture_output=True,
                          text=True, check=True).stdout
    count = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))
    sizes = [(float(w), float(h)) for w, h in
             re.findall(r"^Page\s+\d+ size:\s+([\d.]+) x ([\d.]+) pts", info, re.M)]
    return count, sizes


@needs_poppler
def test_the_pdf_has_a_page_per_image_at_the_paper_size(tmp_path):
    pages = [encode_page(printed(PaperKind.A4), PaperKind.A4),
             encode_page(printed(PaperKind.A4, Orientation.LANDSCAPE), PaperKind.A4),
             encode_page(printed(PaperKind.ID1), PaperKind.ID1)]
    pdf = material_pdf(pages, title="户口簿")
    count, sizes = pdf_pages(pdf, tmp_path)
    assert count == 3
    points = 72 / 25.4
    expected = [(210, 297), (297, 210), (85.6, 53.98)]
    for (w, h), (w_mm, h_mm) in zip(sizes, expected, strict=True):
        assert w == pytest.approx(w_mm * points, abs=0.5)
        assert h == pytest.approx(h_mm * points, abs=0.5)


@needs_poppler
def test_the_pdf_embeds_each_jpeg_as_it_is(tmp_path):
    pages = [encode_page(printed(PaperKind.ID1), PaperKind.ID1),
             encode_page(printed(PaperKind.PASSPORT), PaperKind.PASSPORT)]
    path = tmp_path / "m.pdf"
    path.write_bytes(material_pdf(pages))
    listing = subprocess.run(["pdfimages", "-list", str(path)], capture_output=True, text=True,
                             check=True).stdout.splitlines()[2:]
    rows = [line.split() for line in listing]
    assert [(int(r[3]), int(r[4]), r[8], int(r[12])) for r in rows] == [
        (p.width_px, p.height_px, "jpeg", round(p.dpi)) for p in pages]
    subprocess.run(["pdfimages", "-j", str(path), str(tmp_path / "img")], check=True)
    extracted = sorted(tmp_path.glob("img-*.jpg"))
    # Not decoded and compressed again: the very bytes that were encoded.
    assert [p.read_bytes() for p in extracted] == [p.jpeg for p in pages]


def test_the_same_pages_make_the_same_pdf():
    pages = [encode_page(printed(PaperKind.ID1), PaperKind.ID1)]
    assert material_pdf(pages, "身份证") == material_pdf(pages, "身份证")


def test_pages_are_images_of_the_page():
    page = encode_page(printed(PaperKind.ID1), PaperKind.ID1)
    decoded = cv2.imdecode(np.frombuffer(page.jpeg, np.uint8), cv2.IMREAD_COLOR)
    original = cv2.resize(printed(PaperKind.ID1), (page.width_px, page.height_px),
                          interpolation=cv2.INTER_AREA)
    assert np.abs(decoded.astype(int) - original.astype(int)).mean() < 6


def test_page_image_repr_holds_no_bytes():
    page = PageImage(b"\xff\xd8secret", PaperKind.A4, Orientation.PORTRAIT, 10, 14, 200.0, 90)
    assert "secret" not in repr(page)
