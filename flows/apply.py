"""自助申报 application journey: choose a service item, read its 一次性告知单, identify with an ID
card or passport, photograph each 申请材料 (or defer it where the item allows 容缺后补), give a
contact phone, sign the 告知承诺, and leave with a 受理回执.

The application is committed to the outbox before the citizen is told it was received; the
outbox delivers it when the back office can be reached. The receipt carries the kiosk's
local tracking number at once and the back office's 办件编号 when it answered in time.

Personal data (the document, the photographed pages, the phone number) lives in this flow
until the outbox has it, and ``wipe`` drops it at session end.
"""

from __future__ import annotations

import enum
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from devices.camera import Camera
from devices.printer import Media, Printer
from devices.vision.document import PaperKind
from flows.apply_documents import notice_document, receipt_document
from flows.base import Flow
from flows.identify import IdentifyFlow, IdentifyView, IdStep
from flows.material_capture import (
    Material,
    MaterialCaptureFlow,
    MaterialCaptureSettings,
    MaterialCaptureView,
    MaterialResult,
)
from flows.ports import (
    Applicant,
    ApplicationOutbox,
    ApplicationSubmission,
    AuditSink,
    BackOfficeError,
    CatalogueSource,
    Commitment,
    ItemMaterial,
    ServiceItemInfo,
)
from flows.ports import Material as SubmittedMaterial
from flows.print_job import HeldPrints, PrintJob, PrintResult, PrintSettings

# The 告知承诺 text the citizen signs is versioned: the back office keeps which one was shown.
COMMITMENT_VERSION = "zizhu-commitment-2026-1"
# Mainland mobile numbers: 11 digits starting 13-19.
_PHONE_RE = re.compile(r"^1[3-9]\d{9}$")


class ApplyStep(enum.StrEnum):
    LOADING = "loading"
    CHOOSE_ITEM = "choose_item"
    NOTICE = "notice"  # 一次性告知单 on screen
    IDENTIFY = "identify"  # the identify flow's view is what the screen shows
    MATERIALS = "materials"  # the checklist: photograph, defer or skip each
    CAPTURE = "capture"  # the material capture flow's view is what the screen shows
    CONTACT = "contact"  # the phone the department calls back on
    COMMITMENT = "commitment"  # 告知承诺
    SUBMITTING = "submitting"
    PRINTING = "printing"
    TAKE_RECEIPT = "take_receipt"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ApplyProblem(enum.StrEnum):
    CATALOGUE_UNAVAILABLE = "catalogue_unavailable"  # no catalogue, not even a cached one
    NO_ITEMS = "no_items"  # nothing can be applied for at this kiosk
    CAMERA_UNAVAILABLE = "camera_unavailable"
    NOT_STORED = "not_stored"  # the outbox could not store it: nothing was received
    RECEIPT_NOT_PRINTED = "receipt_not_printed"  # received; the receipt did not come out


class ApplyAction(enum.StrEnum):
    RETRY = "retry"
    REPRINT = "reprint"
    HOME = "home"
    CALL_STAFF = "call_staff"
    FINISH = "finish"


class MaterialState(enum.StrEnum):
    MISSING = "missing"
    CAPTURED = "captured"
    DEFERRED = "deferred"  # 容缺后补: supplied later, by the deadline on the receipt
    SKIPPED = "skipped"  # an optional material the citizen does not have


@dataclass(frozen=True)
class MaterialEntry:
    """One line of the checklist; no pixels, only counts."""

    code: str
    name: str
    requirement: str  # required | optional | deferrable
    note: str
    state: MaterialState
    pages: int = 0

    @property
    def settled(self) -> bool:
        return self.state is not MaterialState.MISSING or self.requirement == "optional"


@dataclass(frozen=True, repr=False)
class ApplicationReceipt:
    """What the receipt screen and the paper show. The phone stays out of it."""

    local_tracking_number: str
    tracking_number: str | None  # 办件编号, when the back office answered in time
    item_name: str
    submitted_at: datetime
    deferred: tuple[tuple[str, date], ...] = ()  # (material name, 补交期限)

    @property
    def number(self) -> str:
        return self.tracking_number or self.local_tracking_number

    def __repr__(self) -> str:
        return f"ApplicationReceipt({self.local_tracking_number}, {self.tracking_number})"


@dataclass(frozen=True, repr=False)
class ApplyView:
    step: ApplyStep
    items: tuple[ServiceItemInfo, ...] = ()
    item: ServiceItemInfo | None = None
    identify: IdentifyView | None = None
    materials: tuple[MaterialEntry, ...] = ()
    capture: MaterialCaptureView | None = None
    receipt: ApplicationReceipt | None = None
    problem: ApplyProblem | None = None
    detail: str = ""
    actions: tuple[ApplyAction, ...] = ()
    staff_reference: str = ""  # RECEIPT_NOT_PRINTED, twice: kept for staff under this
    sensed: bool = True  # TAKE_RECEIPT: False when the printer cannot tell it was taken

    @property
    def can_continue(self) -> bool:
        """The checklist is complete: every material photographed, deferred or optional."""
        return bool(self.materials) and all(m.settled for m in self.materials)

    def __repr__(self) -> str:
        return f"ApplyView({self.step}, item={self.item.code if self.item else None})"


@dataclass(frozen=True)
class ApplySettings:
    kiosk_id: str
    centre_id: str
    centre_name: str
    print_timeout_s: float = 20.0
    take_timeout_s: float = 20.0
    capture_timeout_s: float = 180.0
    # How long the receipt waits for the back office's 办件编号 before printing the local one.
    delivery_wait_s: float = 3.0
    deferred_working_days: int = 5  # 容缺后补 deadline
    centre_phone: str = ""


def working_days_after(start: date, days: int) -> date:
    """``days`` working days after ``start``, Monday to Friday (public holidays are the
    back office's to correct: it sets the binding deadline)."""
    current = start
    while days > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            days -= 1
    return current


def valid_phone(phone: str) -> bool:
    return bool(_PHONE_RE.fullmatch(phone))


class ApplyFlow(Flow[ApplyView]):
    def __init__(self, *, catalogue: CatalogueSource, identify: IdentifyFlow,
                 outbox: ApplicationOutbox, printer: Printer | None, camera: Camera | None,
                 audit: AuditSink, settings: ApplySettings, session_id: str,
                 now: Callable[[], datetime],
                 capture_settings: MaterialCaptureSettings | None = None,
                 purpose: str = "apply", notice_printer: Printer | None = None,
                 held: HeldPrints | None = None) -> None:
        """``purpose``: "apply" (the whole journey) or "guide" (办事指南: items and their
        notices only). ``notice_printer``: the A4 printer, else the receipt printer.
        ``held``: where a receipt that failed twice waits for staff."""
        super().__init__(ApplyView(ApplyStep.LOADING))
        self.catalogue = catalogue
        self.identify = identify
        self.outbox = outbox
        self.printer = printer
        self.camera = camera
        self.audit = audit
        self.settings = settings
        self.session_id = session_id
        self.now = now
        self.capture_settings = capture_settings or MaterialCaptureSettings()
        self.purpose = purpose
        self.notice_printer = notice_printer or printer
        self.held = held
        self.busy_listeners = identify.busy_listeners
        identify.on_change(self._identify_changed)
        self._items: tuple[ServiceItemInfo, ...] = ()
        self._item: ServiceItemInfo | None = None
        self._states: dict[str, MaterialState] = {}
        self._results: dict[str, MaterialResult] = {}
        self._capture: MaterialCaptureFlow | None = None
        self._capture_code: str | None = None
        self._phone = ""
        self._receipt: ApplicationReceipt | None = None
        self._submitted = False
        self._job: PrintJob | None = None
        self._notices = 0
        self._stopped = threading.Event()

    # -- choosing -----------------------------------------------------------------------------
    def start(self) -> None:
        self._show(ApplyView(ApplyStep.LOADING))
        try:
            catalogue = self.catalogue.service_catalogue(self.settings.centre_id)
        except BackOfficeError as error:
            self._fail(ApplyProblem.CATALOGUE_UNAVAILABLE, error.code,
                       (ApplyAction.RETRY, ApplyAction.HOME))
            return
        items = tuple(i for i in (catalogue.items if catalogue else ())
                      if self.purpose in i.kiosk_services
                      and (i.materials or self.purpose != "apply"))
        if not items:
            self._fail(ApplyProblem.NO_ITEMS, actions=(ApplyAction.HOME,))
            return
        self._items = items
        self._show(ApplyView(ApplyStep.CHOOSE_ITEM, items=items))

    def choose(self, code: str) -> None:
        item = next((i for i in self._items if i.code == code), None)
        if item is None or self.view.step is not ApplyStep.CHOOSE_ITEM:
            return
        self._item = item
        self._states = {m.code: MaterialState.MISSING for m in item.materials}
        self.audit.record("apply.item_chosen", session_id=self.session_id,
                          detail={"item": item.code})
        self._show(ApplyView(ApplyStep.NOTICE, item=item))

    def back_to_items(self) -> None:
        if self.view.step is ApplyStep.NOTICE:
            self._item = None
            self._show(ApplyView(ApplyStep.CHOOSE_ITEM, items=self._items))

    # -- identify -----------------------------------------------------------------------------
    def print_notice(self) -> None:
        """一次性告知单 on paper, to take home (the guide's button)."""
        item, printer = self._item, self.notice_printer
        if item is None or self.view.step is not ApplyStep.NOTICE:
            return
        if printer is None or not printer.status().usable:
            self._show(ApplyView(ApplyStep.NOTICE, item=item, detail="printer_unavailable"))
            return
        self._show(ApplyView(ApplyStep.PRINTING, item=item))
        media = None if printer.media_kind is Media.A4 else printer.media_kind
        self._notices += 1  # each tap is another copy (for whoever brings the papers)
        document = notice_document(item, self.settings.centre_name, self.now(), self.session_id,
                                   self.settings.centre_phone, media, copy=self._notices)
        # The notice is public: nothing is kept for staff, the button stays for another try.
        job = PrintJob(document, printer=printer, audit=self.audit, session_id=self.session_id,
                       settings=self._print_settings(), wait=self._await)
        outcome = job.print()
        if outcome.result is PrintResult.CANCELLED:
            return
        self.audit.record("guide.notice_printed" if outcome.printed else "guide.notice_failed",
                          session_id=self.session_id, device_id=printer.device_id,
                          detail={"item": item.code, "error": outcome.error})
        self._show(ApplyView(ApplyStep.NOTICE, item=item,
                             detail="notice_printed" if outcome.printed else "notice_failed"))

    def begin(self) -> None:
        """From the notice: the citizen has what is needed and applies."""
        if (self._item is None or self.view.step is not ApplyStep.NOTICE
                or self.purpose != "apply"):
            return
        if self.camera is None or not self.camera.status().usable:
            self._fail(ApplyProblem.CAMERA_UNAVAILABLE, actions=(ApplyAction.HOME,
                                                                 ApplyAction.CALL_STAFF))
            return
        self._show(ApplyView(ApplyStep.IDENTIFY, item=self._item, identify=self.identify.view))
        self.identify.start()

    def _identify_changed(self, view: IdentifyView) -> None:
        if self.view.step is ApplyStep.IDENTIFY:
            self._show(ApplyView(ApplyStep.IDENTIFY, item=self._item, identify=view))

    def identified(self) -> None:
        """After the citizen saw what was read and chose to continue."""
        if (self.view.step is not ApplyStep.IDENTIFY or self.identify.document is None
                or self.identify.view.step is not IdStep.IDENTIFIED):
            return
        self._show_materials()

    # -- materials ----------------------------------------------------------------------------
    def _entries(self) -> tuple[MaterialEntry, ...]:
        assert self._item is not None
        return tuple(
            MaterialEntry(m.code, m.name, m.requirement, m.note, self._states[m.code],
                          self._results[m.code].page_count if m.code in self._results else 0)
            for m in self._item.materials)

    def _show_materials(self) -> None:
        self._show(ApplyView(ApplyStep.MATERIALS, item=self._item, materials=self._entries()))

    def _material(self, code: str) -> ItemMaterial | None:
        if self._item is None or self.view.step is not ApplyStep.MATERIALS:
            return None
        return next((m for m in self._item.materials if m.code == code), None)

    @property
    def capture_flow(self) -> MaterialCaptureFlow | None:
        """The material being photographed, for the UI to drive."""
        return self._capture

    def capture(self, code: str) -> MaterialCaptureFlow | None:
        """Start photographing a material; the UI then drives the returned flow (``watch``
        on its camera worker) and calls ``capture_finished`` or ``capture_abandoned``."""
        material = self._material(code)
        if material is None:
            return None
        flow = MaterialCaptureFlow(
            Material(material.code, material.name, _paper(material.paper),
                     max(1, material.max_pages)),
            session_id=self.session_id, audit=self.audit, settings=self.capture_settings)
        self._capture, self._capture_code = flow, code
        flow.on_change(self._capture_changed)
        flow.start()
        self._show(ApplyView(ApplyStep.CAPTURE, item=self._item, materials=self._entries(),
                             capture=flow.view))
        return flow

    def _capture_changed(self, view: MaterialCaptureView) -> None:
        if self.view.step is ApplyStep.CAPTURE and self._capture is not None:
            self._show(ApplyView(ApplyStep.CAPTURE, item=self._item, materials=self._entries(),
                                 capture=view))

    def capture_finished(self) -> None:
        """The citizen pressed done on the review: the material's pages become its PDF."""
        flow, code = self._capture, self._capture_code
        if flow is None or code is None:
            return
        result = flow.finish()
        if result is None:
            return  # no page yet: the capture view says so
        flow.stop_watching()
        self._results[code] = result
        self._states[code] = MaterialState.CAPTURED
        self._capture = self._capture_code = None
        flow.wipe()  # the PDF is ours now; the page images go
        self._show_materials()

    def capture_abandoned(self) -> None:
        flow = self._capture
        if flow is None:
            return
        flow.cancel()
        flow.wipe()
        self._capture = self._capture_code = None
        self._show_materials()

    def defer(self, code: str) -> None:
        """容缺后补: only where the item allows it."""
        material = self._material(code)
        if material is not None and material.requirement == "deferrable":
            self._results.pop(code, None)
            self._states[code] = MaterialState.DEFERRED
            self._show_materials()

    def skip(self, code: str) -> None:
        material = self._material(code)
        if material is not None and material.requirement == "optional":
            self._results.pop(code, None)
            self._states[code] = MaterialState.SKIPPED
            self._show_materials()

    def reset_material(self, code: str) -> None:
        """Photograph it again, or undo a deferral."""
        if self._material(code) is not None:
            self._results.pop(code, None)
            self._states[code] = MaterialState.MISSING
            self._show_materials()

    def materials_done(self) -> None:
        if self.view.step is ApplyStep.MATERIALS and self.view.can_continue:
            self._show(ApplyView(ApplyStep.CONTACT, item=self._item))

    def back_to_materials(self) -> None:
        if self.view.step in (ApplyStep.CONTACT, ApplyStep.COMMITMENT):
            self._show_materials()

    # -- contact and commitment ---------------------------------------------------------------
    def set_phone(self, phone: str) -> bool:
        """False (and the contact step again, with the problem) when it is no mobile number."""
        if self.view.step is not ApplyStep.CONTACT:
            return False
        if not valid_phone(phone):
            self._show(ApplyView(ApplyStep.CONTACT, item=self._item, detail="invalid_phone"))
            return False
        self._phone = phone
        self._show(ApplyView(ApplyStep.COMMITMENT, item=self._item, materials=self._entries()))
        return True

    def commit(self) -> None:
        """The citizen signed the 告知承诺: store the application, then print the receipt."""
        if self.view.step is not ApplyStep.COMMITMENT or self._submitted:
            return
        document, item = self.identify.document, self._item
        assert document is not None and item is not None
        self._show(ApplyView(ApplyStep.SUBMITTING, item=item))
        signed_at = self.now()
        submission = ApplicationSubmission(
            centre_id=self.settings.centre_id, kiosk_id=self.settings.kiosk_id,
            session_id=self.session_id, service_item_code=item.code,
            applicant=Applicant(str(document.document_type), document.id_number, document.name),
            form={"contact_phone": self._phone,
                  **({"address": document.address} if document.address else {})},
            commitment=Commitment(COMMITMENT_VERSION, signed_at),
            materials=tuple(SubmittedMaterial(code, "application/pdf", result.pdf)
                            for code, result in self._results.items()),
            deferred_materials=tuple(code for code, state in self._states.items()
                                     if state is MaterialState.DEFERRED))
        try:
            local = self.outbox.enqueue(submission)
        except Exception as error:  # disk full, a database error: nothing was stored
            self.audit.record("apply.not_stored", session_id=self.session_id,
                              detail={"item": item.code, "error": type(error).__name__})
            self._fail(ApplyProblem.NOT_STORED, type(error).__name__,
                       (ApplyAction.RETRY, ApplyAction.CALL_STAFF, ApplyAction.HOME))
            return
        self._submitted = True
        self.audit.record("apply.stored", session_id=self.session_id,
                          detail={"item": item.code, "local_tracking_number": local,
                                  "materials": len(submission.materials),
                                  "deferred": len(submission.deferred_materials)})
        number = self._wait_for_number(local)
        deadline = working_days_after(signed_at.date(), self.settings.deferred_working_days)
        names = {m.code: m.name for m in item.materials}
        self._receipt = ApplicationReceipt(
            local, number, item.name, signed_at,
            tuple((names[c], deadline) for c in submission.deferred_materials))
        self._print_receipt()

    def _wait_for_number(self, local: str) -> str | None:
        waited, step = 0.0, 0.1
        while True:
            number = self.outbox.delivered_number(local)
            if number is not None or waited >= self.settings.delivery_wait_s:
                return number
            if self._stopped.wait(step):
                return None
            waited += step

    # -- the receipt --------------------------------------------------------------------------
    def _print_settings(self) -> PrintSettings:
        return PrintSettings(self.settings.print_timeout_s, self.settings.take_timeout_s)

    def _print_receipt(self) -> None:
        receipt, item, document = self._receipt, self._item, self.identify.document
        assert receipt is not None and item is not None and document is not None
        self._show(ApplyView(ApplyStep.PRINTING, item=item, receipt=receipt))
        if self.printer is None:
            self._receipt_failed("not_installed", reprint=False)
            return
        job = self._job
        if job is None:
            paper = receipt_document(receipt, item, document, self.settings,
                                     [(m.name, m.copies) for m in item.materials
                                      if self._states.get(m.code) is MaterialState.CAPTURED])
            job = self._job = PrintJob(paper, printer=self.printer, audit=self.audit,
                                       session_id=self.session_id,
                                       settings=self._print_settings(), held=self.held,
                                       wait=self._await)
        outcome = job.print()
        if outcome.result is PrintResult.CANCELLED:
            return  # the session ended meanwhile; the application is in the outbox
        if not outcome.printed:
            self.audit.record("apply.receipt_failed", session_id=self.session_id,
                              device_id=self.printer.device_id,
                              detail={"error": outcome.error,
                                      "reference": outcome.staff_reference or ""})
            self._receipt_failed(outcome.error, reprint=job.can_reprint,
                                 staff_reference=outcome.staff_reference or "")
            return
        self._show(ApplyView(ApplyStep.TAKE_RECEIPT, item=item, receipt=receipt,
                             actions=(ApplyAction.FINISH,), sensed=job.view.sensed))
        taken = job.wait_taken()
        self.audit.record("apply.done", session_id=self.session_id,
                          detail={"item": item.code, "taken": taken})
        self._show(ApplyView(ApplyStep.DONE, item=item, receipt=receipt))

    def _receipt_failed(self, detail: str, *, reprint: bool, staff_reference: str = "") -> None:
        # The application is stored whatever happens to the paper: the screen shows the
        # number, and staff print the receipt (the kept copy, or from the back office).
        actions = (ApplyAction.REPRINT, ApplyAction.CALL_STAFF, ApplyAction.FINISH)
        if not reprint:
            actions = actions[1:]
        self._show(ApplyView(ApplyStep.FAILED, item=self._item, receipt=self._receipt,
                             problem=ApplyProblem.RECEIPT_NOT_PRINTED, detail=detail,
                             actions=actions, staff_reference=staff_reference))

    def reprint(self) -> None:
        view = self.view
        if view.problem is ApplyProblem.RECEIPT_NOT_PRINTED and ApplyAction.REPRINT in view.actions:
            self._print_receipt()

    def finish(self) -> None:
        """Done with the receipt (or without it): the journey ends."""
        if self._job is not None:
            self._job.taken()
        if self._receipt is not None and self.view.step in (ApplyStep.TAKE_RECEIPT,
                                                            ApplyStep.FAILED):
            self._show(ApplyView(ApplyStep.DONE, item=self._item, receipt=self._receipt))

    def retry(self) -> None:
        if self.view.problem is ApplyProblem.CATALOGUE_UNAVAILABLE:
            self.start()
        elif self.view.problem is ApplyProblem.NOT_STORED:
            self._show(ApplyView(ApplyStep.COMMITMENT, item=self._item,
                                 materials=self._entries()))
            self.commit()

    # -- the end ------------------------------------------------------------------------------
    def _fail(self, problem: ApplyProblem, detail: str = "",
              actions: tuple[ApplyAction, ...] = (ApplyAction.HOME,)) -> None:
        self.audit.record("apply.problem", session_id=self.session_id,
                          detail={"problem": str(problem), "detail": detail})
        self._show(ApplyView(ApplyStep.FAILED, item=self._item, problem=problem, detail=detail,
                             actions=actions))

    def cancel(self) -> None:
        super().cancel()
        if self._job is not None:
            self._job.cancel()
        self._stopped.set()
        if self._capture is not None:
            self._capture.cancel()
        self.identify.cancel()

    def wipe(self) -> None:
        """Session end: the document, the pages, the phone number go."""
        self.cancel()
        if self._capture is not None:
            self._capture.wipe()
        self.identify.wipe()
        self._results.clear()
        self._capture = self._capture_code = None
        self._phone = ""
        self._receipt = self._job = None  # the job holds the receipt, with the name on it
        with self._lock:
            self._view = ApplyView(ApplyStep.CANCELLED)


def _paper(kind: str) -> PaperKind:
    try:
        return PaperKind(kind)
    except ValueError:
        return PaperKind.A4

