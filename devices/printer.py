"""Printers: the 80 mm receipt roll (queue tickets, 受理回执) and the A4 document printer.

A ``PrintDocument`` is what a flow asks to print: a title and a sequence of typed blocks
(heading, paragraph, field, list, table, rule, spacer, QR code, signature line). It says what
is on the paper, not how it is drawn: each driver renders it for its own transport (a PDF for
CUPS, a 1-bit raster for an ESC/POS head), so one document prints the same on every printer.

A ``PdfDocument`` is a ready-made PDF (a certificate the issuing department laid out and the
back office hands over): it is printed as it is, by the printers that take PDF.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from devices.contract import (
    CommandContext,
    CommandFailed,
    Completion,
    Device,
    DeviceClass,
    PendingCommand,
)

# Device-specific error code: the printer refused the job (a document it cannot print, or one
# CUPS would not take).
JOB_REJECTED = "jobRejected"


class Media(enum.StrEnum):
    ROLL_80MM = "roll80mm"
    A4 = "A4"


class TextSize(enum.StrEnum):
    NORMAL = "normal"
    LARGE = "large"
    HUGE = "huge"  # the queue number on a ticket
    SMALL = "small"  # footnotes, the fine print of a notice


@dataclass(frozen=True)
class Heading:
    """A document or section heading. Level 1 is centred and large, level 2 starts a section."""

    text: str
    level: int = 1


@dataclass(frozen=True)
class Paragraph:
    """Running text that wraps (Chinese by character). ``indent`` gives the first line the
    two-character indent of Chinese body text (首行缩进), as on a 证明."""

    text: str
    size: TextSize = TextSize.NORMAL
    center: bool = False
    bold: bool = False
    indent: bool = False


# The flat line of the first model: a paragraph, same positional fields.
PrintLine = Paragraph


@dataclass(frozen=True)
class Field:
    """``label：value``; a long value wraps in its own column, never back under the label."""

    label: str
    value: str


@dataclass(frozen=True)
class ItemList:
    """A numbered (or bulleted) list; on A4 it continues on the next page."""

    items: tuple[str, ...]
    numbered: bool = True


@dataclass(frozen=True)
class Table:
    """Rows under a header; on A4 the rows continue on the next page under a repeated header.
    ``widths`` are relative column weights (empty: equal)."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    widths: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if any(len(row) != len(self.header) for row in self.rows):
            raise ValueError("every table row needs one cell per header column")
        if self.widths and len(self.widths) != len(self.header):
            raise ValueError("table widths need one weight per column")


@dataclass(frozen=True)
class Rule:
    dashed: bool = False


@dataclass(frozen=True)
class Spacer:
    """Vertical space, in lines of normal text."""

    lines: float = 1.0


@dataclass(frozen=True)
class QrCode:
    """A QR code (drawn as vector on PDF) with an optional caption under it."""

    payload: str
    caption: str = ""
    size_mm: float = 30.0


@dataclass(frozen=True)
class Signature:
    """A signature or stamp line, right-aligned: ``label：value`` (a blank to sign on when
    value is empty) and the date under it, as at the foot of a 证明 or a 回执."""

    label: str
    value: str = ""
    date: str = ""


Block = Heading | Paragraph | Field | ItemList | Table | Rule | Spacer | QrCode | Signature



@dataclass(frozen=True)
class PrintDocument:
    """What a flow asks to print; each driver renders it for its own transport.

    ``job_key`` is the idempotency key: a driver never prints the same key twice, so a retry
    after an unclear failure cannot hand the citizen two tickets. ``header`` is repeated at the
    top of every A4 page (the title when empty). ``meta`` is for the job log: no personal data.
    """

    kind: str
    job_key: str
    title: str
    blocks: tuple[Block, ...] = ()
    media: Media = Media.ROLL_80MM
    meta: Mapping[str, str] = field(default_factory=dict)
    header: str = ""

    def __post_init__(self) -> None:
        # Frozen all the way down: a document handed to a printer thread cannot change under it.
        object.__setattr__(self, "blocks", tuple(self.blocks))
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    def text(self) -> str:
        """Everything on the paper as plain text, one printed line of content per line."""
        return "\n".join([self.title, *(line for block in self.blocks for line in _text(block))])

    def qr_payloads(self) -> tuple[str, ...]:
        return tuple(b.payload for b in self.blocks if isinstance(b, QrCode))


def _text(block: Block) -> Iterator[str]:
    match block:
        case Heading(text=text) | Paragraph(text=text):
            yield text
        case Field(label=label, value=value):
            yield f"{label}：{value}"
        case ItemList(items=items, numbered=numbered):
            for n, item in enumerate(items, 1):
                yield f"{n}. {item}" if numbered else f"• {item}"
        case Table(header=header, rows=rows):
            yield "  ".join(header)
            for row in rows:
                yield "  ".join(row)
        case Rule():
            yield "-" * 16
        case Spacer():
            yield ""
        case QrCode(payload=payload, caption=caption):
            yield f"[QR] {payload}"
            if caption:
                yield caption
        case Signature(label=label, value=value, date=date):
            yield f"{label}：{value}"
            if date:
                yield date


@dataclass(frozen=True, repr=False)
class PdfDocument:
    """A ready-made PDF, printed as it is (no layout by the kiosk): a certificate issued by a
    department. ``job_key`` and ``meta`` mean what they mean on ``PrintDocument``; ``pdf``
    often is personal data, so it is never in a repr or a log line. ``media`` is the paper it
    is laid out for."""

    kind: str
    job_key: str
    title: str
    pdf: bytes
    media: Media = Media.A4
    meta: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Bytes from outside (the back office): a printer must never be handed something that
        # only claims to be a PDF. The header check is what every PDF reader does first.
        if not isinstance(self.pdf, bytes) or not self.pdf.startswith(b"%PDF-"):
            raise ValueError(f"{self.kind}: not a PDF (no %PDF- header)")
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    def __repr__(self) -> str:
        return f"PdfDocument({self.kind!r}, {self.job_key!r}, {len(self.pdf)} bytes)"


# What ``Printer.print_document`` takes.
Printable = PrintDocument | PdfDocument


@dataclass(frozen=True)
class PrintReceipt:
    job_key: str
    pages: int
    duplicate: bool = False  # True when the key was printed before and nothing new came out


class Printer(Device):
    media_kind: Media = Media.ROLL_80MM
    # Whether a ready-made PdfDocument can be printed here (CUPS can; an ESC/POS head cannot).
    accepts_pdf: bool = False

    def print_document(
        self, document: Printable, timeout: float, session_id: str | None = None
    ) -> PendingCommand[PrintReceipt]:
        """Completion codes: ``paperOut``, ``paperJammed``, ``doorOpen``, ``jobRejected``;
        ``deviceNotReady`` when offline (refused before anything is sent). A ``PdfDocument`` on
        a printer that does not take PDF ends ``invalidData``/``jobRejected`` at once."""
        return self._start("print", lambda ctx: self._print_checked(ctx, document), timeout,
                           session_id)

    def _print_checked(self, ctx: CommandContext, document: Printable) -> PrintReceipt:
        if isinstance(document, PdfDocument) and not self.accepts_pdf:
            raise CommandFailed(Completion.INVALID_DATA, JOB_REJECTED,
                                f"{self.driver_name} printers take no ready-made PDF")
        return self._print(ctx, document)

    def _print(self, ctx: CommandContext, document: Printable) -> PrintReceipt:
        raise NotImplementedError


class ReceiptPrinter(Printer):
    device_class = DeviceClass.RECEIPT_PRINTER
    media_kind = Media.ROLL_80MM


class DocumentPrinter(Printer):
    device_class = DeviceClass.DOCUMENT_PRINTER
    media_kind = Media.A4
