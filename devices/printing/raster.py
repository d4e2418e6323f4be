"""PrintDocument -> 1-bit picture, for ESC/POS thermal heads (576 dots = 72 mm at 203 dpi) and
for the simulated printers' PNG.

Same type scale as the PDF (devices.printing.fonts). Chinese wraps at any character, Latin words
and numbers (a tracking number) stay whole, and closing punctuation never starts a line (避头尾).
A4 comes out as one long strip: pages are the PDF's business.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import segno
from PIL import Image, ImageDraw, ImageFont

from devices.printer import (
    Block,
    Field,
    Heading,
    ItemList,
    Paragraph,
    PrintDocument,
    QrCode,
    Rule,
    Signature,
    Spacer,
    Table,
    TextSize,
)
from devices.printing.fonts import FONT_PATH, LAYOUTS, MM, Layout, pil_font

_NO_LINE_START = frozenset("，。、；：？！）》」』】〕…,.;:?!)]}%")
_NO_LINE_END = frozenset("（《「『【〔([{")
_TOKEN = re.compile(r"[A-Za-z0-9@#&_\-./:+*]+|[ \t]+|.")
_THRESHOLD = 150  # grey above this is paper: antialiased edges snap to the head's dots
# The cached FreeType faces are shared; FreeType faces must not be used by two threads at once.
_LOCK = threading.Lock()

Font = ImageFont.FreeTypeFont
Op = Callable[[ImageDraw.ImageDraw, Image.Image], None]


def render_raster(document: PrintDocument, width_dots: int = 576,
                  font_path: Path = FONT_PATH) -> Image.Image:
    """The document as a mode "1" image ``width_dots`` wide, as tall as its content."""
    layout = LAYOUTS[document.media]
    with _LOCK:
        page = _Page(layout, width_dots, font_path)
        page.lay_out(document)
        image = Image.new("L", (width_dots, page.height), 255)
        draw = ImageDraw.Draw(image)
        for op in page.ops:
            op(draw, image)
    return image.point(lambda v: 255 if v > _THRESHOLD else 0, mode="1")


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    for match in _TOKEN.finditer(text):
        token = match.group()
        if tokens and not tokens[-1].isspace() and (
                token[0] in _NO_LINE_START or tokens[-1][-1] in _NO_LINE_END):
            tokens[-1] += token
        else:
            tokens.append(token)
    return tokens


@dataclass
class _Line:
    text: str
    indent: int  # first line of an indented paragraph


class _Page:
    def __init__(self, layout: Layout, width_dots: int, font_path: Path) -> None:
        self.layout = layout
        self.width = width_dots
        self.font_path = font_path
        self.dots_per_pt = width_dots / (layout.raster_span_mm * MM)
        self.margin = round(layout.raster_margin_mm * MM * self.dots_per_pt)
        self.content = width_dots - 2 * self.margin
        self.normal = self.font(layout.sizes[TextSize.NORMAL])
        self.y = round(self.normal.size * 0.6)
        self.ops: list[Op] = []
        self.label_width = 0
        self._widths: dict[tuple[int, str], float] = {}

    @property
    def height(self) -> int:
        return self.y + round(self.normal.size * 0.8)

    def font(self, points: float) -> Font:
        return pil_font(max(6, round(points * self.dots_per_pt)), self.font_path)

    def leading(self, font: Font) -> int:
        return round(font.size * self.layout.leading)

    def gap(self, lines: float) -> None:
        self.y += round(self.leading(self.normal) * lines)

    # -- text ------------------------------------------------------------------------------
    def measure(self, font: Font, token: str) -> float:
        key = (id(font), token)
        if key not in self._widths:
            self._widths[key] = font.getlength(token)
        return self._widths[key]

    def wrap(self, text: str, font: Font, width: int, first_indent: int = 0) -> list[_Line]:
        lines: list[_Line] = []
        for paragraph in text.split("\n"):
            indent = first_indent
            current, used = "", 0.0
            for token in _tokens(paragraph):
                w = self.measure(font, token)
                if current and used + w > width - indent:
                    lines.append(_Line(current.rstrip(), indent))
                    indent, current, used = 0, "", 0.0
                    if token.isspace():
                        continue
                if w > width - indent:  # one word wider than the line: break it anywhere
                    for ch in token:
                        cw = self.measure(font, ch)
                        # Closing punctuation hangs into the margin (标点悬挂) rather than
                        # start the next line.
                        if current and used + cw > width - indent and ch not in _NO_LINE_START:
                            lines.append(_Line(current, indent))
                            indent, current, used = 0, "", 0.0
                        current += ch
                        used += cw
                    continue
                current += token
                used += w
            lines.append(_Line(current.rstrip(), indent))
        return lines

    def text(self, text: str, font: Font, x: int, width: int, align: str = "left",
             bold: bool = False, first_indent: int = 0) -> None:
        step = self.leading(font)
        stroke = max(1, font.size // 30) if bold else 0
        for line in self.wrap(text, font, width, first_indent):
            if align == "center":
                lx = x + (width - self.measure(font, line.text)) / 2
            elif align == "right":
                lx = x + width - self.measure(font, line.text)
            else:
                lx = x + line.indent
            self.ops.append(_text_op((lx, self.y), line.text, font, stroke))
            self.y += step

    # -- blocks ----------------------------------------------------------------------------
    def lay_out(self, document: PrintDocument) -> None:
        labels = [b.label + "：" for b in document.blocks if isinstance(b, Field)]
        widest = max((self.measure(self.normal, label) for label in labels), default=0)
        self.label_width = round(widest + self.normal.size * 0.3)
        for block in document.blocks:
            self.block(block)

    def block(self, block: Block) -> None:
        n = self.normal
        x, width = self.margin, self.content
        match block:
            case Heading(text=text, level=1):
                self.text(text, self.font(self.layout.heading_sizes[0]), x, width, "center",
                          bold=True)
                self.gap(0.4)
            case Heading(text=text):
                self.gap(0.5)
                self.text(text, self.font(self.layout.heading_sizes[1]), x, width, bold=True)
                self.gap(0.15)
            case Paragraph(text=text, size=size, center=center, bold=bold, indent=indent):
                font = self.font(self.layout.sizes[size])
                self.text(text, font, x, width, "center" if center else "left", bold,
                          first_indent=2 * font.size if indent else 0)
                self.gap(0.35 if indent else 0.1)
            case Field(label=label, value=value):
                shown = f"{label}："
                if self.label_width > width * self.layout.field_label_max:
                    self.text(shown + value, n, x, width)
                else:
                    self.ops.append(_text_op((x, self.y), shown, n, 0))
                    self.text(value or " ", n, x + self.label_width, width - self.label_width)
                self.gap(0.1)
            case ItemList(items=items, numbered=numbered):
                marks = [f"{i}." if numbered else "•" for i in range(1, len(items) + 1)]
                indent = round(max((self.measure(n, m) for m in marks), default=0)
                               + n.size * 0.5)
                for mark, item in zip(marks, items, strict=True):
                    self.ops.append(_text_op((x, self.y), mark, n, 0))
                    self.text(item, n, x + indent, width - indent)
                    self.gap(0.1)
            case Table():
                self.table(block)
            case Rule(dashed=dashed):
                self.gap(0.3)
                self.ops.append(_rule_op(x, x + width, self.y, max(1, n.size // 12), dashed))
                self.gap(0.3)
            case Spacer(lines=lines):
                self.gap(lines)
            case QrCode(payload=payload, caption=caption, size_mm=size_mm):
                self.qr(payload, caption, size_mm)
            case Signature(label=label, value=value, date=date):
                self.gap(0.8)
                self.text(f"{label}：{value or '_' * 14}", n, x, width, "right")
                if date:
                    self.gap(0.3)
                    self.text(date, n, x, width, "right")

    def table(self, block: Table) -> None:
        n = self.normal
        weights = block.widths or (1.0,) * len(block.header)
        pad = max(2, n.size // 8)
        edges = [self.margin]
        for w in weights:
            edges.append(edges[-1] + round(self.content * w / sum(weights)))
        thick, thin = max(2, n.size // 12), 1
        self.gap(0.2)
        self.ops.append(_rule_op(edges[0], edges[-1], self.y, thick, False))
        self.y += thick + pad
        for r, row in enumerate((block.header, *block.rows)):
            top = self.y
            bottom = top
            for c, cell in enumerate(row):
                self.y = top
                self.text(cell, n, edges[c] + pad, edges[c + 1] - edges[c] - 2 * pad,
                          bold=r == 0)
                bottom = max(bottom, self.y)
            self.y = bottom + pad
            weight = thick if r == 0 else thin
            self.ops.append(_rule_op(edges[0], edges[-1], self.y, weight, False))
            self.y += weight + pad
        self.gap(0.2)

    def qr(self, payload: str, caption: str, size_mm: float) -> None:
        symbol = segno.make(payload, error="m")
        target = min(self.content, round(size_mm * MM * self.dots_per_pt))
        modules = symbol.symbol_size(scale=1, border=4)[0]
        # Whole dots per module: a fractional module would blur on a 1-bit head.
        scale = max(2, target // modules)
        picture = _qr_picture(symbol.matrix, scale)
        left, top = self.margin + (self.content - picture.width) // 2, self.y

        def paste(_draw: ImageDraw.ImageDraw, image: Image.Image) -> None:
            image.paste(picture, (left, top))

        self.ops.append(paste)
        self.y += picture.height
        if caption:
            small = self.font(self.layout.sizes[TextSize.SMALL])
            self.text(caption, small, self.margin, self.content, "center")
        self.gap(0.2)


def _qr_picture(matrix: tuple[bytearray, ...], scale: int) -> Image.Image:
    n = len(matrix)
    dots = bytes(0 if dark else 255 for row in matrix for dark in row)
    symbol = Image.frombytes("L", (n, n), dots).resize((n * scale, n * scale), Image.NEAREST)
    picture = Image.new("L", ((n + 8) * scale, (n + 8) * scale), 255)
    picture.paste(symbol, (4 * scale, 4 * scale))
    return picture


def _text_op(xy: tuple[float, float], text: str, font: Font, stroke: int) -> Op:
    def op(draw: ImageDraw.ImageDraw, _image: Image.Image) -> None:
        draw.text(xy, text, font=font, fill=0, stroke_width=stroke, stroke_fill=0)
    return op


def _rule_op(x0: int, x1: int, y: int, weight: int, dashed: bool) -> Op:
    def op(draw: ImageDraw.ImageDraw, _image: Image.Image) -> None:
        if not dashed:
            draw.rectangle((x0, y, x1 - 1, y + weight - 1), fill=0)
            return
        dash = weight * 6
        for start in range(x0, x1, 2 * dash):
            draw.rectangle((start, y, min(start + dash, x1) - 1, y + weight - 1), fill=0)
    return op
