"""预约签到 appointment check-in: scan the booking QR, show the appointment, check in, print
the queue ticket.

A signed code (``ZZ1:``) is verified offline and shown straight from its content; only the
check-in itself goes to the back office. An unsigned code is looked up there first.

Every way this can go wrong has its own ``Problem`` (its own screen) and its own way back;
a check-in the back office accepted is never lost to a printer fault: the ticket number stays
on the screen. The ticket prints through ``PrintJob`` like every document: one reprint, then
it is kept for staff to reprint and the citizen is given its reference.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from devices.barcode import BarcodeReader
from devices.contract import Completion
from devices.printer import ReceiptPrinter
from flows.appointment_code import (
    CodeRejected,
    MalformedCode,
    Rejection,
    SignedAppointment,
    check_validity,
    is_signed_code,
    parse_appointment_code,
    verify_signed_code,
)
from flows.base import Flow, Translate
from flows.ports import (
    Appointment,
    AppointmentAlreadyUsed,
    AppointmentNotFound,
    AppointmentNotValidHere,
    AppointmentStatus,
    AuditSink,
    BackOffice,
    BackOfficeError,
    BackOfficeUnavailable,
    QueueTicket,
    UsedCodes,
)
from flows.print_job import HeldPrints, PrintJob, PrintResult, PrintSettings
from flows.privacy import mask_name
from flows.tickets import queue_ticket_document


class Step(enum.StrEnum):
    SCAN = "scan"
    LOOKING_UP = "looking_up"
    CONFIRM = "confirm"
    CHECKING_IN = "checking_in"
    PRINTING = "printing"
    TAKE_TICKET = "take_ticket"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Problem(enum.StrEnum):
    SCAN_TIMEOUT = "scan_timeout"
    SCANNER_FAILED = "scanner_failed"
    MALFORMED_CODE = "malformed_code"
    FORGED_CODE = "forged_code"  # signed, but the signature does not match
    UNKNOWN_KEY = "unknown_key"  # signed with a key this kiosk does not trust
    EXPIRED_CODE = "expired_code"  # past its expiry or its slot (plus the grace)
    TOO_EARLY = "too_early"  # before its slot (minus the grace)
    UNKNOWN_CODE = "unknown_code"
    OTHER_DAY = "other_day"
    OTHER_CENTRE = "other_centre"
    ALREADY_USED = "already_used"
    APPOINTMENT_CANCELLED = "appointment_cancelled"
    BACKOFFICE_UNAVAILABLE = "backoffice_unavailable"
    PRINT_FAILED = "print_failed"


class Action(enum.StrEnum):
    SCAN_AGAIN = "scan_again"
    RETRY = "retry"
    RETRY_PRINT = "retry_print"
    HOME = "home"
    CALL_STAFF = "call_staff"


_REJECTIONS: dict[Rejection, Problem] = {
    Rejection.MALFORMED: Problem.MALFORMED_CODE,
    Rejection.FORGED: Problem.FORGED_CODE,
    Rejection.UNKNOWN_KEY: Problem.UNKNOWN_KEY,
    Rejection.OTHER_CENTRE: Problem.OTHER_CENTRE,
    Rejection.EXPIRED: Problem.EXPIRED_CODE,
    Rejection.TOO_EARLY: Problem.TOO_EARLY,
}

_ACTIONS: dict[Problem, tuple[Action, ...]] = {
    Problem.SCAN_TIMEOUT: (Action.SCAN_AGAIN, Action.HOME),
    Problem.SCANNER_FAILED: (Action.CALL_STAFF, Action.HOME),
    Problem.MALFORMED_CODE: (Action.SCAN_AGAIN, Action.HOME),
    # Scanning a forged code again changes nothing; a person has to look at it.
    Problem.FORGED_CODE: (Action.CALL_STAFF, Action.HOME),
    # The kiosk lacks a key (a rotation not yet rolled out): the citizen did nothing wrong.
    Problem.UNKNOWN_KEY: (Action.CALL_STAFF, Action.HOME),
    Problem.EXPIRED_CODE: (Action.SCAN_AGAIN, Action.HOME),
    Problem.TOO_EARLY: (Action.SCAN_AGAIN, Action.HOME),
    Problem.UNKNOWN_CODE: (Action.SCAN_AGAIN, Action.HOME),
    Problem.OTHER_DAY: (Action.SCAN_AGAIN, Action.HOME),
    Problem.OTHER_CENTRE: (Action.SCAN_AGAIN, Action.HOME),
    Problem.ALREADY_USED: (Action.CALL_STAFF, Action.HOME),
    Problem.APPOINTMENT_CANCELLED: (Action.SCAN_AGAIN, Action.HOME),
    Problem.BACKOFFICE_UNAVAILABLE: (Action.RETRY, Action.HOME),
    Problem.PRINT_FAILED: (Action.RETRY_PRINT, Action.CALL_STAFF, Action.HOME),
}


@dataclass(frozen=True)
class AppointmentSummary:
    """What the screen may show of an appointment: the name only masked."""

    service_name: str
    centre_name: str
    date: date
    slot: str
    applicant: str
    place: str = ""  # where to go, from a signed code ("二楼 B区 5号窗"); empty if unknown


@dataclass(frozen=True)
class CheckInView:
    step: Step
    appointment: AppointmentSummary | None = None
    ticket: QueueTicket | None = None
    problem: Problem | None = None
    detail: str = ""  # a device error code, a date, a centre name: never personal data
    actions: tuple[Action, ...] = ()
    staff_reference: str = ""  # PRINT_FAILED, twice: the ticket is kept for staff under this
    sensed: bool = True  # TAKE_TICKET: False when the printer cannot tell it was taken


@dataclass(frozen=True)
class CheckInSettings:
    kiosk_id: str
    centre_id: str
    scan_timeout_s: float = 60.0
    print_timeout_s: float = 20.0
    take_timeout_s: float = 20.0
    centre_name: str = ""  # what a signed code's appointment shows as its centre
    # A signed code checks in from its slot's start minus grace_before to its end plus
    # grace_after (and never after the code's own expiry).
    grace_before: timedelta = timedelta(minutes=30)
    grace_after: timedelta = timedelta(minutes=30)
    # Key id -> Ed25519 public key: whose signatures this kiosk believes.
    trusted_keys: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)


class CheckInFlow(Flow[CheckInView]):
    def __init__(
        self,
        *,
        scanner: BarcodeReader,
        printer: ReceiptPrinter,
        backoffice: BackOffice,
        used_codes: UsedCodes,
        audit: AuditSink,
        settings: CheckInSettings,
        session_id: str,
        now: Callable[[], datetime],
        today: Callable[[], date] | None = None,
        translate: Translate = lambda s: s,
        held: HeldPrints | None = None,
    ) -> None:
        """``now`` is aware, in the centre's zone (a signed code's slot is its wall clock);
        ``today`` defaults to its date."""
        super().__init__(CheckInView(Step.SCAN))
        self.scanner = scanner
        self.printer = printer
        self.backoffice = backoffice
        self.used_codes = used_codes
        self.audit = audit
        self.settings = settings
        self.session_id = session_id
        self.now = now
        self.today = today or (lambda: now().date())
        self._ = translate
        self.held = held
        self._code: str | None = None
        self._appointment: Appointment | None = None
        self._place = ""  # a signed code's window/area hint
        self._ticket: QueueTicket | None = None
        self._checkin_key: str | None = None
        self._job: PrintJob | None = None
        self._retry: Callable[[], None] | None = None

    # -- scanning ---------------------------------------------------------------------------
    def scan(self) -> None:
        """Wait for the citizen to show a code, then look it up."""
        self._code = self._appointment = None
        self._show(CheckInView(Step.SCAN))
        result = self._await(self.scanner.read(self.settings.scan_timeout_s, self.session_id))
        if result.ok and result.data is not None:
            self.submit_code(result.data)
        elif result.completion is Completion.CANCELED:
            self._show(CheckInView(Step.CANCELLED))
        elif result.completion is Completion.TIME_OUT:
            self._fail(Problem.SCAN_TIMEOUT)
        else:
            self._fail(Problem.SCANNER_FAILED, result.error_code or str(result.completion))

    def submit_code(self, payload: str) -> None:
        """A payload from the scanner (or typed on the keypad)."""
        self._code = self._appointment = None
        self._place = ""
        # A new code is a new check-in, not a retry of the last one.
        self._checkin_key = self._retry = None
        if is_signed_code(payload):
            self._submit_signed(payload)
            return
        try:
            code = parse_appointment_code(payload)
        except MalformedCode as bad:
            self._fail(Problem.MALFORMED_CODE, bad.reason)
            return
        self._code = code
        self._lookup()

    def _submit_signed(self, payload: str) -> None:
        """Verify offline and show the appointment from the code itself: no network call."""
        settings = self.settings
        try:
            signed = verify_signed_code(payload, settings.trusted_keys)
            check_validity(signed, centre_id=settings.centre_id, now=self.now(),
                           grace_before=settings.grace_before, grace_after=settings.grace_after)
        except CodeRejected as rejected:
            self._fail(_REJECTIONS[rejected.reason], rejected.detail)
            return
        if self.used_codes.is_used(signed.appointment_id):
            self._fail(Problem.ALREADY_USED)
            return
        self.audit.record("checkin.code_verified", session_id=self.session_id,
                          detail={"appointment_id": signed.appointment_id,
                                  "key_id": signed.key_id})
        self._code = signed.appointment_id
        self._appointment = self._from_signed(signed)
        self._place = signed.place
        self._show(CheckInView(Step.CONFIRM, appointment=self._summary(self._appointment),
                               actions=(Action.HOME,)))

    def _from_signed(self, signed: SignedAppointment) -> Appointment:
        # The back office checks a signed code in by its appointment id (it takes an id where
        # an online code goes), so the id is the code the check-in sends.
        return Appointment(
            code=signed.appointment_id, appointment_id=signed.appointment_id,
            centre_id=signed.centre_id, centre_name=self.settings.centre_name,
            service_item_code=signed.service_item_code,
            service_name=signed.service_name or signed.service_item_code, date=signed.date,
            slot_start=signed.slot_start, slot_end=signed.slot_end,
            applicant_name=signed.holder, status=AppointmentStatus.BOOKED)

    def _lookup(self) -> None:
        assert self._code is not None
        self._show(CheckInView(Step.LOOKING_UP))
        try:
            appointment = self.backoffice.get_appointment(self._code)
        except AppointmentNotFound:
            self._fail(Problem.UNKNOWN_CODE)
            return
        except BackOfficeError as error:
            self._unavailable(error, retry=self._lookup)
            return
        problem = self._check(appointment)
        if problem is not None:
            problem_kind, detail = problem
            self._fail(problem_kind, detail)
            return
        self._appointment = appointment
        self._show(CheckInView(Step.CONFIRM, appointment=self._summary(appointment),
                               actions=(Action.HOME,)))

    def _check(self, appointment: Appointment) -> tuple[Problem, str] | None:
        if appointment.status is AppointmentStatus.CANCELLED:
            return Problem.APPOINTMENT_CANCELLED, ""
        if (appointment.status is AppointmentStatus.CHECKED_IN
                or self.used_codes.is_used(appointment.appointment_id)):
            return Problem.ALREADY_USED, ""
        if appointment.centre_id != self.settings.centre_id:
            return Problem.OTHER_CENTRE, appointment.centre_name
        if appointment.date != self.today():
            return Problem.OTHER_DAY, appointment.date.isoformat()
        return None

    def _summary(self, appointment: Appointment) -> AppointmentSummary:
        slot = f"{appointment.slot_start:%H:%M}–{appointment.slot_end:%H:%M}"
        return AppointmentSummary(appointment.service_name, appointment.centre_name,
                                  appointment.date, slot, mask_name(appointment.applicant_name),
                                  self._place)

    # -- checking in ------------------------------------------------------------------------
    def confirm(self) -> None:
        """The citizen confirmed the appointment shown: check in and print the ticket."""
        appointment = self._appointment
        if appointment is None or self.view.step not in (Step.CONFIRM, Step.FAILED):
            return
        # One key for every retry of this check-in, so the back office issues one ticket.
        self._checkin_key = self._checkin_key or uuid.uuid4().hex
        self._show(CheckInView(Step.CHECKING_IN, appointment=self._summary(appointment)))
        try:
            ticket = self.backoffice.check_in(
                appointment.code, kiosk_id=self.settings.kiosk_id,
                centre_id=self.settings.centre_id, idempotency_key=self._checkin_key)
        except AppointmentAlreadyUsed:
            self._fail(Problem.ALREADY_USED)
            return
        except AppointmentNotFound:
            # A signed code for an appointment the back office does not know (or no longer).
            self._fail(Problem.UNKNOWN_CODE)
            return
        except AppointmentNotValidHere as refused:
            problem = {"wrong_centre": Problem.OTHER_CENTRE, "not_today": Problem.OTHER_DAY,
                       "cancelled": Problem.APPOINTMENT_CANCELLED}.get(refused.reason)
            self._fail(problem or Problem.UNKNOWN_CODE, refused.reason)
            return
        except BackOfficeError as error:
            self._unavailable(error, retry=self.confirm)
            return
        self.used_codes.mark_used(appointment.appointment_id, self.session_id)
        if self._place and not (ticket.floor or ticket.area or ticket.window):
            # The back office named no place: the code's hint is better than nothing.
            ticket = replace(ticket, area=self._place)
        self._ticket = ticket
        self.audit.record("checkin.checked_in", session_id=self.session_id,
                          detail={"appointment_id": appointment.appointment_id,
                                  "ticket": ticket.number})
        self._print()

    # -- printing ---------------------------------------------------------------------------
    def _print(self) -> None:
        ticket = self._ticket
        assert ticket is not None
        job = self._job
        if job is None:
            document = queue_ticket_document(ticket, self.settings.centre_id, self._)
            job = self._job = PrintJob(
                document, printer=self.printer, audit=self.audit, session_id=self.session_id,
                settings=PrintSettings(self.settings.print_timeout_s,
                                       self.settings.take_timeout_s),
                held=self.held, wait=self._await)
        self._show(CheckInView(Step.PRINTING, ticket=ticket))
        outcome = job.print()
        if outcome.result is PrintResult.CANCELLED:
            return  # the session ended meanwhile
        if not outcome.printed:
            self.audit.record("checkin.print_failed", session_id=self.session_id,
                              device_id=self.printer.device_id,
                              detail={"error": outcome.error, "ticket": ticket.number,
                                      "reference": outcome.staff_reference or ""})
            actions = _ACTIONS[Problem.PRINT_FAILED]
            if not job.can_reprint:  # reprint is offered once, then staff takes over
                actions = tuple(a for a in actions if a is not Action.RETRY_PRINT)
            self._show(CheckInView(Step.FAILED, ticket=ticket, problem=Problem.PRINT_FAILED,
                                   detail=outcome.error, actions=actions,
                                   staff_reference=outcome.staff_reference or ""))
            return
        self._show(CheckInView(Step.TAKE_TICKET, ticket=ticket, actions=(Action.HOME,),
                               sensed=job.view.sensed))
        taken = job.wait_taken()
        self.audit.record("checkin.done", session_id=self.session_id,
                          detail={"ticket": ticket.number, "taken": taken})
        self._show(CheckInView(Step.DONE, ticket=ticket))

    def retry_print(self) -> None:
        view = self.view
        if view.problem is Problem.PRINT_FAILED and Action.RETRY_PRINT in view.actions:
            self._print()

    def taken(self) -> None:
        """The citizen has the ticket (or is done with the screen)."""
        if self._job is not None:
            self._job.taken()

    def retry(self) -> None:
        """Try the step the back office could not answer again (same idempotency key)."""
        retry, self._retry = self._retry, None
        if retry is not None:
            retry()

    def cancel(self) -> None:
        super().cancel()
        if self._job is not None:
            self._job.cancel()

    # -- problems ---------------------------------------------------------------------------
    def _unavailable(self, error: BackOfficeError, retry: Callable[[], None]) -> None:
        self._retry = retry
        if not isinstance(error, BackOfficeUnavailable):
            self.audit.record("checkin.backoffice_rejected", session_id=self.session_id,
                              detail={"error": error.code})
        self._fail(Problem.BACKOFFICE_UNAVAILABLE, error.code)

    def _fail(self, problem: Problem, detail: str = "") -> None:
        self.audit.record("checkin.problem", session_id=self.session_id,
                          detail={"problem": str(problem), "detail": detail})
        summary = self._summary(self._appointment) if self._appointment else None
        self._show(CheckInView(Step.FAILED, appointment=summary, ticket=self._ticket,
                               problem=problem, detail=detail, actions=_ACTIONS[problem]))

    def wipe(self) -> None:
        """Session end: forget the appointment, the name, the ticket."""
        self.cancel()
        self._code = self._appointment = self._ticket = self._job = None
        self._place = ""
        self._checkin_key = self._retry = None
        with self._lock:
            self._view = CheckInView(Step.CANCELLED)
