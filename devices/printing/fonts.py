"""The print typeface and type scale shared by the PDF and the raster renderer, so a document
has the same proportions on a CUPS page and on a thermal head."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from PIL import ImageFont
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

from devices.printer import Media, TextSize

# fonts-wqy-microhei (Debian); the .ttc's first face is the proportional one.
FONT_PATH = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")

MM = 72 / 25.4  # points per millimetre


@dataclass(frozen=True)
class Layout:
    """Sizes in points, lengths in millimetres."""

    page_width_mm: float  # the PDF page
    margin_mm: float  # left and right on the PDF page
    sizes: Mapping[TextSize, float]
    heading_sizes: tuple[float, float]  # level 1, level 2
    field_label_max: float  # share of the content width a field label column may take
    # What ``width_dots`` spans on a raster printer: the head's printable width for the roll
    # (576 dots = 72 mm at 203 dpi), the whole sheet for A4.
    raster_span_mm: float
    raster_margin_mm: float
    leading: float = 1.45

    @property
    def content_width_mm(self) -> float:
        return self.page_width_mm - 2 * self.margin_mm


LAYOUTS: Mapping[Media, Layout] = MappingProxyType({
    Media.ROLL_80MM: Layout(
        page_width_mm=80, margin_mm=4,
        sizes=MappingProxyType({TextSize.SMALL: 8.5, TextSize.NORMAL: 10, TextSize.LARGE: 14,
                                TextSize.HUGE: 40}),
        heading_sizes=(15, 11.5), field_label_max=0.42, raster_span_mm=72, raster_margin_mm=1.5),
    Media.A4: Layout(
        page_width_mm=210, margin_mm=20,
        sizes=MappingProxyType({TextSize.SMALL: 9, TextSize.NORMAL: 11, TextSize.LARGE: 15,
                                TextSize.HUGE: 36}),
        heading_sizes=(20, 13), field_label_max=0.3, raster_span_mm=210, raster_margin_mm=20),
})

A4_HEIGHT_MM = 297.0


@functools.cache
def pdf_font(font_path: Path = FONT_PATH) -> str:
    """Register the TrueType face with reportlab once per path; returns its font name.

    Embedded as a TrueType subset: reportlab's built-in CID fonts are not embedded and lose
    their digits and Latin letters once CUPS has processed the file.
    """
    if not font_path.exists():
        raise FileNotFoundError(f"print font missing: {font_path} (apt-get install fonts-wqy-microhei)")
    name = f"ZizhuPrint-{font_path.stem}"
    subfont = 0 if font_path.suffix.lower() in (".ttc", ".otc") else -1
    font = TTFont(name, str(font_path), subfontIndex=subfont) if subfont >= 0 else TTFont(
        name, str(font_path))
    pdfmetrics.registerFont(font)
    # One face only: <b> in a paragraph must not fall back to Helvetica (no CJK glyphs).
    pdfmetrics.registerFontFamily(name, normal=name, bold=name, italic=name, boldItalic=name)
    return name


@functools.lru_cache(maxsize=64)
def pil_font(size_px: int, font_path: Path = FONT_PATH) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path), size_px, index=0)
