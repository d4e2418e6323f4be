"""What a CUPS queue (or the IPP printer behind it) says about itself, in HAL terms.

IPP describes a printer with ``printer-state`` (3 idle, 4 processing, 5 stopped) and a set of
``printer-state-reasons`` keywords, each optionally suffixed ``-error``, ``-warning`` or
``-report`` (RFC 8011 §5.4.12: a keyword without a suffix is an error). This module turns them
into the paper / door / device state of DeviceStatus and into the completion code a print is
refused or ended with. Pure functions; no CUPS connection here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from devices.contract import Completion, DeviceState, DoorState, PaperState

PRINTER_IDLE = 3
PRINTER_PROCESSING = 4
PRINTER_STOPPED = 5

JOB_PENDING = 3
JOB_HELD = 4
JOB_PROCESSING = 5
JOB_STOPPED = 6
JOB_CANCELED = 7
JOB_ABORTED = 8
JOB_COMPLETED = 9
JOB_FINISHED = frozenset({JOB_CANCELED, JOB_ABORTED, JOB_COMPLETED})

# Device-specific error codes of the printer contract (devices/printer.py) and the few this
# driver adds for what only a networked/CUPS printer can have.
PAPER_OUT = "paperOut"
PAPER_JAMMED = "paperJammed"
DOOR_OPEN = "doorOpen"
JOB_REJECTED = "jobRejected"
TONER_EMPTY = "tonerEmpty"
TONER_LOW = "tonerLow"
PRINTER_STOPPED_CODE = "printerStopped"
NOT_ACCEPTING = "notAccepting"


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    REPORT = "report"


_PAPER_OUT = frozenset({"media-empty", "media-needed"})
_PAPER_LOW = frozenset({"media-low"})
_PAPER_JAM = frozenset({"media-jam"})
_DOOR = frozenset({"door-open", "cover-open", "interlock-open"})
_OFFLINE = frozenset({"offline", "shutdown", "timed-out"})
_SUPPLY_EMPTY = frozenset({"toner-empty", "marker-supply-empty", "marker-waste-full"})
_SUPPLY_LOW = frozenset({"toner-low", "marker-supply-low", "marker-waste-almost-full"})
# Keywords about the device itself; when the printer answers IPP directly these come from it and
# CUPS' copies (left over from the last job) are dropped.
DEVICE_KEYWORDS = (_PAPER_OUT | _PAPER_LOW | _PAPER_JAM | _DOOR | _OFFLINE | _SUPPLY_EMPTY
                   | _SUPPLY_LOW)


def split_reason(reason: str) -> tuple[str, Severity]:
    """``media-empty-error`` → (``media-empty``, error); no suffix means error (RFC 8011)."""
    for severity in Severity:
        suffix = f"-{severity.value}"
        if reason.endswith(suffix):
            return reason[: -len(suffix)], severity
    return reason, Severity.ERROR


@dataclass(frozen=True)
class PrinterReport:
    """The raw IPP view: printer-state, printer-state-reasons, printer-is-accepting-jobs."""

    printer_state: int
    reasons: frozenset[str]
    accepting: bool = True
    queued_jobs: int = 0
    source: str = "cups"  # "cups": the queue's view; "device": the printer answered itself

    @classmethod
    def of(cls, printer_state: int, reasons: Iterable[str] | str | None, accepting: bool = True,
           queued_jobs: int = 0, source: str = "cups") -> PrinterReport:
        if isinstance(reasons, str):  # pycups gives a lone value as a plain string
            reasons = [reasons]
        cleaned = frozenset(r for r in (reasons or ()) if r and r != "none")
        return cls(int(printer_state), cleaned, bool(accepting), int(queued_jobs), source)

    def keywords(self, *severities: Severity) -> frozenset[str]:
        wanted = severities or tuple(Severity)
        return frozenset(kw for kw, sev in map(split_reason, self.reasons) if sev in wanted)


def merge(queue: PrinterReport, device: PrinterReport | None) -> PrinterReport:
    """The queue's state (stopped, accepting, jobs) with the device's own paper/door/offline
    keywords when the device answered: CUPS keeps what a backend last said until the next job,
    which can be long stale."""
    if device is None:
        return queue
    kept = {r for r in queue.reasons if split_reason(r)[0] not in DEVICE_KEYWORDS}
    state = PRINTER_STOPPED if PRINTER_STOPPED in (queue.printer_state, device.printer_state) \
        else queue.printer_state
    return PrinterReport(state, frozenset(kept | device.reasons), queue.accepting and
                         device.accepting, queue.queued_jobs, source="device")


@dataclass(frozen=True)
class Condition:
    """A report read in HAL terms, plus why a print must be refused now (if it must)."""

    state: DeviceState
    paper: PaperState
    door: DoorState
    supplies_low: bool
    supplies_empty: bool
    refusal: tuple[Completion, str] | None
    reasons: tuple[str, ...]


def paper_of(report: PrinterReport) -> PaperState:
    errors = report.keywords(Severity.ERROR)
    warnings = report.keywords(Severity.WARNING)
    if (errors | warnings) & _PAPER_JAM:
        return PaperState.JAMMED
    if errors & _PAPER_OUT:
        return PaperState.OUT
    # An empty tray reported as a warning: another tray still feeds, so the paper runs low.
    # media-low is a threshold whatever its severity (printers commonly send -report).
    if (warnings & _PAPER_OUT) or (report.keywords() & _PAPER_LOW):
        return PaperState.LOW
    # No paper keyword is what a printer with paper says; cups-pdf has none and never runs out.
    return PaperState.FULL


def door_of(report: PrinterReport) -> DoorState:
    return DoorState.OPEN if report.keywords(Severity.ERROR) & _DOOR else DoorState.CLOSED


def assess(report: PrinterReport) -> Condition:
    paper = paper_of(report)
    door = door_of(report)
    errors = report.keywords(Severity.ERROR)
    supplies_empty = bool(errors & _SUPPLY_EMPTY)
    supplies_low = bool(report.keywords() & (_SUPPLY_LOW | _SUPPLY_EMPTY))
    # "offline-report" is how CUPS' own backends say the printer is not there, so any severity.
    offline = bool(report.keywords() & _OFFLINE)
    paused = "paused" in report.keywords()
    stopped = report.printer_state == PRINTER_STOPPED

    if offline or (stopped and paused) or not report.accepting:
        state = DeviceState.OFFLINE
    elif stopped or supplies_empty:
        state = DeviceState.HARDWARE_ERROR
    else:
        state = DeviceState.ONLINE

    refusal: tuple[Completion, str] | None = None
    # Paper and door first: a queue CUPS stopped because the paper ran out must say paperOut.
    if door is DoorState.OPEN:
        refusal = (Completion.HARDWARE_ERROR, DOOR_OPEN)
    elif paper is PaperState.JAMMED:
        refusal = (Completion.HARDWARE_ERROR, PAPER_JAMMED)
    elif paper is PaperState.OUT:
        refusal = (Completion.HARDWARE_ERROR, PAPER_OUT)
    elif offline or (stopped and paused):
        refusal = (Completion.DEVICE_NOT_READY, str(DeviceState.OFFLINE))
    elif not report.accepting:
        refusal = (Completion.DEVICE_NOT_READY, NOT_ACCEPTING)
    elif supplies_empty:
        refusal = (Completion.HARDWARE_ERROR, TONER_EMPTY)
    elif stopped:
        refusal = (Completion.HARDWARE_ERROR, PRINTER_STOPPED_CODE)
    return Condition(state, paper, door, supplies_low, supplies_empty, refusal,
                     tuple(sorted(report.reasons)))


def job_failure_code(job_printer_reasons: Iterable[str] | str | None,
                     printer_now: PrinterReport | None = None) -> str:
    """Why a job ended without printing: the printer's reasons when the job ended (CUPS keeps
    them as job-printer-state-reasons), else the printer's reasons now."""
    for report in (PrinterReport.of(PRINTER_IDLE, job_printer_reasons), printer_now):
        if report is None:
            continue
        condition = assess(report)
        if condition.refusal is not None and condition.refusal[0] is Completion.HARDWARE_ERROR \
                and condition.refusal[1] in (DOOR_OPEN, PAPER_JAMMED, PAPER_OUT, TONER_EMPTY):
            return condition.refusal[1]
    return JOB_REJECTED
