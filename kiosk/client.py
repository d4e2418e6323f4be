"""The kiosk's back-office client: ``flows.ports.BackOffice`` over HTTP with httpx.

Everything the server says is parsed defensively: an answer that does not have the contract's
shape is treated like no answer at all (``BackOfficeUnavailable``), because a kiosk must never
act on half-understood data. Exception messages and log lines name the operation, the HTTP
status and the server's error code, never the applicant or the appointment code.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from flows.ports import (
    ApplicationStatus,
    ApplicationSummary,
    Appointment,
    AppointmentAlreadyUsed,
    AppointmentNotFound,
    AppointmentNotValidHere,
    AppointmentStatus,
    BackOfficeRejected,
    BackOfficeUnavailable,
    QueueTicket,
    TicketCategory,
)

log = logging.getLogger("kiosk.client")

API_PREFIX = "/api/v1"
USER_AGENT = "zizhu-kiosk/0.1.0"
_CODE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NOT_VALID_HERE_REASONS = frozenset({"wrong_centre", "not_today", "cancelled"})


# --- wire models: what we accept from the server ----------------------------------------------
# extra="ignore": a newer server may add fields; a missing or mistyped one is an error.

class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _ErrorWire(_Wire):
    error: str = Field(min_length=1, max_length=100)
    message: str = ""


class _AppointmentWire(_Wire):
    code: str
    appointment_id: str = Field(min_length=1)
    centre_id: str
    centre_name: str
    service_item_code: str
    service_name: str
    date: dt.date
    slot_start: dt.time
    slot_end: dt.time
    applicant_name: str
    status: AppointmentStatus


class _TicketWire(_Wire):
    number: str = Field(min_length=1, max_length=16)
    service_name: str
    centre_name: str
    floor: str
    area: str
    window: str
    issued_at: AwareDatetime
    waiting_ahead: int = Field(ge=0)
    appointment_id: str | None = None


class _TicketEnvelopeWire(_Wire):
    ticket: _TicketWire


class _TicketCategoryWire(_Wire):
    code: str = Field(min_length=1)
    name: str
    floor: str
    area: str
    window: str


class _HealthWire(_Wire):
    status: str
    version: str = ""


class _HelpCreatedWire(_Wire):
    id: int
    created_at: AwareDatetime


_W = TypeVar("_W")


def _parse(adapter: TypeAdapter[_W], payload: Any, what: str) -> _W:
    try:
        return adapter.validate_python(payload)
    except ValidationError as exc:
        # Field locations and error kinds only: the input values may be personal data.
        problems = ", ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['type']}"
            for err in exc.errors(include_input=False, include_url=False, include_context=False)[:5])
        raise BackOfficeUnavailable(
            f"{what}: the back office's answer does not have the expected shape ({problems})"
        ) from None


class _ApplicationWire(_Wire):
    tracking_number: str = Field(min_length=1, max_length=64)
    service_name: str
    department: str
    status: ApplicationStatus
    note: str = ""
    submitted_at: AwareDatetime
    updated_at: AwareDatetime


_APPOINTMENT = TypeAdapter(_AppointmentWire)
_APPLICATIONS = TypeAdapter(list[_ApplicationWire])
_TICKET = TypeAdapter(_TicketEnvelopeWire)
_CATEGORIES = TypeAdapter(list[_TicketCategoryWire])
_HEALTH = TypeAdapter(_HealthWire)
_HELP_CREATED = TypeAdapter(_HelpCreatedWire)
_ERROR = TypeAdapter(_ErrorWire)


def _ticket(wire: _TicketEnvelopeWire) -> QueueTicket:
    t = wire.ticket
    return QueueTicket(number=t.number, service_name=t.service_name, centre_name=t.centre_name,
                       floor=t.floor, area=t.area, window=t.window, issued_at=t.issued_at,
                       waiting_ahead=t.waiting_ahead, appointment_id=t.appointment_id)


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


class HttpBackOffice:
    """``BackOffice`` over HTTP. ``base_url`` is the server's root (``http://host:port``; a
    trailing ``/api/v1`` is accepted too). ``transport`` replaces the network, for tests."""

    def __init__(self, base_url: str, timeout_s: float = 5.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        root = base_url.rstrip("/")
        if root.endswith(API_PREFIX):
            root = root[: -len(API_PREFIX)]
        self.base_url = root
        self.timeout_s = timeout_s
        self._http = httpx.Client(
            base_url=root + API_PREFIX, timeout=httpx.Timeout(timeout_s), transport=transport,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            # The address comes from the kiosk's config; a proxy picked up from the environment
            # would silently reroute (or break) the loopback back office.
            trust_env=False, follow_redirects=False)

    # -- lifecycle --

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HttpBackOffice:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HttpBackOffice({self.base_url!r}, timeout_s={self.timeout_s})"

    # -- BackOffice --

    def health(self) -> bool:
        try:
            response = self._http.get("/health")
            if response.status_code != 200:
                log.info("health: HTTP %s", response.status_code)
                return False
            return _parse(_HEALTH, response.json(), "health").status == "ok"
        except (httpx.HTTPError, ValueError, BackOfficeUnavailable) as exc:
            log.info("health: back office not answering (%s)", type(exc).__name__)
            return False

    def get_appointment(self, code: str) -> Appointment:
        path = self._appointment_path(code)
        payload = self._call("appointment lookup", "GET", path)
        wire = _parse(_APPOINTMENT, payload, "appointment lookup")
        return Appointment(
            code=wire.code, appointment_id=wire.appointment_id, centre_id=wire.centre_id,
            centre_name=wire.centre_name, service_item_code=wire.service_item_code,
            service_name=wire.service_name, date=wire.date, slot_start=wire.slot_start,
            slot_end=wire.slot_end, applicant_name=wire.applicant_name, status=wire.status)

    def check_in(self, code: str, *, kiosk_id: str, centre_id: str,
                 idempotency_key: str) -> QueueTicket:
        path = self._appointment_path(code) + "/check-in"
        payload = self._call("check-in", "POST", path,
                             json={"kiosk_id": kiosk_id, "centre_id": centre_id},
                             idempotency_key=idempotency_key)
        return _ticket(_parse(_TICKET, payload, "check-in"))

    def ticket_categories(self, centre_id: str) -> list[TicketCategory]:
        payload = self._call("ticket categories", "GET",
                             f"/centres/{quote(centre_id, safe='')}/ticket-categories")
        return [TicketCategory(code=c.code, name=c.name, floor=c.floor, area=c.area,
                               window=c.window)
                for c in _parse(_CATEGORIES, payload, "ticket categories")]

    def take_ticket(self, category_code: str, *, kiosk_id: str, centre_id: str,
                    idempotency_key: str) -> QueueTicket:
        payload = self._call("take ticket", "POST", "/queue-tickets",
                             json={"centre_id": centre_id, "category_code": category_code,
                                   "kiosk_id": kiosk_id},
                             idempotency_key=idempotency_key)
        return _ticket(_parse(_TICKET, payload, "take ticket"))

    def call_staff(self, *, kiosk_id: str, centre_id: str, session_id: str) -> None:
        # One key per call: the interface has none to pass, and a retried call within this
        # method (none today) must still raise a single alarm.
        payload = self._call("call staff", "POST", "/help-requests",
                             json={"kiosk_id": kiosk_id, "centre_id": centre_id,
                                   "session_id": session_id},
                             idempotency_key=new_idempotency_key())
        _parse(_HELP_CREATED, payload, "call staff")

    def find_applications(self, *, id_number: str, document_type: str,
                          session_id: str) -> list[ApplicationSummary]:
        # A read, but a POST: the ID number travels in the body, never in a URL or a log.
        payload = self._call("find applications", "POST", "/applications/search",
                             json={"id_number": id_number, "document_type": document_type,
                                   "session_id": session_id})
        return [ApplicationSummary(a.tracking_number, a.service_name, a.department, a.status,
                                   a.submitted_at, a.updated_at, a.note)
                for a in _parse(_APPLICATIONS, payload, "find applications")]

    # -- plumbing --

    @staticmethod
    def _appointment_path(code: str) -> str:
        if not isinstance(code, str) or not _CODE_RE.fullmatch(code):
            # Not sent at all: a malformed code could reshape the URL.
            raise BackOfficeRejected("appointment code is malformed (1-64 of A-Z a-z 0-9 - _)")
        return f"/appointments/{code}"

    def _call(self, what: str, method: str, path: str, *, json: dict[str, Any] | None = None,
              idempotency_key: str | None = None) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else None
        try:
            response = self._http.request(method, path, json=json, headers=headers)
        except httpx.TimeoutException as exc:
            log.warning("%s: timed out after %ss (%s)", what, self.timeout_s, type(exc).__name__)
            raise BackOfficeUnavailable(
                f"{what}: the back office did not answer within {self.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            log.warning("%s: %s", what, type(exc).__name__)
            raise BackOfficeUnavailable(
                f"{what}: cannot reach the back office at {self.base_url} "
                f"({type(exc).__name__})") from None
        status = response.status_code
        log.debug("%s: HTTP %s", what, status)
        if 200 <= status < 300:
            return self._json(response, what)
        if status >= 500:
            self._raise_server_error(response, what)
        if 400 <= status < 500:
            self._raise_client_error(response, what)
        # 1xx/3xx: the contract has none; a redirect means we are not talking to it.
        raise BackOfficeUnavailable(f"{what}: unexpected HTTP {status} from the back office")

    @staticmethod
    def _json(response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise BackOfficeUnavailable(
                f"{what}: the back office answered HTTP {response.status_code} with a body "
                "that is not JSON") from None

    def _raise_server_error(self, response: httpx.Response, what: str) -> NoReturn:
        error = self._error_code(response)
        log.warning("%s: HTTP %s %s", what, response.status_code, error or "")
        raise BackOfficeUnavailable(
            f"{what}: the back office failed with HTTP {response.status_code}"
            + (f" ({error})" if error else ""))

    def _raise_client_error(self, response: httpx.Response, what: str) -> NoReturn:
        status = response.status_code
        error = self._error_code(response)
        if error is None:
            # A 4xx without the contract's error body is not from our back office (a wrong
            # base URL, a proxy's page): calling it "not found" would mislead the citizen.
            log.warning("%s: HTTP %s without an error body", what, status)
            raise BackOfficeUnavailable(
                f"{what}: HTTP {status} without the back office's error body (wrong address?)")
        log.info("%s: HTTP %s %s", what, status, error)
        detail = f"{what}: HTTP {status} {error}"
        if status == 404 and error == "appointment_not_found":
            raise AppointmentNotFound(detail)
        if status == 409 and error == "already_checked_in":
            raise AppointmentAlreadyUsed(detail)
        if status == 422 and error in NOT_VALID_HERE_REASONS:
            raise AppointmentNotValidHere(error, detail)
        raise BackOfficeRejected(detail)

    @staticmethod
    def _error_code(response: httpx.Response) -> str | None:
        try:
            return _ERROR.validate_python(response.json()).error
        except (ValueError, ValidationError):
            return None
