"""Renders a PrintDocument to a picture of the paper, so what the simulated printer 'printed'
can be looked at and read back by tests (text file beside it)."""

from __future__ import annotations

from pathlib import Path

import segno
from PIL import Image, ImageDraw, ImageFont

from devices.printer import Media, PrintDocument, TextSize

FONT_PATH = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
# 80 mm roll at 203 dpi prints 576 dots; A4 at 100 dpi for a screen-sized look.
_WIDTH = {Media.ROLL_80MM: 576, Media.A4: 827}
_SIZE = {TextSize.NORMAL: 26, TextSize.LARGE: 38, TextSize.HUGE: 96}


def _font(size: int, font_path: Path) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path), size)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont,
          width: int) -> list[str]:
    """Wrap by character: Chinese has no spaces to break at."""
    lines: list[str] = []
    current = ""
    for ch in text:
        if draw.textlength(current + ch, font=font) > width and current:
            lines.append(current)
            current = ch
        else:
            current += ch
    lines.append(current)
    return lines


def render_png(document: PrintDocument, font_path: Path = FONT_PATH) -> Image.Image:
    width = _WIDTH[document.media]
    margin = 24
    scratch = ImageDraw.Draw(Image.new("L", (1, 1)))
    rows: list[tuple[str, ImageFont.FreeTypeFont, bool]] = []
    for line in ((document.title, TextSize.LARGE, True), *(
            (pl.text, pl.size, pl.center) for pl in document.lines)):
        text, size, center = line
        font = _font(_SIZE[size], font_path)
        for part in _wrap(scratch, text, font, width - 2 * margin):
            rows.append((part, font, center))
    qr_img = None
    if document.qr:
        qr_img = segno.make(document.qr, error="m").to_pil(scale=6, border=2).convert("L")
    height = margin * 2 + sum(int(f.size * 1.4) for _, f, _ in rows)
    height += (qr_img.height + margin) if qr_img else 0
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    y = margin
    for text, font, center in rows:
        x = (width - draw.textlength(text, font=font)) / 2 if center else margin
        draw.text((x, y), text, font=font, fill=0)
        y += int(font.size * 1.4)
    if qr_img is not None:
        page.paste(qr_img, ((width - qr_img.width) // 2, y))
    return page


def render_text(document: PrintDocument) -> str:
    text = document.text()
    if document.qr:
        text += f"\n[QR] {document.qr}"
    return text + "\n"
