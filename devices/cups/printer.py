"""Printers behind a CUPS queue: the A4 document printer (and a receipt printer with a CUPS
driver), driven through pycups.

A print is rendered to PDF (a ready-made ``PdfDocument`` is sent as it is), checked against the
printer's state, sent as one CUPS job and followed until CUPS says completed, aborted or
canceled. The kiosk is unattended, so a job must
never print later on its own: a job that times out, is stopped or held is canceled in CUPS.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cups

from devices.contract import (
    Capabilities,
    CommandContext,
    CommandFailed,
    Completion,
    DeviceState,
    DoorState,
    EventKind,
    PaperState,
    Severity,
)
from devices.cups import ipp, state
from devices.cups.state import Condition, PrinterReport
from devices.printer import (
    DocumentPrinter,
    PdfDocument,
    Printable,
    Printer,
    PrintReceipt,
    ReceiptPrinter,
)
from devices.printing.fonts import FONT_PATH
from devices.printing.pdf import pdf_page_count, render_pdf

log = logging.getLogger(__name__)

# The renderers' font, so the path is set in one place.
DEFAULT_FONT = str(FONT_PATH)
_QUEUE_ATTRIBUTES = ["printer-state", "printer-state-reasons", "printer-is-accepting-jobs",
                     "device-uri", "queued-job-count"]
_JOB_ATTRIBUTES = ["job-id", "job-state", "job-state-reasons", "job-printer-state-reasons"]


class _Outcome:
    PENDING = "pending"  # handed to CUPS, end not seen yet
    COMPLETED = "completed"
    FAILED = "failed"  # aborted or canceled: nothing (whole) came out, a new job may be sent


@dataclass
class SubmittedJob:
    """What was handed to CUPS for one job_key; kept for the session of this driver."""

    job_key: str
    job_id: int
    pages: int
    submitted_at: float  # time.monotonic()
    outcome: str = _Outcome.PENDING
    history: list[int] = field(default_factory=list)  # earlier job ids of the same key


class _Unavailable(Exception):
    """The queue cannot be reached (missing, or cupsd down): NO_DEVICE."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class _CupsPrinter(Printer):
    driver_name = "cups"
    accepts_pdf = True  # CUPS filters a PDF for whatever printer is behind the queue

    def __init__(self, device_id: str, queue: str, server: str | None = None,
                 job_timeout_s: float = 60, poll_interval_s: float = 0.5,
                 font_path: str = DEFAULT_FONT, status_interval_s: float = 5.0,
                 device_query_s: float = 15.0, device_timeout_s: float = 2.0) -> None:
        """``server``: CUPS server as ``host``, ``host:port`` or a socket path (None: the
        system default). ``poll_interval_s``: how often a running job is looked at;
        ``status_interval_s``: how often the idle queue is; ``device_query_s``: how often an
        IPP printer is asked directly between prints (always right before one)."""
        if not queue:
            raise ValueError("queue: the CUPS queue name is required")
        for name, value in (("job_timeout_s", job_timeout_s), ("poll_interval_s", poll_interval_s),
                            ("status_interval_s", status_interval_s),
                            ("device_timeout_s", device_timeout_s)):
            if value <= 0:
                raise ValueError(f"{name} must be positive, not {value}")
        super().__init__(device_id)
        self.queue = queue
        self.server = server
        self.job_timeout_s = job_timeout_s
        self.poll_interval_s = poll_interval_s
        self.font_path = font_path
        self.status_interval_s = status_interval_s
        self.device_query_s = device_query_s
        self.device_timeout_s = device_timeout_s
        self._local = threading.local()  # one pycups Connection per thread: it is not shared
        self._jobs: dict[str, SubmittedJob] = {}
        self._jobs_lock = threading.Lock()
        self._condition_lock = threading.Lock()
        self._condition: Condition | None = None
        self._device_report: PrinterReport | None = None
        self._device_asked_at = float("-inf")
        self._closed = threading.Event()
        self._refresh(ask_device=False)
        self._poller = threading.Thread(target=self._poll, name=f"{device_id}:status",
                                        daemon=True)
        self._poller.start()

    def capabilities(self) -> Capabilities:
        return Capabilities(self.device_class, self.driver_name, model=self.queue,
                            features=frozenset({"pdf", "jobFollow"}))

    @property
    def submitted(self) -> dict[str, SubmittedJob]:
        """What was handed to CUPS so far, by job_key (a copy)."""
        with self._jobs_lock:
            return dict(self._jobs)

    def close(self) -> None:
        super().close()
        self._closed.set()
        if self._poller.is_alive() and self._poller is not threading.current_thread():
            self._poller.join(timeout=self.device_timeout_s + 1)

    # -- CUPS connection ----------------------------------------------------------------
    def _connection(self) -> cups.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            kwargs: dict[str, Any] = {}
            if self.server:
                host, sep, port = self.server.rpartition(":")
                if sep and port.isdigit() and not self.server.startswith("/"):
                    kwargs = {"host": host, "port": int(port)}
                else:
                    kwargs = {"host": self.server}
            try:
                conn = cups.Connection(**kwargs)
            except RuntimeError as exc:  # pycups: "failed to connect to server"
                raise _Unavailable("cupsUnavailable") from exc
            self._local.conn = conn
        return conn

    def _drop_connection(self) -> None:
        self._local.conn = None

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """One pycups call; a broken connection is dropped so the next call reconnects."""
        conn = self._connection()
        try:
            return getattr(conn, name)(*args, **kwargs)
        except cups.IPPError as exc:
            status = exc.args[0] if exc.args else 0
            if status == cups.IPP_NOT_FOUND and name == "getPrinterAttributes":
                raise _Unavailable("queueMissing") from exc
            if status in (cups.IPP_SERVICE_UNAVAILABLE, cups.IPP_INTERNAL_ERROR) or status < 0:
                self._drop_connection()
            raise
        except (RuntimeError, cups.HTTPError) as exc:
            self._drop_connection()
            raise _Unavailable("cupsUnavailable") from exc

    # -- status -------------------------------------------------------------------------
    def _queue_report(self) -> tuple[PrinterReport, str]:
        attrs = self._call("getPrinterAttributes", self.queue,
                           requested_attributes=_QUEUE_ATTRIBUTES)
        report = PrinterReport.of(attrs.get("printer-state", state.PRINTER_IDLE),
                                  attrs.get("printer-state-reasons"),
                                  attrs.get("printer-is-accepting-jobs", True),
                                  attrs.get("queued-job-count", 0))
        return report, str(attrs.get("device-uri", ""))

    def _device(self, device_uri: str, ask: bool) -> PrinterReport | None:
        """The printer's own answer (asked now if ``ask`` or due), else the last one."""
        due = time.monotonic() - self._device_asked_at >= self.device_query_s
        if not ipp.is_ipp_uri(device_uri):
            return None
        if ask or due:
            self._device_asked_at = time.monotonic()
            try:
                self._device_report = ipp.query_printer(device_uri, self.device_timeout_s)
            except ipp.IppError as exc:
                silent = PrinterReport.of(state.PRINTER_STOPPED, ["offline-error"],
                                          source="device")
                if self._device_report != silent:  # said once, not at every poll
                    log.warning("%s: printer behind %s did not answer: %s", self.device_id,
                                self.queue, exc)
                # Not there means not printing: CUPS would hold the job and print it later.
                self._device_report = silent
        return self._device_report

    def _refresh(self, ask_device: bool) -> Condition | None:
        """Read the queue (and the printer when due or asked); publish the status. None when
        the queue cannot be reached."""
        try:
            queue, device_uri = self._queue_report()
            report = state.merge(queue, self._device(device_uri, ask_device))
        except _Unavailable as gone:
            self._publish_unavailable(gone.problem)
            return None
        except cups.IPPError as exc:
            log.warning("%s: CUPS refused the status query: %s", self.device_id, exc)
            self._publish_unavailable("cupsError")
            return None
        condition = state.assess(report)
        self._publish(condition, report)
        return condition

    def _publish_unavailable(self, problem: str) -> None:
        with self._condition_lock:
            # Detached once, when a queue that was there goes (not at every poll, not at start).
            first = self.status().state not in (DeviceState.NO_DEVICE, DeviceState.STARTING)
            self._condition = None
            self._set_status(state=DeviceState.NO_DEVICE, paper=PaperState.UNKNOWN,
                             door=DoorState.UNKNOWN, queue_depth=None,
                             detail={"queue": self.queue, "problem": problem})
        if first:
            log.warning("%s: CUPS queue %s unavailable (%s)", self.device_id, self.queue,
                        problem)
            self._emit(EventKind.DETACHED, severity=Severity.WARNING, error_kind=problem)

    def _publish(self, condition: Condition, report: PrinterReport) -> None:
        with self._condition_lock:
            before = self._condition
            self._condition = condition
            was_missing = self.status().state is DeviceState.NO_DEVICE
            self._set_status(state=condition.state, paper=condition.paper, door=condition.door,
                             queue_depth=report.queued_jobs,
                             detail={"queue": self.queue, "reasons": list(condition.reasons),
                                     "source": report.source,
                                     "accepting": report.accepting})
        if was_missing:
            self._emit(EventKind.ATTACHED)
        self._emit_transitions(before, condition)

    def _emit_transitions(self, before: Condition | None, now: Condition) -> None:
        old_paper = before.paper if before else PaperState.FULL
        if now.paper is not old_paper and now.paper in (PaperState.LOW, PaperState.OUT):
            self._emit(EventKind.PAPER_THRESHOLD, payload=now.paper,
                       severity=Severity.ALARM if now.paper is PaperState.OUT
                       else Severity.WARNING)
        faults = [
            (now.paper is PaperState.JAMMED and old_paper is not PaperState.JAMMED,
             state.PAPER_JAMMED, Severity.ALARM),
            (now.door is DoorState.OPEN and (before is None or before.door is not DoorState.OPEN),
             state.DOOR_OPEN, Severity.ALARM),
            (now.supplies_empty and not (before and before.supplies_empty),
             state.TONER_EMPTY, Severity.ALARM),
            (now.supplies_low and not now.supplies_empty
             and not (before and before.supplies_low), state.TONER_LOW, Severity.WARNING),
            (now.state is DeviceState.HARDWARE_ERROR and not now.supplies_empty
             and (before is None or before.state is not DeviceState.HARDWARE_ERROR),
             state.PRINTER_STOPPED_CODE, Severity.ALARM),
        ]
        for happened, code, severity in faults:
            if happened:
                self._emit(EventKind.ERROR, severity=severity, error_kind=code, action="status")

    def _poll(self) -> None:
        while not self._closed.wait(self.status_interval_s):
            if self._current is not None:
                continue  # the running print keeps the status current itself
            try:
                self._refresh(ask_device=False)
            except Exception:  # the poller must outlive any surprise
                log.exception("%s: status poll failed", self.device_id)

    # -- printing -----------------------------------------------------------------------
    def _print(self, ctx: CommandContext, document: Printable) -> PrintReceipt:
        with self._jobs_lock:
            earlier = self._jobs.get(document.job_key)
        if earlier is not None:
            receipt = self._retry(ctx, earlier)
            if receipt is not None:
                return receipt
        if isinstance(document, PdfDocument):
            pdf = document.pdf
        else:
            pdf = render_pdf(document, Path(self.font_path))
        ctx.check()
        condition = self._refresh(ask_device=True)
        if condition is None:
            problem = self.status().detail.get("problem", "noDevice")
            raise CommandFailed(Completion.DEVICE_NOT_READY, str(DeviceState.NO_DEVICE),
                                f"CUPS queue {self.queue} not available ({problem})")
        if condition.refusal is not None:
            completion, code = condition.refusal
            raise CommandFailed(completion, code, "refused before anything was sent")
        job = self._submit(document, pdf, earlier)
        return self._follow(ctx, job)

    def _retry(self, ctx: CommandContext, earlier: SubmittedJob) -> PrintReceipt | None:
        """A key seen before: its receipt if it printed, the earlier job followed if CUPS still
        has it, or None when it failed and a new job may be sent."""
        if earlier.outcome == _Outcome.PENDING:
            try:
                attrs = self._call("getJobAttributes", earlier.job_id,
                                   requested_attributes=_JOB_ATTRIBUTES)
            except (cups.IPPError, _Unavailable) as exc:
                # Without CUPS' word the earlier job may still print: never send a second.
                raise CommandFailed(Completion.DEVICE_NOT_READY, "jobUnknown",
                                    "cannot see the earlier job of this key") from exc
            job_state = int(attrs.get("job-state", 0))
            if job_state == state.JOB_COMPLETED:
                earlier.outcome = _Outcome.COMPLETED
            elif job_state in (state.JOB_ABORTED, state.JOB_CANCELED):
                earlier.outcome = _Outcome.FAILED
            else:
                log.info("%s: key retried while job %d is pending; following it",
                         self.device_id, earlier.job_id)
                return self._follow(ctx, earlier)
        if earlier.outcome == _Outcome.COMPLETED:
            return PrintReceipt(earlier.job_key, earlier.pages, duplicate=True)
        return None

    def _submit(self, document: Printable, pdf: bytes,
                earlier: SubmittedJob | None) -> SubmittedJob:
        try:
            job_id = int(self._call("createJob", self.queue, document.title, {}))
        except _Unavailable as gone:
            raise CommandFailed(Completion.DEVICE_NOT_READY, str(DeviceState.NO_DEVICE),
                                gone.problem) from gone
        except cups.IPPError as exc:
            status = exc.args[0] if exc.args else 0
            if status == cups.IPP_NOT_ACCEPTING:
                raise CommandFailed(Completion.DEVICE_NOT_READY, state.NOT_ACCEPTING) from exc
            raise CommandFailed(Completion.HARDWARE_ERROR, state.JOB_REJECTED,
                                f"CUPS refused the job ({status})") from exc
        job = SubmittedJob(document.job_key, job_id, pdf_page_count(pdf), time.monotonic())
        if earlier is not None:
            job.history = [*earlier.history, earlier.job_id]
        # Recorded before the document goes out: from here on a retry must look at this job.
        with self._jobs_lock:
            self._jobs[document.job_key] = job
        log.info("%s: job %d on %s: %s (%s), %d page(s)", self.device_id, job_id, self.queue,
                 document.title, document.kind, job.pages)
        try:
            self._call("startDocument", self.queue, job_id, document.title,
                       "application/pdf", 1)
            self._call("writeRequestData", pdf, len(pdf))
            status = self._call("finishDocument", self.queue)
            if status != cups.IPP_OK:
                raise cups.IPPError(status, "finishDocument")
        except (cups.IPPError, _Unavailable) as exc:
            self._cancel_job(job)
            job.outcome = _Outcome.FAILED
            raise CommandFailed(Completion.HARDWARE_ERROR, state.JOB_REJECTED,
                                "the document did not reach CUPS") from exc
        return job

    def _cancel_job(self, job: SubmittedJob) -> None:
        try:
            self._call("cancelJob", job.job_id, purge_job=False)
            log.info("%s: job %d canceled", self.device_id, job.job_id)
        except (cups.IPPError, _Unavailable) as exc:
            # Left pending: a retry of the key looks at CUPS before sending anything.
            log.error("%s: job %d could not be canceled: %s", self.device_id, job.job_id, exc)
            return
        job.outcome = _Outcome.FAILED

    def _follow(self, ctx: CommandContext, job: SubmittedJob) -> PrintReceipt:
        deadline = job.submitted_at + self.job_timeout_s
        # Looked at soon, then less often: a short job ends in a fraction of a second, a long
        # one should not be asked about twenty times a second.
        interval = min(0.05, self.poll_interval_s)
        while True:
            try:
                attrs = self._call("getJobAttributes", job.job_id,
                                   requested_attributes=_JOB_ATTRIBUTES)
            except (cups.IPPError, _Unavailable) as exc:
                log.warning("%s: job %d not readable: %s", self.device_id, job.job_id, exc)
                attrs = {}
            job_state = int(attrs.get("job-state", 0))
            if job_state == state.JOB_COMPLETED:
                job.outcome = _Outcome.COMPLETED
                self._refresh(ask_device=False)
                return PrintReceipt(job.job_key, job.pages)
            if job_state in (state.JOB_ABORTED, state.JOB_CANCELED, state.JOB_STOPPED,
                             state.JOB_HELD):
                if job_state in (state.JOB_STOPPED, state.JOB_HELD):
                    # CUPS would print it when the queue restarts: not with no one there.
                    self._cancel_job(job)
                job.outcome = _Outcome.FAILED
                condition = self._refresh(ask_device=False)
                queue_now = None
                if condition is not None:
                    queue_now = PrinterReport.of(state.PRINTER_IDLE, condition.reasons)
                code = state.job_failure_code(attrs.get("job-printer-state-reasons"),
                                              queue_now)
                log.warning("%s: job %d ended in state %d (%s)", self.device_id, job.job_id,
                            job_state, code)
                raise CommandFailed(Completion.HARDWARE_ERROR, code,
                                    f"job ended in CUPS job-state {job_state}")
            if time.monotonic() >= deadline:
                self._cancel_job(job)
                raise CommandFailed(Completion.TIME_OUT, "timeOut",
                                    f"job not done in {self.job_timeout_s:g}s; canceled")
            if ctx.wait(interval):
                self._cancel_job(job)
                ctx.check()
            interval = min(interval * 2, self.poll_interval_s)


class CupsDocumentPrinter(_CupsPrinter, DocumentPrinter):
    def __init__(self, device_id: str = "document_printer", queue: str = "zizhu-a4",
                 server: str | None = None, job_timeout_s: float = 60,
                 poll_interval_s: float = 0.5, font_path: str = DEFAULT_FONT,
                 status_interval_s: float = 5.0, device_query_s: float = 15.0,
                 device_timeout_s: float = 2.0) -> None:
        super().__init__(device_id, queue, server, job_timeout_s, poll_interval_s, font_path,
                         status_interval_s, device_query_s, device_timeout_s)


class CupsReceiptPrinter(_CupsPrinter, ReceiptPrinter):
    """An 80 mm printer whose vendor ships a CUPS driver instead of speaking ESC/POS."""

    def __init__(self, device_id: str = "receipt_printer", queue: str = "zizhu-receipt",
                 server: str | None = None, job_timeout_s: float = 30,
                 poll_interval_s: float = 0.5, font_path: str = DEFAULT_FONT,
                 status_interval_s: float = 5.0, device_query_s: float = 15.0,
                 device_timeout_s: float = 2.0) -> None:
        super().__init__(device_id, queue, server, job_timeout_s, poll_interval_s, font_path,
                         status_interval_s, device_query_s, device_timeout_s)
