"""办件查询 progress query: identify with an ID card or passport, then see where each of one's
applications stands. The document's number goes to the back office only; the screen shows
tracking numbers, services and statuses, no personal data.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from flows.base import Flow
from flows.identify import IdentifyFlow, IdentifyView, IdStep
from flows.ports import ApplicationSummary, AuditSink, BackOffice, BackOfficeError


class QueryStep(enum.StrEnum):
    IDENTIFY = "identify"  # the identify flow's view is what the screen shows
    LOOKING_UP = "looking_up"
    RESULTS = "results"  # possibly empty: "no applications found" is a result
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


class QueryFlow(Flow[QueryView]):
    def __init__(self, *, identify: IdentifyFlow, backoffice: BackOffice, audit: AuditSink,
                 session_id: str) -> None:
        super().__init__(QueryView(QueryStep.IDENTIFY, identify.view))
        self.identify = identify
        self.backoffice = backoffice
        self.audit = audit
        self.session_id = session_id
        identify.on_change(self._identify_changed)
        self.busy_listeners = identify.busy_listeners

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
        self._show(QueryView(QueryStep.RESULTS, applications=tuple(found)))

    def cancel(self) -> None:
        super().cancel()
        self.identify.cancel()

    def wipe(self) -> None:
        self.identify.wipe()
        with self._lock:
            self._view = QueryView(QueryStep.CANCELLED)

