"""自助出件 certificate self-print: identify, list the results ready for pickup, print the
chosen ones on the A4 printer as the back office issued them, and confirm each collection.

Refused before the citizen waits: the A4 printer is looked at before the ID card is asked for
and again before printing. The result's PDF is printed as it is (``PdfDocument``): the kiosk
lays out nothing of a certificate.

Collection is confirmed as soon as the certificate came out of the printer, before "please
take it" (a session that ends on that screen must not leave it unconfirmed), with one
idempotency key per result per session; the client retries within its budget, and the flow
tries once more when the citizen leaves the take screen. If the back office still cannot be
told, the citizen is not held up: the audit log records the tracking number and the key
(``certificate.collect_unconfirmed``) for staff, and the result stays 待领取 at the back office.
Printing twice: within a session a printed result leaves the list and its print key is the
session's, so it cannot come out twice; in a later session an unconfirmed result would be
offered again. That is accepted: only the holder of the document can print it, a second copy of
the same certificate states nothing new, and a local "printed here" register would block the
citizen on a record only staff could clear.

Personal data (the document read, the PDFs) is dropped by ``wipe`` at session end.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from devices.printer import PdfDocument, Printer
from flows.base import Flow
from flows.identify import IdentifyFlow, IdentifyView, IdStep
from flows.ports import (
    AuditSink,
    BackOfficeError,
    BackOfficeUnavailable,
    ReadyResult,
    ResultDesk,
)
from flows.print_job import (
    HeldPrints,
    PrintJob,
    PrintOutcome,
    PrintResult,
    PrintSettings,
    PrintView,
    printer_refusal,
)

PDF = "application/pdf"


class CertStep(enum.StrEnum):
    IDENTIFY = "identify"  # the identify flow's view is what the screen shows
    LOOKING_UP = "looking_up"
    NONE_READY = "none_ready"  # 暂无可领取的办理结果: a result, not a failure
    CHOOSE = "choose"  # the results ready: print one, or all
    PRINTING = "printing"  # ``print`` says printing / take / failed
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class CertProblem(enum.StrEnum):
    PRINTER_UNAVAILABLE = "printer_unavailable"  # paper out, door open, offline: nothing asked
    BACKOFFICE_UNAVAILABLE = "backoffice_unavailable"
    NOTHING_PRINTABLE = "nothing_printable"  # every result chosen needs the window


class CertAction(enum.StrEnum):
    RETRY = "retry"  # look the results up again
    PRINT = "print"  # one result (``print_one``)
    PRINT_ALL = "print_all"
    CALL_STAFF = "call_staff"
    HOME = "home"


_ACTIONS: dict[CertProblem, tuple[CertAction, ...]] = {
    CertProblem.PRINTER_UNAVAILABLE: (CertAction.CALL_STAFF, CertAction.HOME),
    CertProblem.BACKOFFICE_UNAVAILABLE: (CertAction.RETRY, CertAction.HOME),
    CertProblem.NOTHING_PRINTABLE: (CertAction.CALL_STAFF, CertAction.HOME),
}


@dataclass(frozen=True)
class ReadyItem:
    """A result as the list shows it: no personal data (the document itself stays in the
    flow). ``printable`` is False when the back office sent something that is not a PDF: the
    window hands it out."""

    tracking_number: str
    service_name: str
    department: str
    result_title: str
    ready_at: datetime
    printable: bool = True
    printed: bool = False


@dataclass(frozen=True)
class CertificateView:
    step: CertStep
    identify: IdentifyView | None = None
    results: tuple[ReadyItem, ...] = ()
    current: ReadyItem | None = None  # PRINTING: the one coming out now
    position: int = 0  # PRINTING: 1-based among ``total``
    total: int = 0
    print: PrintView | None = None
    problem: CertProblem | None = None
    detail: str = ""  # a device or back-office error code: never personal data
    actions: tuple[CertAction, ...] = ()


@dataclass(frozen=True)
class CertificateSettings:
    kiosk_id: str
    print: PrintSettings = field(default_factory=PrintSettings)


class CertificateFlow(Flow[CertificateView]):
    def __init__(self, *, identify: IdentifyFlow, desk: ResultDesk, printer: Printer | None,
                 audit: AuditSink, settings: CertificateSettings, session_id: str,
                 held: HeldPrints | None = None) -> None:
        """``printer`` is the A4 document printer (None when the kiosk has none)."""
        super().__init__(CertificateView(CertStep.IDENTIFY, identify.view))
        self.identify = identify
        self.desk = desk
        self.printer = printer
        self.audit = audit
        self.settings = settings
        self.session_id = session_id
        self.held = held
        identify.on_change(self._identify_changed)
        # One list: the session's countdown pauses for the print as for the card read.
        self.busy_listeners = identify.busy_listeners
        self._results: dict[str, ReadyResult] = {}  # personal data: dropped by wipe
        self._items: dict[str, ReadyItem] = {}
        self._queue: list[str] = []
        self._printed: list[str] = []
        self._job: PrintJob | None = None
        self._total = 0
        self._collect_keys: dict[str, str] = {}
        self._unconfirmed: set[str] = set()
        self._reported: set[str] = set()  # unconfirmed ones already in the audit log
        self._wiped = False

    # -- start and identify ------------------------------------------------------------------
    def _identify_changed(self, view: IdentifyView) -> None:
        if self.view.step is CertStep.IDENTIFY:
            self._show(CertificateView(CertStep.IDENTIFY, view))

    def start(self) -> None:
        """Look at the printer first: a citizen never identifies for a print that cannot be
        done."""
        refusal = printer_refusal(self.printer)
        if refusal is not None:
            self._fail(CertProblem.PRINTER_UNAVAILABLE, refusal)
            return
        self._show(CertificateView(CertStep.IDENTIFY, self.identify.view))
        self.identify.start()

    def lookup(self) -> None:
        """After the citizen saw what was read and chose to continue (and for RETRY)."""
        document = self.identify.document
        if document is None or self.identify.view.step is not IdStep.IDENTIFIED:
            return
        self._show(CertificateView(CertStep.LOOKING_UP))
        try:
            found = self.desk.ready_results(id_number=document.id_number,
                                            document_type=str(document.document_type),
                                            session_id=self.session_id)
        except BackOfficeError as error:
            self._fail(CertProblem.BACKOFFICE_UNAVAILABLE, error.code)
            return
        self._results = {r.tracking_number: r for r in found}
        self._items = {r.tracking_number: self._item(r) for r in found}
        self.audit.record("certificate.listed", session_id=self.session_id,
                          detail={"ready": len(found),
                                  "unprintable": sum(not i.printable
                                                     for i in self._items.values())})
        self._show_list()

    def _item(self, result: ReadyResult) -> ReadyItem:
        return ReadyItem(result.tracking_number, result.service_name, result.department,
                         result.result_title, result.ready_at,
                         printable=self._document(result) is not None,
                         printed=result.tracking_number in self._printed)

    def _document(self, result: ReadyResult) -> PdfDocument | None:
        if result.media_type != PDF:
            return None
        try:
            return PdfDocument(
                kind="certificate",
                # The session's: a retry in this session never prints it twice; another
                # session's print is a new print (see the module's note on printing twice).
                job_key=f"result:{result.tracking_number}:{self.session_id}",
                title=result.result_title, pdf=result.content,
                meta={"tracking_number": result.tracking_number})
        except ValueError:
            return None

    def _show_list(self) -> None:
        items = tuple(self._items.values())
        waiting = [i for i in items if not i.printed]
        if not waiting:
            self._show(CertificateView(CertStep.NONE_READY if not self._printed
                                       else CertStep.DONE, results=items,
                                       actions=(CertAction.HOME,)))
            return
        actions = (CertAction.PRINT,)
        if sum(i.printable for i in waiting) > 1:
            actions += (CertAction.PRINT_ALL,)
        self._show(CertificateView(CertStep.CHOOSE, results=items,
                                   actions=(*actions, CertAction.HOME)))

    # -- printing ---------------------------------------------------------------------------
    def print_one(self, tracking_number: str) -> None:
        self._print([tracking_number])

    def print_all(self) -> None:
        self._print(list(self._items))

    def _print(self, numbers: list[str]) -> None:
        if self.view.step is not CertStep.CHOOSE:
            return
        chosen = [n for n in numbers if n in self._items and not self._items[n].printed]
        queue = [n for n in chosen if self._items[n].printable]
        if not queue:
            if chosen:
                self._fail(CertProblem.NOTHING_PRINTABLE)
            return
        refusal = printer_refusal(self.printer)
        if refusal is not None:
            self._fail(CertProblem.PRINTER_UNAVAILABLE, refusal)
            return
        self._queue = queue
        self._total = len(queue)
        self._next()

    def _next(self) -> None:
        while self._queue:
            number = self._queue[0]
            document = self._document(self._results[number])
            assert document is not None and self.printer is not None
            job = PrintJob(document, printer=self.printer, audit=self.audit,
                           session_id=self.session_id, settings=self.settings.print,
                           held=self.held, show=self._print_changed, wait=self._await)
            self._job = job
            if not self._run(job, job.print(), number):
                return
        self._finish()

    def retry_print(self) -> None:
        """The one reprint of the certificate that failed; the rest follow."""
        job = self._job
        if job is None or not job.can_reprint or not self._queue:
            return
        if self._run(job, job.reprint(), self._queue[0]):
            self._next()

    def _run(self, job: PrintJob, outcome: PrintOutcome, number: str) -> bool:
        """After an attempt: True when it came out and the next may start."""
        if not outcome.printed:
            if outcome.result is PrintResult.CANCELLED:
                self._settle()
                if not self._wiped:
                    self._show(CertificateView(CertStep.CANCELLED))
            elif outcome.result is PrintResult.GAVE_UP:
                self._settle()
            # FAILED / GAVE_UP: the print view says what and offers what (reprint, staff).
            return False
        self._printed.append(number)
        self._confirm(number)
        job.wait_taken()
        if number in self._unconfirmed:
            self._confirm(number)  # once more, with the same key
        if self._wiped:  # the session ended on the take screen
            self._settle()
            return False
        self._queue.pop(0)
        self._items[number] = self._item(self._results[number])
        return True

    def taken(self) -> None:
        """The citizen says they have it (printers that cannot tell)."""
        if self._job is not None:
            self._job.taken()

    def _print_changed(self, view: PrintView) -> None:
        if self._wiped:  # a take wait that ended with the session: nothing to show
            return
        number = self._queue[0] if self._queue else None
        current = self._items.get(number) if number else None
        self._show(CertificateView(
            CertStep.PRINTING, results=tuple(self._items.values()), current=current,
            position=self._total - len(self._queue) + 1, total=self._total, print=view))

    def _settle(self) -> None:
        """Tell staff (audit) of every printed result the back office could not be told of."""
        for number in sorted(self._unconfirmed - self._reported):
            self._reported.add(number)
            self.audit.record("certificate.collect_unconfirmed", session_id=self.session_id,
                              detail={"tracking_number": number,
                                      "idempotency_key": self._collect_keys[number]})

    def _finish(self) -> None:
        self._settle()
        self.audit.record("certificate.done", session_id=self.session_id,
                          detail={"printed": len(self._printed),
                                  "unconfirmed": len(self._unconfirmed)})
        self._job = None
        if any(not i.printed for i in self._items.values()):
            self._show_list()  # the rest stay on the list
            return
        self._show(CertificateView(CertStep.DONE, results=tuple(self._items.values()),
                                   actions=(CertAction.HOME,)))

    # -- 确认领取 ------------------------------------------------------------------------------
    def _confirm(self, number: str) -> None:
        document = self.identify.document
        key = self._collect_keys.setdefault(number, f"collect-{uuid.uuid4()}")
        if document is None:  # wiped meanwhile: the session is over
            self._unconfirmed.add(number)
            return
        try:
            at = self.desk.confirm_collected(
                number, id_number=document.id_number,
                document_type=str(document.document_type), kiosk_id=self.settings.kiosk_id,
                session_id=self.session_id, idempotency_key=key)
        except BackOfficeUnavailable as error:
            self._unconfirmed.add(number)
            self.audit.record("certificate.collect_failed", session_id=self.session_id,
                              detail={"tracking_number": number, "error": error.code})
            return
        except BackOfficeError as error:
            # Refused (not ready any more, collected elsewhere): sending again cannot help.
            self._unconfirmed.discard(number)
            self.audit.record("certificate.collect_refused", session_id=self.session_id,
                              detail={"tracking_number": number, "error": error.code})
            return
        self._unconfirmed.discard(number)
        self.audit.record("certificate.collected", session_id=self.session_id,
                          detail={"tracking_number": number, "at": at})

    # -- problems and the end -----------------------------------------------------------------
    def retry(self) -> None:
        """After BACKOFFICE_UNAVAILABLE: look the results up again."""
        if self.view.problem is CertProblem.BACKOFFICE_UNAVAILABLE:
            self.lookup()

    def _fail(self, problem: CertProblem, detail: str = "") -> None:
        self.audit.record("certificate.problem", session_id=self.session_id,
                          detail={"problem": str(problem), "detail": detail})
        self._show(CertificateView(CertStep.FAILED, results=tuple(self._items.values()),
                                   problem=problem, detail=detail, actions=_ACTIONS[problem]))

    def cancel(self) -> None:
        super().cancel()
        if self._job is not None:
            self._job.cancel()
        self.identify.cancel()

    def wipe(self) -> None:
        """Session end: the document read and every PDF are dropped."""
        self._wiped = True
        self.cancel()
        self._settle()
        self.identify.wipe()
        self._results = {}
        self._items = {}
        self._queue = []
        self._job = None
        with self._lock:
            self._view = CertificateView(CertStep.CANCELLED)

