"""Printers: the 80 mm receipt roll (queue tickets, 受理回执) and the A4 document printer."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from devices.contract import CommandContext, Device, DeviceClass, PendingCommand


class Media(enum.StrEnum):
    ROLL_80MM = "roll80mm"
    A4 = "A4"


class TextSize(enum.StrEnum):
    NORMAL = "normal"
    LARGE = "large"
    HUGE = "huge"  # the queue number on a ticket


@dataclass(frozen=True)
class PrintLine:
    text: str
    size: TextSize = TextSize.NORMAL
    center: bool = False
    bold: bool = False


@dataclass(frozen=True)
class PrintDocument:
    """What a flow asks to print; each driver renders it for its own transport.

    ``job_key`` is the idempotency key: a driver never prints the same key twice, so a retry
    after an unclear failure cannot hand the citizen two tickets.
    """

    kind: str
    job_key: str
    title: str
    lines: tuple[PrintLine, ...]
    qr: str | None = None
    media: Media = Media.ROLL_80MM
    meta: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        return "\n".join([self.title, *(line.text for line in self.lines)])


@dataclass(frozen=True)
class PrintReceipt:
    job_key: str
    pages: int
    duplicate: bool = False  # True when the key was printed before and nothing new came out


class Printer(Device):
    media_kind: Media = Media.ROLL_80MM

    def print_document(
        self, document: PrintDocument, timeout: float, session_id: str | None = None
    ) -> PendingCommand[PrintReceipt]:
        """Completion codes: ``paperOut``, ``paperJammed``, ``doorOpen``, ``jobRejected``;
        ``deviceNotReady`` when offline (refused before anything is sent)."""
        return self._start("print", lambda ctx: self._print(ctx, document), timeout, session_id)

    def _print(self, ctx: CommandContext, document: PrintDocument) -> PrintReceipt:
        raise NotImplementedError


class ReceiptPrinter(Printer):
    device_class = DeviceClass.RECEIPT_PRINTER
    media_kind = Media.ROLL_80MM


class DocumentPrinter(Printer):
    device_class = DeviceClass.DOCUMENT_PRINTER
    media_kind = Media.A4
