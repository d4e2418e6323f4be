"""One document on one printer for one citizen: print it, say 请取走, and what happens when it
fails. Every journey that prints (自助出件, 办件进度, ...) prints through a ``PrintJob``, so the
rules are the same everywhere (issue 5 §3):

- A print that cannot be done is refused before the citizen waits: the printer's status
  (state, paper, door) is looked at first, and the driver refuses again before sending.
- A failed print offers one reprint. A second failure hands the document to staff: it is kept
  (encrypted, ``HeldPrints``) for staff to reprint, and the citizen is told so and given the
  reference staff will ask for.
- "Please take" waits for ``MediaTaken`` where the printer has a sensor at its exit (its status
  reports ``media``); elsewhere the screen stays a short while, or until the citizen taps
  "I have it".

Job keys. A driver never prints the same ``job_key`` twice: a retry after an unclear outcome
(the command timed out, the driver lost sight of the job) is sent with the same key, so the
driver follows the earlier job or answers ``duplicate`` instead of printing a second copy. A
reprint after a failure the driver called definite (paper out, jam, door open, refused before
sending: nothing whole came out) is sent under a new key derived from the first (``key#r2``):
whether a driver forgets the key of a failed job is its own business, and the reprint must
come out under any driver. Deriving it cannot duplicate, because nothing whole came out.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from devices.contract import (
    CommandResult,
    Completion,
    DeviceState,
    DoorState,
    Event,
    EventKind,
    MediaState,
    PaperState,
    PendingCommand,
)
from devices.printer import Printable, Printer, PrintReceipt
from flows.ports import AuditSink

log = logging.getLogger(__name__)


class PrintStage(enum.StrEnum):
    PRINTING = "printing"  # 正在打印，请稍候
    TAKE = "take"  # 请取走 (the certificate, the slip)
    DONE = "done"
    FAILED = "failed"  # see ``problem``


class PrintProblem(enum.StrEnum):
    PRINTER_UNAVAILABLE = "printer_unavailable"  # refused before anything was sent
    PRINT_FAILED = "print_failed"  # the job failed (paper ran out, jam...)
    STAFF_REPRINT = "staff_reprint"  # failed again: kept for staff, who will print it


class PrintAction(enum.StrEnum):
    RETRY_PRINT = "retry_print"  # offered once
    TAKEN = "taken"  # "I have it", where the printer cannot tell
    CALL_STAFF = "call_staff"
    BACK = "back"  # back to the journey's list (where the journey offers one)
    HOME = "home"


class PrintResult(enum.StrEnum):
    PRINTED = "printed"
    FAILED = "failed"  # a reprint is offered
    GAVE_UP = "gave_up"  # handed to staff (``staff_reference`` when the document was kept)
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class PrintView:
    """What the print screen shows; no personal data (the title is the document's kind of
    name, 户籍证明 or 办件进度, never the citizen's)."""

    stage: PrintStage
    title: str = ""
    problem: PrintProblem | None = None
    detail: str = ""  # the device's error code: paperOut, paperJammed, doorOpen ...
    actions: tuple[PrintAction, ...] = ()
    sensed: bool = True  # False: the printer cannot tell when the paper is taken (offer TAKEN)
    taken: bool | None = None  # DONE: taken (True), left at the exit (False), unknown (None)
    staff_reference: str = ""  # STAFF_REPRINT: what staff look the kept document up by
    reprint: bool = False  # this is the one reprint


@dataclass(frozen=True)
class PrintOutcome:
    result: PrintResult
    error: str = ""  # the device's error code when it failed
    duplicate: bool = False  # the key had printed before: nothing new came out now
    staff_reference: str | None = None

    @property
    def printed(self) -> bool:
        return self.result is PrintResult.PRINTED


@dataclass(frozen=True)
class PrintSettings:
    print_timeout_s: float = 60.0  # one job, start to finish (an A4 certificate is slow)
    take_timeout_s: float = 30.0  # how long 请取走 waits for MediaTaken
    # Where the printer cannot tell: how long 请取走 stays unless the citizen taps TAKEN.
    unsensed_take_s: float = 8.0


class HeldPrints(Protocol):
    """Where a document that could not be printed waits for staff to reprint it
    (kiosk/held_prints.py: encrypted at rest, expires)."""

    def hold(self, document: Printable, *, reason: str, session_id: str | None) -> str:
        """Keep ``document``; returns its staff reference (no personal data). Raises (OSError,
        or the store's own error) when it could not be kept."""
        ...


Wait = Callable[[PendingCommand[PrintReceipt]], CommandResult[PrintReceipt]]


def printer_refusal(printer: Printer | None) -> str | None:
    """Why ``printer`` cannot print now, as a device code (``paperOut``, ``doorOpen``,
    ``offline`` ...); None when it can. From its status snapshot: asks nothing, waits for
    nothing, so a journey can refuse before the citizen identifies or waits."""
    if printer is None:
        return str(DeviceState.NO_DEVICE)
    status = printer.status()
    if status.state not in (DeviceState.ONLINE, DeviceState.DEVICE_BUSY):
        return str(status.state)
    if status.paper is PaperState.OUT:
        return "paperOut"
    if status.paper is PaperState.JAMMED:
        return "paperJammed"
    if status.door is DoorState.OPEN:
        return "doorOpen"
    return None


def derived_key(key: str, attempt: int) -> str:
    """The key of attempt ``attempt`` (2, 3 ...) after a definite failure of ``key``."""
    return f"{key}#r{attempt}"


def is_definite(result: CommandResult[PrintReceipt]) -> bool:
    """Whether a failed print certainly left nothing whole behind (a reprint needs a new key)
    rather than an unclear outcome (it may still print: retry with the same key)."""
    if result.completion in (Completion.HARDWARE_ERROR, Completion.INVALID_DATA,
                             Completion.USER_ERROR, Completion.UNSUPPORTED_COMMAND):
        return True
    # The CUPS driver says jobUnknown when it cannot see an earlier job of the key: it may
    # still print, so that is not definite.
    return result.completion is Completion.DEVICE_NOT_READY and result.error_code != "jobUnknown"


def _pointless_to_retry(result: CommandResult[PrintReceipt]) -> bool:
    # This printer refuses this document every time (a ready-made PDF on an ESC/POS head):
    # staff print it elsewhere.
    return result.completion in (Completion.INVALID_DATA, Completion.UNSUPPORTED_COMMAND)


class PrintJob:
    """Print one document: ``print()``, then ``reprint()`` once if it failed, then
    ``wait_taken()`` once it printed. Blocking calls run on the journey's worker thread;
    ``taken()`` and ``cancel()`` may come from any thread.

    ``show`` receives every ``PrintView``; ``wait`` is how the journey waits for a device
    command (``Flow._await``: cancellable, pauses the session countdown)."""

    def __init__(self, document: Printable, *, printer: Printer, audit: AuditSink,
                 session_id: str, settings: PrintSettings | None = None,
                 held: HeldPrints | None = None,
                 show: Callable[[PrintView], None] = lambda _view: None,
                 wait: Wait | None = None, back: bool = False) -> None:
        self.document = document
        self.printer = printer
        self.audit = audit
        self.session_id = session_id
        self.settings = settings or PrintSettings()
        self.held = held
        self._show_view = show
        self._wait: Wait = wait or (lambda command: command.wait())
        self._back = back
        self._key = document.job_key
        self._attempts = 0
        self._outcome: PrintOutcome | None = None
        self._taken = threading.Event()
        self._cancelled = threading.Event()
        self._unsubscribe: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self.view = PrintView(PrintStage.PRINTING, document.title)

    @property
    def outcome(self) -> PrintOutcome | None:
        return self._outcome

    @property
    def key(self) -> str:
        """The job key the next (or last successful) attempt is sent with."""
        return self._key

    @property
    def can_reprint(self) -> bool:
        return self._outcome is not None and self._outcome.result is PrintResult.FAILED

    def refusal(self) -> str | None:
        return printer_refusal(self.printer)

    # -- printing -------------------------------------------------------------------------
    def print(self) -> PrintOutcome:
        """The first attempt; after that, what ``reprint`` allows."""
        return self._attempt() if self._outcome is None else self.reprint()

    def reprint(self) -> PrintOutcome:
        """The one reprint after a failure; otherwise the outcome stays as it is."""
        if self._outcome is None or self.can_reprint:
            return self._attempt()
        return self._outcome

    def _attempt(self) -> PrintOutcome:
        self._attempts += 1
        self._cancelled.clear()
        title = self.document.title
        self._set_view(PrintView(PrintStage.PRINTING, title, reprint=self._attempts > 1))
        refusal = self.refusal()
        if refusal is not None:
            # Nothing is sent: the driver would refuse too, after the citizen waited for it.
            self.audit.record("print.refused", session_id=self.session_id,
                              device_id=self.printer.device_id,
                              detail={"kind": self.document.kind, "error": refusal,
                                      "attempt": self._attempts})
            return self._failed(refusal, PrintProblem.PRINTER_UNAVAILABLE, definite=True,
                                pointless=False)
        self._watch_exit()
        document = self.document if self._key == self.document.job_key else replace(
            self.document, job_key=self._key)
        result = self._wait(self.printer.print_document(
            document, self.settings.print_timeout_s, self.session_id))
        if result.ok and result.data is not None:
            return self._printed(result.data)
        self._stop_watching()
        if result.completion is Completion.CANCELED:
            self._outcome = PrintOutcome(PrintResult.CANCELLED, str(result.completion))
            self.audit.record("print.cancelled", session_id=self.session_id,
                              device_id=self.printer.device_id,
                              detail={"kind": self.document.kind})
            return self._outcome
        error = result.error_code or str(result.completion)
        self.audit.record("print.failed", session_id=self.session_id,
                          device_id=self.printer.device_id,
                          detail={"kind": self.document.kind, "completion": str(result.completion),
                                  "error": error, "attempt": self._attempts,
                                  "definite": is_definite(result)})
        problem = (PrintProblem.PRINTER_UNAVAILABLE
                   if result.completion is Completion.DEVICE_NOT_READY
                   else PrintProblem.PRINT_FAILED)
        return self._failed(error, problem, definite=is_definite(result),
                            pointless=_pointless_to_retry(result))

    def _printed(self, receipt: PrintReceipt) -> PrintOutcome:
        self._outcome = PrintOutcome(PrintResult.PRINTED, duplicate=receipt.duplicate)
        self.audit.record("print.printed", session_id=self.session_id,
                          device_id=self.printer.device_id,
                          detail={"kind": self.document.kind, "pages": receipt.pages,
                                  "duplicate": receipt.duplicate, "attempt": self._attempts})
        sensed = self._sensed()
        self._set_view(PrintView(PrintStage.TAKE, self.document.title,
                                 actions=() if sensed else (PrintAction.TAKEN,), sensed=sensed,
                                 reprint=self._attempts > 1))
        return self._outcome

    def _failed(self, error: str, problem: PrintProblem, *, definite: bool,
                pointless: bool) -> PrintOutcome:
        if definite:
            self._key = derived_key(self.document.job_key, self._attempts + 1)
        title = self.document.title
        if self._attempts < 2 and not pointless:
            self._outcome = PrintOutcome(PrintResult.FAILED, error)
            actions = (PrintAction.RETRY_PRINT, PrintAction.CALL_STAFF,
                       *self._back_action(), PrintAction.HOME)
            self._set_view(PrintView(PrintStage.FAILED, title, problem, error, actions))
            return self._outcome
        reference = self._hold(error)
        self._outcome = PrintOutcome(PrintResult.GAVE_UP, error, staff_reference=reference)
        actions = (PrintAction.CALL_STAFF, *self._back_action(), PrintAction.HOME)
        self._set_view(PrintView(
            PrintStage.FAILED, title,
            PrintProblem.STAFF_REPRINT if reference else problem, error, actions,
            staff_reference=reference or "", reprint=self._attempts > 1))
        return self._outcome

    def _back_action(self) -> tuple[PrintAction, ...]:
        return (PrintAction.BACK,) if self._back else ()

    def _hold(self, error: str) -> str | None:
        if self.held is None:
            self.audit.record("print.not_kept", session_id=self.session_id,
                              detail={"kind": self.document.kind, "error": error,
                                      "why": "no_store"})
            return None
        try:
            reference = self.held.hold(self.document, reason=error, session_id=self.session_id)
        except Exception as exc:  # a full disk or a missing key must not end the journey
            log.error("%s could not be kept for staff: %s", self.document.kind,
                      type(exc).__name__)
            self.audit.record("print.not_kept", session_id=self.session_id,
                              detail={"kind": self.document.kind, "error": error,
                                      "why": type(exc).__name__})
            return None
        self.audit.record("print.held", session_id=self.session_id,
                          device_id=self.printer.device_id,
                          detail={"kind": self.document.kind, "reference": reference,
                                  "error": error})
        return reference

    # -- 请取走 -----------------------------------------------------------------------------
    def _sensed(self) -> bool:
        return self.printer.status().media is not None

    def _watch_exit(self) -> None:
        self._stop_watching()
        self._taken.clear()

        def on_event(event: Event) -> None:
            if event.kind is EventKind.MEDIA_TAKEN:
                self._taken.set()

        self._unsubscribe = self.printer.subscribe(on_event)

    def _stop_watching(self) -> None:
        with self._lock:
            unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()

    def wait_taken(self) -> bool | None:
        """After a print: wait until the paper is taken. True when taken (or the citizen says
        so), False when it is still at the exit after ``take_timeout_s`` or when the journey
        ended first, None when the printer cannot tell and nobody said."""
        if self._outcome is None or not self._outcome.printed:
            return None
        sensed = self._sensed()
        try:
            if sensed:
                if self.printer.status().media is not MediaState.PRESENT:
                    self._taken.set()  # taken already (or nothing new came out: a duplicate)
                self._taken.wait(self.settings.take_timeout_s)
                taken: bool | None = self.printer.status().media is not MediaState.PRESENT
            else:
                self._taken.wait(self.settings.unsensed_take_s)
                taken = True if self._taken.is_set() and not self._cancelled.is_set() else None
        finally:
            self._stop_watching()
        if taken is False:
            # A certificate left at the exit is personal data in the open: staff should look.
            self.audit.record("print.not_taken", session_id=self.session_id,
                              device_id=self.printer.device_id,
                              detail={"kind": self.document.kind})
        self._set_view(PrintView(PrintStage.DONE, self.document.title, sensed=sensed,
                                 taken=taken))
        return taken

    def taken(self) -> None:
        """The citizen says they have it."""
        self._taken.set()

    def cancel(self) -> None:
        """Ends a take wait at once (a running print is cancelled through the journey's
        ``cancel``, which owns the pending command)."""
        self._cancelled.set()
        self._taken.set()

    def _set_view(self, view: PrintView) -> None:
        self.view = view
        self._show_view(view)
