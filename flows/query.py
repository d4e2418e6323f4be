"""办件查询 progress query: identify with an ID card or passport, then see where each of one's
applications stands. The document's number goes to the back office only; the screen shows
tracking numbers, services and statuses, no personal data.

打印办件进度: one application, or all shown, printed on the receipt printer from
``assets/print/progress_query.toml`` with its history (办理过程); the list from the search has
no history, so each is fetched (``application_progress``) before printing. When that fails the
slip says what is known for certain: submitted then, in its current status since then. The
applicant's name is printed masked. Printing goes through ``PrintJob`` (one reprint, then the
slip is kept for staff).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from devices.printer import PrintDocument, Printer, Rule, Spacer
from flows.base import Flow
from flows.documents import Templates
from flows.identify import IdentifyFlow, IdentifyView, IdStep
from flows.ports import (
    ApplicationStatus,
    ApplicationStep,
    ApplicationSummary,
    AuditSink,
    BackOffice,
    BackOfficeError,
)
from flows.print_job import (
    HeldPrints,
    PrintAction,
    PrintJob,
    PrintOutcome,
    PrintSettings,
    PrintStage,
    PrintView,
    printer_refusal,
)
from flows.tickets import print_templates

# How a status reads on paper: prints are in Chinese whatever the screen's language, as staff
# at the window read them (the back office's own words).
STATUS_WORDING: dict[ApplicationStatus, str] = {
    ApplicationStatus.SUBMITTED: "已提交",
    ApplicationStatus.ACCEPTED: "已受理",
    ApplicationStatus.IN_REVIEW: "审批中",
    ApplicationStatus.SUPPLEMENT_NEEDED: "待补正",
    ApplicationStatus.APPROVED: "已办结",
    ApplicationStatus.REJECTED: "不予受理/不予批准",
    ApplicationStatus.READY: "待领取",
    ApplicationStatus.COLLECTED: "已领取",
}
READY_PICKUP = "可在自助服务区自助出件，或到综合窗口领取"


class QueryStep(enum.StrEnum):
    IDENTIFY = "identify"  # the identify flow's view is what the screen shows
    LOOKING_UP = "looking_up"
    RESULTS = "results"  # possibly empty: "no applications found" is a result
    PRINTING = "printing"  # ``print`` says printing / take / failed; then back to RESULTS
    FAILED = "failed"
    CANCELLED = "cancelled"


class QueryProblem(enum.StrEnum):
    BACKOFFICE_UNAVAILABLE = "backoffice_unavailable"


@dataclass(frozen=True)
class QueryView:
    step: QueryStep
    identify: IdentifyView | None = None
    applications: tuple[ApplicationSummary, ...] = ()
    problem: QueryProblem | None = None
    detail: str = ""
    can_print: bool = False  # RESULTS: offer 打印 (a printer is configured and ready)
    print: PrintView | None = None  # PRINTING
    printed: tuple[str, ...] = ()  # tracking numbers printed in this session


class ProgressSource(Protocol):
    """One application with its history, by 办件编号 (``HttpBackOffice.application_progress``)."""

    def application_progress(self, number: str) -> ApplicationSummary: ...


@dataclass(frozen=True)
class ProgressPrinting:
    """What printing the progress needs; a query without it only shows."""

    printer: Printer  # the receipt printer
    centre_name: str
    now: Callable[[], datetime]  # aware, the centre's time: the slip's 查询时间
    progress: ProgressSource | None = None
    held: HeldPrints | None = None
    settings: PrintSettings = field(default_factory=PrintSettings)
    templates: Templates | None = None  # None: the shipped assets/print templates


class QueryFlow(Flow[QueryView]):
    def __init__(self, *, identify: IdentifyFlow, backoffice: BackOffice, audit: AuditSink,
                 session_id: str, printing: ProgressPrinting | None = None) -> None:
        super().__init__(QueryView(QueryStep.IDENTIFY, identify.view))
        self.identify = identify
        self.backoffice = backoffice
        self.audit = audit
        self.session_id = session_id
        self.printing = printing
        identify.on_change(self._identify_changed)
        self.busy_listeners = identify.busy_listeners
        self._found: tuple[ApplicationSummary, ...] = ()
        self._printed: tuple[str, ...] = ()
        self._prints = 0
        self._job: PrintJob | None = None

    def _identify_changed(self, view: IdentifyView) -> None:
        if self.view.step is QueryStep.IDENTIFY:
            self._show(QueryView(QueryStep.IDENTIFY, view))

    def start(self) -> None:
        self._show(QueryView(QueryStep.IDENTIFY, self.identify.view))
        self.identify.start()

    def lookup(self) -> None:
        """After the citizen saw what was read and chose to continue."""
        document = self.identify.document
        if document is None or self.identify.view.step is not IdStep.IDENTIFIED:
            return
        self._show(QueryView(QueryStep.LOOKING_UP))
        try:
            found = self.backoffice.find_applications(
                id_number=document.id_number, document_type=str(document.document_type),
                session_id=self.session_id)
        except BackOfficeError as error:
            self.audit.record("query.failed", session_id=self.session_id,
                              detail={"error": error.code})
            self._show(QueryView(QueryStep.FAILED, problem=QueryProblem.BACKOFFICE_UNAVAILABLE,
                                 detail=error.code))
            return
        self.audit.record("query.done", session_id=self.session_id,
                          detail={"applications": len(found)})
        self._found = tuple(found)
        self._results()

    def _results(self) -> None:
        can_print = (self.printing is not None and bool(self._found)
                     and printer_refusal(self.printing.printer) is None)
        self._show(QueryView(QueryStep.RESULTS, applications=self._found, can_print=can_print,
                             printed=self._printed))

    # -- 打印办件进度 ------------------------------------------------------------------------------
    def print_progress(self, tracking_number: str | None = None) -> None:
        """Print one application's progress, or (None) every one shown, as one slip."""
        printing, document = self.printing, self.identify.document
        if printing is None or document is None or self.view.step is not QueryStep.RESULTS:
            return
        chosen = [a for a in self._found
                  if tracking_number is None or a.tracking_number == tracking_number]
        if not chosen:
            return
        self._show(QueryView(QueryStep.PRINTING, applications=self._found,
                             print=PrintView(PrintStage.PRINTING, "办件进度"),
                             printed=self._printed))
        slip = self._slip([self._with_history(a) for a in chosen], document.name, printing)
        job = PrintJob(slip, printer=printing.printer, audit=self.audit,
                       session_id=self.session_id, settings=printing.settings,
                       held=printing.held, show=self._print_changed, wait=self._await,
                       back=True)
        self._job = job
        self._after(job, job.print(), [a.tracking_number for a in chosen])

    def retry_print(self) -> None:
        job = self._job
        if job is not None and job.can_reprint and self.view.step is QueryStep.PRINTING:
            numbers = job.document.meta.get("tracking_numbers", "").split(",")
            self._after(job, job.reprint(), numbers)

    def _after(self, job: PrintJob, outcome: PrintOutcome, numbers: list[str]) -> None:
        if not outcome.printed:
            return  # the print view offers the reprint, staff, back or home
        job.wait_taken()
        self._printed = tuple(dict.fromkeys((*self._printed, *numbers)))
        if self._job is job and self.view.step is QueryStep.PRINTING:
            self._job = None
            self._results()

    def taken(self) -> None:
        if self._job is not None:
            self._job.taken()

    def back(self) -> None:
        """From the print screen back to the list."""
        if self.view.step is QueryStep.PRINTING and (
                self._job is None or PrintAction.BACK in self._job.view.actions):
            self._job = None
            self._results()

    def _print_changed(self, view: PrintView) -> None:
        if self._job is None:  # wiped (the session ended) or back on the list
            return
        self._show(QueryView(QueryStep.PRINTING, applications=self._found, print=view,
                             printed=self._printed))

    def _with_history(self, application: ApplicationSummary) -> ApplicationSummary:
        if application.history:
            return application
        printing = self.printing
        if printing is not None and printing.progress is not None:
            try:
                return printing.progress.application_progress(application.tracking_number)
            except BackOfficeError as error:
                self.audit.record("query.history_unavailable", session_id=self.session_id,
                                  detail={"tracking_number": application.tracking_number,
                                          "error": error.code})
        # What is certain without the back office: when it was submitted, and its status now.
        known = [ApplicationStep(application.submitted_at, ApplicationStatus.SUBMITTED,
                                 application.department)]
        if application.status is not ApplicationStatus.SUBMITTED:
            known.append(ApplicationStep(application.updated_at, application.status,
                                         application.department))
        return replace(application, history=tuple(known))

    def _slip(self, applications: list[ApplicationSummary], name: str,
              printing: ProgressPrinting) -> PrintDocument:
        templates = printing.templates or print_templates()
        self._prints += 1
        # Each tap on 打印 is a print of its own; a retry of one keeps its key (PrintJob).
        key = f"progress:{self.session_id}:{self._prints}"
        queried_at = printing.now()
        parts = [templates.render("progress_query",
                                  _slip_data(a, name, printing.centre_name, queried_at), key)
                 for a in applications]
        blocks = parts[0].blocks
        for part in parts[1:]:
            blocks += (Spacer(1.5), Rule(), Spacer(0.5), *part.blocks)
        numbers = ",".join(a.tracking_number for a in applications)
        return replace(parts[0], blocks=blocks,
                       meta={**parts[0].meta, "tracking_numbers": numbers})

    def cancel(self) -> None:
        super().cancel()
        if self._job is not None:
            self._job.cancel()
        self.identify.cancel()

    def wipe(self) -> None:
        self.cancel()
        self.identify.wipe()
        self._found = ()
        self._job = None
        with self._lock:
            self._view = QueryView(QueryStep.CANCELLED)


def _slip_data(application: ApplicationSummary, name: str, centre_name: str,
               queried_at: datetime) -> dict[str, Any]:
    data: dict[str, Any] = {
        "centre_name": centre_name,
        "tracking_number": application.tracking_number,
        "item_name": application.service_name,
        "applicant_name": name,  # the template prints it masked
        "status": STATUS_WORDING[application.status],
        "history": [{"time": step.at, "step": STATUS_WORDING[step.step],
                     "department": step.department} for step in application.history],
        "queried_at": queried_at,
    }
    if application.status is ApplicationStatus.READY:
        data["pickup"] = READY_PICKUP
    return data

