"""What a simulated printer 'prints': the real PDF (as CUPS would get it), a picture of the
paper (as an ESC/POS head would print it) and the plain text, so testers can look at a print
and tests can read it back. Thin: the rendering is devices.printing's."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from devices.printer import Media, PrintDocument
from devices.printing import FONT_PATH, RenderedPdf, layout_pdf, render_raster

__all__ = ["FONT_PATH", "render_pdf_pages", "render_png", "render_text"]

# The roll as a 203 dpi head prints it (576 dots); A4 at 150 dpi, a screen-sized look.
_WIDTH_DOTS = {Media.ROLL_80MM: 576, Media.A4: 1240}


def render_png(document: PrintDocument, font_path: Path = FONT_PATH) -> Image.Image:
    return render_raster(document, _WIDTH_DOTS[document.media], font_path)


def render_pdf_pages(document: PrintDocument, font_path: Path = FONT_PATH) -> RenderedPdf:
    return layout_pdf(document, font_path)


def render_text(document: PrintDocument) -> str:
    return document.text() + "\n"
