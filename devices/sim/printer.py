from __future__ import annotations

import threading
from pathlib import Path

from devices.contract import (
    CommandContext,
    CommandFailed,
    Completion,
    DoorState,
    EventKind,
    MediaState,
    PaperState,
    Severity,
)
from devices.printer import (
    DocumentPrinter,
    PdfDocument,
    Printable,
    Printer,
    PrintReceipt,
    ReceiptPrinter,
)
from devices.printing.pdf import pdf_page_count
from devices.sim.base import SimulatedDevice
from devices.sim.render import FONT_PATH, render_pdf_pages, render_png, render_text


class _SimPrinter(SimulatedDevice, Printer):
    """Keeps each printed document as ``NNNN-kind.pdf`` + ``.png`` + ``.txt`` in ``output_dir``
(a ready-made ``PdfDocument`` as ``NNNN-kind.pdf`` only, byte for byte as it was sent).

    Paper is counted in pages of the real render (an A4 notice may take two sheets; a roll
    document is one page however long); ``run_out_after(n)`` lets n more pages out, then paper
    is out (mid-document if the document is longer). The printed page waits at the exit until
    ``take()`` (or ``auto_take_s`` seconds), which raises MediaTaken.
    """

    def __init__(self, device_id: str, output_dir: Path | str, low_paper_pages: int = 5,
                 print_delay_s: float = 0.2, auto_take_s: float | None = 3.0,
                 font_path: Path = FONT_PATH) -> None:
        super().__init__(device_id)
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.low_paper_pages = low_paper_pages
        self.print_delay_s = print_delay_s
        self.auto_take_s = auto_take_s
        self.font_path = font_path
        self.printed: list[Path] = []
        self._pages_left: int | None = None  # None: plenty
        self._printed_keys: set[str] = set()
        self._take_timer: threading.Timer | None = None
        self._set_status(paper=PaperState.FULL, door=DoorState.CLOSED, queue_depth=0,
                         media=MediaState.NOT_PRESENT)

    # -- script ---------------------------------------------------------------------------
    def run_out_after(self, pages: int) -> None:
        self._pages_left = pages
        self._update_paper()

    def refill(self) -> None:
        self._pages_left = None
        self._update_paper()

    def jam(self) -> None:
        self._set_status(paper=PaperState.JAMMED)
        self._emit(EventKind.ERROR, severity=Severity.ALARM, error_kind="paperJammed",
                   action="status")

    def clear_jam(self) -> None:
        """Staff opened the printer and pulled the paper out."""
        if self.status().paper is PaperState.JAMMED:
            self._set_status(paper=PaperState.UNKNOWN)
            self._update_paper()

    def open_door(self) -> None:
        self._set_status(door=DoorState.OPEN)

    def close_door(self) -> None:
        self._set_status(door=DoorState.CLOSED)

    def take(self) -> None:
        """The citizen takes the paper from the exit."""
        if self._take_timer:
            self._take_timer.cancel()
        if self.status().media is MediaState.PRESENT:
            self._set_status(media=MediaState.NOT_PRESENT)
            self._emit(EventKind.MEDIA_TAKEN)

    # -- contract -------------------------------------------------------------------------
    def _update_paper(self) -> None:
        before = self.status().paper
        if self._pages_left is None:
            paper = PaperState.FULL
        elif self._pages_left <= 0:
            paper = PaperState.OUT
        elif self._pages_left <= self.low_paper_pages:
            paper = PaperState.LOW
        else:
            paper = PaperState.FULL
        if before is PaperState.JAMMED:
            return
        self._set_status(paper=paper)
        if paper is not before and paper in (PaperState.LOW, PaperState.OUT):
            self._emit(EventKind.PAPER_THRESHOLD, payload=paper,
                       severity=Severity.ALARM if paper is PaperState.OUT else Severity.WARNING)

    def _print(self, ctx: CommandContext, document: Printable) -> PrintReceipt:
        self._require_online()
        if document.job_key in self._printed_keys:
            return PrintReceipt(document.job_key, 0, duplicate=True)
        status = self.status()
        if status.door is DoorState.OPEN:
            raise CommandFailed(Completion.HARDWARE_ERROR, "doorOpen")
        if status.paper is PaperState.JAMMED:
            raise CommandFailed(Completion.HARDWARE_ERROR, "paperJammed")
        if status.paper is PaperState.OUT:
            raise CommandFailed(Completion.HARDWARE_ERROR, "paperOut")
        # Rendered before any paper moves: a rendering fault must not eat a page.
        if isinstance(document, PdfDocument):
            pdf_data, pages, png, text = document.pdf, pdf_page_count(document.pdf), None, None
        else:
            rendered = render_pdf_pages(document, self.font_path)
            pdf_data, pages = rendered.data, rendered.pages
            png, text = render_png(document, self.font_path), render_text(document)
        self._set_status(queue_depth=1)
        try:
            if ctx.wait(self.print_delay_s):
                ctx.check()
            if self._pages_left is not None:
                if self._pages_left < pages:
                    self._pages_left = 0
                    self._update_paper()
                    raise CommandFailed(Completion.HARDWARE_ERROR, "paperOut",
                                        "paper ran out during the job")
                self._pages_left -= pages
            self._printed_keys.add(document.job_key)
            stem = self.output_dir / f"{len(self.printed) + 1:04d}-{document.kind}"
            stem.with_suffix(".pdf").write_bytes(pdf_data)
            if png is None or text is None:
                self.printed.append(stem.with_suffix(".pdf"))
            else:
                stem.with_suffix(".txt").write_text(text, encoding="utf-8")
                png.save(stem.with_suffix(".png"))
                self.printed.append(stem.with_suffix(".png"))
        finally:
            self._set_status(queue_depth=0)
            self._update_paper()
        self._set_status(media=MediaState.PRESENT)
        if self.auto_take_s is not None:
            self._take_timer = threading.Timer(self.auto_take_s, self.take)
            self._take_timer.daemon = True
            self._take_timer.start()
        return PrintReceipt(document.job_key, pages)


class SimReceiptPrinter(_SimPrinter, ReceiptPrinter):
    def __init__(self, device_id: str = "receipt_printer", output_dir: Path = Path("var/prints/receipt"),
                 **kwargs: object) -> None:
        super().__init__(device_id, output_dir, **kwargs)  # type: ignore[arg-type]


class SimDocumentPrinter(_SimPrinter, DocumentPrinter):
    accepts_pdf = True  # it stands in for the CUPS A4 printer
    def __init__(self, device_id: str = "document_printer", output_dir: Path = Path("var/prints/document"),
                 **kwargs: object) -> None:
        super().__init__(device_id, output_dir, **kwargs)  # type: ignore[arg-type]
