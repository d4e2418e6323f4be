"""PrintDocument -> PDF with reportlab, for CUPS (the A4 printer) and PDF-fed roll printers.

The CJK TrueType font is embedded (a subset); text wraps by character (wordWrap="CJK"); A4
documents paginate with the header and "第 n 页 / 共 m 页" on every page; a roll document is one
80 mm wide page exactly as long as its content. QR codes are vector paths, so they stay sharp
at any printer resolution.
"""

from __future__ import annotations

import functools
import io
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import segno
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_LEFT, TA_RIGHT
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    HRFlowable,
    KeepTogether,
    PageTemplate,
    TableStyle,
)
from reportlab.platypus import Paragraph as RLParagraph
from reportlab.platypus import Spacer as RLSpacer
from reportlab.platypus import Table as RLTable

from devices.printer import (
    Block,
    Field,
    Heading,
    ItemList,
    Media,
    Paragraph,
    PrintDocument,
    QrCode,
    Rule,
    Signature,
    Spacer,
    Table,
    TextSize,
)
from devices.printing.fonts import A4_HEIGHT_MM, FONT_PATH, LAYOUTS, MM, Layout, pdf_font

_A4_TOP_MM, _A4_BOTTOM_MM = 24.0, 20.0  # room for the repeated header and the page footer
_ROLL_END_MM = 5.0  # blank paper above and below a roll document, where the cutter bites
_QR_BORDER = 4  # quiet zone in modules (ISO/IEC 18004)
# A page object's dictionary; "/Type /Pages" (the page tree) is not one.
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
# reportlab keeps a font's subset state on the shared TTFont and is not documented as
# thread-safe; the receipt and the A4 printer may render at the same moment.
_LOCK = threading.Lock()


@dataclass(frozen=True)
class RenderedPdf:
    data: bytes
    pages: int


def pdf_page_count(pdf: bytes) -> int:
    """Pages in a PDF made elsewhere (a certificate from the back office), for the paper count
    and the job log. Page dictionaries are plain objects in reportlab's and most producers'
    files; where they hide in compressed object streams this says 1, which only the paper
    counter of a simulated printer would notice."""
    return max(1, len(_PDF_PAGE.findall(pdf)))


def render_pdf(document: PrintDocument, font_path: Path = FONT_PATH) -> bytes:
    return layout_pdf(document, font_path).data


def layout_pdf(document: PrintDocument, font_path: Path = FONT_PATH) -> RenderedPdf:
    """The PDF and its page count (what a printer counts against its paper)."""
    layout = LAYOUTS[document.media]
    with _LOCK:
        font = pdf_font(font_path)
        if document.media is Media.A4:
            return _a4(document, layout, font)
        return _roll(document, layout, font)


# -- page formats ------------------------------------------------------------------------------
def _canvas_maker(font: str) -> Callable[..., Canvas]:
    # Without an initial font the canvas names Helvetica in every page's resources: a font
    # that is neither embedded nor used.
    return functools.partial(Canvas, initialFontName=font, invariant=1)


def _roll(document: PrintDocument, layout: Layout, font: str) -> RenderedPdf:
    width = layout.content_width_mm * MM
    story = _Story(layout, font, width, paginated=False).build(document)
    placed: list[tuple[Flowable, float, float]] = []  # flowable, height, space around
    for flowable in story:
        _w, h = flowable.wrap(width, 1e6)
        placed.append((flowable, h, flowable.getSpaceBefore() + flowable.getSpaceAfter()))
    height = sum(h + space for _f, h, space in placed) + 2 * _ROLL_END_MM * MM
    buffer = io.BytesIO()
    canvas = _canvas_maker(font)(buffer, pagesize=(layout.page_width_mm * MM, height))
    _set_info(canvas, document)
    y = height - _ROLL_END_MM * MM
    for flowable, h, _space in placed:
        y -= flowable.getSpaceBefore()
        flowable.drawOn(canvas, layout.margin_mm * MM, y - h)
        y -= h + flowable.getSpaceAfter()
    canvas.showPage()
    canvas.save()
    return RenderedPdf(buffer.getvalue(), 1)


def _a4(document: PrintDocument, layout: Layout, font: str) -> RenderedPdf:
    # Two passes: "共 m 页" needs m before page 1 is drawn (a pass is 15-50 ms).
    total = _build_a4(document, layout, font, io.BytesIO(), total=None)
    buffer = io.BytesIO()
    pages = _build_a4(document, layout, font, buffer, total=total)
    return RenderedPdf(buffer.getvalue(), pages)


def _build_a4(document: PrintDocument, layout: Layout, font: str, out: io.BytesIO,
              total: int | None) -> int:
    page_w, page_h = layout.page_width_mm * MM, A4_HEIGHT_MM * MM
    margin = layout.margin_mm * MM
    frame = Frame(margin, _A4_BOTTOM_MM * MM, page_w - 2 * margin,
                  page_h - (_A4_TOP_MM + _A4_BOTTOM_MM) * MM,
                  leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)
    pages = [0]
    small = layout.sizes[TextSize.SMALL]
    header = _fit(document.header or document.title, font, small, page_w - 2 * margin)

    def decorate(canvas: Canvas, doc: BaseDocTemplate) -> None:
        pages[0] = doc.page
        canvas.saveState()
        canvas.setFont(font, small)
        canvas.setFillColor(colors.HexColor("#444444"))
        top = page_h - 14 * MM
        canvas.drawString(margin, top, header)
        canvas.setStrokeColor(colors.HexColor("#888888"))
        canvas.setLineWidth(0.5)
        canvas.line(margin, top - 2 * MM, page_w - margin, top - 2 * MM)
        footer = f"第 {doc.page} 页 / 共 {total if total is not None else '?'} 页"
        canvas.drawCentredString(page_w / 2, 10 * MM, footer)
        canvas.restoreState()

    doc = BaseDocTemplate(out, pagesize=(page_w, page_h), title=document.title,
                          author="Zizhu", creator="Zizhu", subject=document.kind,
                          invariant=1, initialFontName=font, pageTemplates=[
                              PageTemplate("page", frames=[frame], onPage=decorate)])
    # An empty document is still one (blank) sheet, never a PDF without pages.
    story = _Story(layout, font, frame.width, paginated=True).build(document) or [RLSpacer(1, 1)]
    doc.build(story)
    return pages[0]


def _fit(text: str, font: str, size: float, width: float) -> str:
    """One line: a header too long for the page loses its end, not the page its margin."""
    while text and stringWidth(text, font, size) > width:
        text = text[:-2] + "…"
    return text


def _set_info(canvas: Canvas, document: PrintDocument) -> None:
    canvas.setTitle(document.title)
    canvas.setAuthor("Zizhu")
    canvas.setCreator("Zizhu")
    canvas.setSubject(document.kind)


# -- blocks -> flowables -----------------------------------------------------------------------
def _markup(text: str) -> str:
    return escape(text).replace("\n", "<br/>")


class _BoldParagraph(RLParagraph):
    """The face has no bold: fill and stroke the glyphs instead (PDF text render mode 2)."""

    def draw(self) -> None:
        canvas = self.canv
        canvas.saveState()
        canvas.setLineWidth(self.style.fontSize * 0.035)
        canvas.setStrokeColor(colors.black)
        canvas.addLiteral("2 Tr")
        super().draw()
        canvas.restoreState()


class _QrFlowable(Flowable):
    """A QR symbol as one filled vector path, centred in the frame."""

    def __init__(self, payload: str, size_pt: float) -> None:
        super().__init__()
        self.matrix = segno.make(payload, error="m").matrix
        self.size = size_pt
        self.avail = size_pt

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        self.avail = availWidth
        self.size = min(self.size, availWidth)
        return availWidth, self.size

    def draw(self) -> None:
        n = len(self.matrix)
        module = self.size / (n + 2 * _QR_BORDER)
        x0 = (self.avail - self.size) / 2 + _QR_BORDER * module
        top = self.size - _QR_BORDER * module
        path = self.canv.beginPath()
        for r, row in enumerate(self.matrix):
            c = 0
            while c < n:
                if row[c]:
                    start = c
                    while c < n and row[c]:
                        c += 1
                    path.rect(x0 + start * module, top - (r + 1) * module,
                              (c - start) * module, module)
                else:
                    c += 1
        self.canv.setFillColor(colors.black)
        self.canv.drawPath(path, stroke=0, fill=1)


class _Story:
    def __init__(self, layout: Layout, font: str, width: float, paginated: bool) -> None:
        self.layout = layout
        self.font = font
        self.width = width
        self.paginated = paginated
        self.normal = layout.sizes[TextSize.NORMAL]
        self.label_width = 0.0

    def style(self, size: float, align: int = TA_LEFT, **extra: float) -> ParagraphStyle:
        return ParagraphStyle("p", fontName=self.font, fontSize=size,
                              leading=size * self.layout.leading, alignment=align,
                              wordWrap="CJK", bulletFontName=self.font, bulletFontSize=size,
                              **extra)

    def build(self, document: PrintDocument) -> list[Flowable]:
        labels = [b.label + "：" for b in document.blocks if isinstance(b, Field)]
        widest = max((stringWidth(label, self.font, self.normal) for label in labels), default=0)
        self.label_width = widest + self.normal * 0.3
        story: list[Flowable] = []
        for block in document.blocks:
            story.extend(self.flowables(block))
        return story

    def flowables(self, block: Block) -> Iterable[Flowable]:
        n = self.normal
        match block:
            case Heading(text=text, level=1):
                size = self.layout.heading_sizes[0]
                yield _BoldParagraph(_markup(text), self.style(size, TA_CENTER,
                                                               spaceAfter=n * 0.6))
            case Heading(text=text):
                size = self.layout.heading_sizes[1]
                yield _BoldParagraph(_markup(text), self.style(
                    size, spaceBefore=n * 0.7, spaceAfter=n * 0.25))
            case Paragraph():
                yield self.paragraph(block)
            case Field(label=label, value=value):
                yield self.field(label, value)
            case ItemList(items=items, numbered=numbered):
                marks = [f"{i}." if numbered else "•" for i in range(1, len(items) + 1)]
                indent = max((stringWidth(m, self.font, n) for m in marks), default=0) + n * 0.5
                for mark, item in zip(marks, items, strict=True):
                    yield RLParagraph(_markup(item), self.style(n, leftIndent=indent,
                                                                spaceAfter=n * 0.15),
                                      bulletText=mark)
            case Table():
                yield self.table(block)
            case Rule(dashed=dashed):
                yield HRFlowable(width="100%", thickness=0.6, color=colors.black,
                                 dash=(2, 2) if dashed else None,
                                 spaceBefore=n * 0.4, spaceAfter=n * 0.4)
            case Spacer(lines=lines):
                yield RLSpacer(1, lines * n * self.layout.leading)
            case QrCode(payload=payload, caption=caption, size_mm=size_mm):
                parts: list[Flowable] = [_QrFlowable(payload, size_mm * MM)]
                if caption:
                    small = self.layout.sizes[TextSize.SMALL]
                    parts.append(RLParagraph(_markup(caption), self.style(small, TA_CENTER)))
                yield self.together(parts, space_before=n * 0.3)
            case Signature(label=label, value=value, date=date):
                shown = value or "_" * 14
                parts = [RLParagraph(f"{_markup(label)}：{_markup(shown)}",
                                     self.style(n, TA_RIGHT, spaceBefore=n))]
                if date:
                    parts.append(RLParagraph(_markup(date), self.style(n, TA_RIGHT,
                                                                       spaceBefore=n * 0.4)))
                yield self.together(parts)

    def together(self, parts: list[Flowable], space_before: float = 0.0) -> Flowable:
        if space_before:
            parts = [RLSpacer(1, space_before), *parts]
        if self.paginated:
            return KeepTogether(parts)
        return _Stack(parts)

    def paragraph(self, block: Paragraph) -> Flowable:
        size = self.layout.sizes[block.size]
        style = self.style(size, TA_CENTER if block.center else TA_LEFT,
                           firstLineIndent=2 * size if block.indent else 0,
                           spaceAfter=self.normal * (0.5 if block.indent else 0.15))
        cls = _BoldParagraph if block.bold else RLParagraph
        return cls(_markup(block.text), style)

    def field(self, label: str, value: str) -> Flowable:
        n = self.normal
        shown = f"{label}："
        indent = self.label_width
        if indent > self.width * self.layout.field_label_max:
            # A label too long for a column: the value simply follows it and wraps.
            return RLParagraph(f"{_markup(shown)}{_markup(value)}", self.style(
                n, spaceAfter=n * 0.15))
        return RLParagraph(_markup(value) or "&nbsp;", self.style(
            n, leftIndent=indent, spaceAfter=n * 0.15), bulletText=shown)

    def table(self, block: Table) -> Flowable:
        n = self.normal
        cell = self.style(n)
        head = self.style(n)
        weights = block.widths or (1.0,) * len(block.header)
        widths = [self.width * w / sum(weights) for w in weights]
        data = [[_BoldParagraph(_markup(h), head) for h in block.header]]
        data += [[RLParagraph(_markup(c), cell) for c in row] for row in block.rows]
        table = RLTable(data, colWidths=widths, repeatRows=1, hAlign="LEFT",
                        spaceBefore=n * 0.3, spaceAfter=n * 0.3)
        table.setStyle(TableStyle([
            # Cells are paragraphs; the table's own font only ever names Helvetica otherwise.
            ("FONT", (0, 0), (-1, -1), self.font, n),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LEFTPADDING", (0, 0), (-1, -1), 2),
            ("RIGHTPADDING", (0, 0), (-1, -1), 2),
            ("TOPPADDING", (0, 0), (-1, -1), 1.5),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ("LINEABOVE", (0, 0), (-1, 0), 0.8, colors.black),
            ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black),
            ("LINEBELOW", (0, 1), (-1, -1), 0.3, colors.HexColor("#777777")),
        ]))
        return table


class _Stack(Flowable):
    """Flowables drawn one under the other as one (the roll never breaks a page)."""

    def __init__(self, parts: list[Flowable]) -> None:
        super().__init__()
        self.parts = parts
        self.sizes: list[tuple[float, float]] = []

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        self.sizes = []
        total = 0.0
        for part in self.parts:
            _w, h = part.wrap(availWidth, availHeight)
            space = part.getSpaceBefore()
            self.sizes.append((h, space))
            total += h + space
        self.width = availWidth
        return availWidth, total

    def draw(self) -> None:
        y = sum(h + space for h, space in self.sizes)
        for part, (h, space) in zip(self.parts, self.sizes, strict=True):
            y -= space + h
            part.drawOn(self.canv, 0, y)
