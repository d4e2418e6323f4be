"""The kiosk's back-office client: ``flows.ports.BackOffice`` over HTTP with httpx, plus the
application submission the outbox uses.

Everything the server says is parsed defensively: an answer that does not have the contract's
shape is treated like no answer at all (:class:`BadAnswer`, a ``BackOfficeUnavailable``),
because a kiosk must never act on half-understood data. Exception messages and log lines name
the operation, the HTTP status and the server's error code, never the applicant, the
appointment code or a material.

Transport: TLS verified against a configured CA bundle, optionally with the kiosk's own
certificate (mutual TLS). A request that is safe to repeat (a read, or a write carrying an
``Idempotency-Key``) is retried with jittered exponential backoff after a connection failure,
a 5xx or a 429, but only within the call's time budget (``timeout_s`` by default): a citizen
never waits longer than the configured timeout for one call. The outbox does its own, longer
backoff between deliveries on top of this.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import random
import re
import ssl
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from flows.ports import (
    Applicant,
    ApplicationStatus,
    ApplicationStep,
    ApplicationSubmission,
    ApplicationSummary,
    Appointment,
    AppointmentAlreadyUsed,
    AppointmentNotFound,
    AppointmentNotValidHere,
    AppointmentStatus,
    BackOfficeError,
    BackOfficeRejected,
    BackOfficeUnavailable,
    Commitment,
    ItemMaterial,
    Material,
    QueueTicket,
    Rating,
    RatingLevel,
    ReadyResult,
    ServiceCatalogue,
    ServiceItemInfo,
    SubmissionReceipt,
    TicketCategory,
)
from flows.rating import RatingIndicator as SchemeIndicator
from flows.rating import RatingScheme

log = logging.getLogger("kiosk.client")

API_PREFIX = "/api/v1"
USER_AGENT = "zizhu-kiosk/0.1.0"
_CODE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NOT_VALID_HERE_REASONS = frozenset({"wrong_centre", "not_today", "cancelled"})
# 4xx answers to a submission that no resend can change: the outbox sets it aside for staff.
PERMANENT_SUBMISSION_STATUSES = frozenset({400, 409, 413, 415, 422})
# 4xx answers to a batch as a whole that one-at-a-time sending avoids (401, 403, 429 do not).
BATCH_REFUSED_STATUSES = frozenset({400, 404, 405, 413, 415, 422})
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Below this, a retry could not even complete a TCP handshake on a slow link.
_MIN_ATTEMPT_S = 0.05


# --- errors beyond flows.ports ----------------------------------------------------------------

class BadAnswer(BackOfficeUnavailable):
    """The back office answered, but not in the contract's shape (garbage, truncated JSON,
    missing or mistyped fields). Treated like no answer: nothing is acted upon."""

    code = "backoffice_bad_answer"


class TlsFailure(BackOfficeUnavailable):
    """The TLS handshake failed: the server's certificate is not trusted, or the server refused
    the kiosk's certificate. Not retried: only a technician can fix it."""

    code = "backoffice_tls_failure"


class SubmissionRejected(BackOfficeRejected):
    """The back office refused a submission as invalid (400/409/413/415/422 with its error
    body): sending it again cannot succeed, so the outbox quarantines it."""

    code = "application_rejected"

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error


class BatchRefused(BackOfficeRejected):
    """The back office refused a batch as a whole (400/404/405/413/415/422 with its error
    body): an older server without ``/applications:batch``, a batch over its limits, an
    envelope it cannot read. Says nothing about the submissions in it: send them one at a
    time."""

    code = "batch_refused"

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error


class BackOfficeConfigError(ValueError):
    """The client cannot be built from its settings (a CA or certificate file that does not
    load, TLS settings with an http:// URL)."""


@dataclass(frozen=True, repr=False)
class OutgoingSubmission:
    """One submission of a batch, with the numbers the outbox keeps for it."""

    submission: ApplicationSubmission
    local_tracking_number: str
    idempotency_key: str

    def __repr__(self) -> str:
        return f"OutgoingSubmission({self.local_tracking_number})"


BatchOutcome = SubmissionReceipt | SubmissionRejected


def _submission_fields(submission: ApplicationSubmission,
                       local_tracking_number: str) -> dict[str, Any]:
    return {
        "local_tracking_number": local_tracking_number,
        "kiosk_id": submission.kiosk_id,
        "centre_id": submission.centre_id,
        "session_id": submission.session_id,
        "service_item_code": submission.service_item_code,
        "applicant": {"document_type": submission.applicant.document_type,
                      "id_number": submission.applicant.id_number,
                      "name": submission.applicant.name},
        "form": dict(submission.form),
        "commitment": {"text_version": submission.commitment.text_version,
                       "signed_at": submission.commitment.signed_at.isoformat()},
        "deferred_materials": list(submission.deferred_materials),
    }


def submission_body(submission: ApplicationSubmission,
                    local_tracking_number: str) -> dict[str, Any]:
    """The JSON body of ``POST /applications``; materials in base64 with their SHA-256."""
    return _submission_fields(submission, local_tracking_number) | {
        "materials": [{"code": m.code, "media_type": m.media_type,
                       "sha256": sha256(m.content).hexdigest(),
                       "content_base64": base64.b64encode(m.content).decode("ascii")}
                      for m in submission.materials]}


def batch_body(batch: Sequence[OutgoingSubmission]) -> tuple[bytes, str]:
    """The body of ``POST /applications:batch`` and its Content-Type: ``multipart/form-data``
    with the submissions as JSON (each material by code, media type and SHA-256) and every
    material's bytes as a part of its own, in the same order: no base64 on either side."""
    items = []
    files = []
    for i, outgoing in enumerate(batch):
        materials = outgoing.submission.materials
        items.append(_submission_fields(outgoing.submission, outgoing.local_tracking_number) | {
            "idempotency_key": outgoing.idempotency_key,
            "materials": [{"code": m.code, "media_type": m.media_type,
                           "sha256": sha256(m.content).hexdigest()} for m in materials]})
        # Part names say where a part belongs, never what it shows (no personal data).
        files += [("materials", (f"{i}-{j}", m.content, m.media_type))
                  for j, m in enumerate(materials)]
    metadata = json.dumps(items, ensure_ascii=False, separators=(",", ":"))
    # httpx's own multipart encoder, through a request that is never sent: encoded once, so
    # every retry sends the very same bytes.
    encoder = httpx.Request("POST", "http://batch.invalid/", data={"submissions": metadata},
                            files=files)
    return encoder.read(), encoder.headers["Content-Type"]


@dataclass(frozen=True)
class DeviceReport:
    """One device in a heartbeat: HAL state, and the paper level for printers."""

    device_id: str
    state: str  # starting | online | offline | powerOff | noDevice | hardwareError | ...
    device_class: str = ""
    paper: str | None = None  # full | low | out | jammed | unknown


@dataclass(frozen=True)
class HeartbeatReport:
    """What the kiosk tells the back office every interval. No personal data."""

    centre_id: str
    software_version: str
    devices: tuple[DeviceReport, ...] = ()
    outbox_depth: int = 0
    outbox_quarantined: int = 0
    outbox_oldest_age_s: float | None = None
    sent_at: dt.datetime | None = None  # aware

    def body(self) -> dict[str, Any]:
        return {
            "centre_id": self.centre_id, "software_version": self.software_version,
            "sent_at": self.sent_at.isoformat() if self.sent_at is not None else None,
            "devices": [{"device_id": d.device_id, "device_class": d.device_class,
                         "state": d.state, "paper": d.paper} for d in self.devices],
            "outbox": {"depth": self.outbox_depth, "quarantined": self.outbox_quarantined,
                       "oldest_age_s": self.outbox_oldest_age_s}}


# --- transport settings -----------------------------------------------------------------------

@dataclass(frozen=True)
class TlsSettings:
    """How the kiosk checks the back office and proves itself to it.

    ``ca_file``: PEM bundle the server's certificate must chain to (None: the system store).
    ``client_cert``/``client_key``: the kiosk's own certificate for mutual TLS (key may be in
    the cert file).
    """

    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

    def context(self) -> ssl.SSLContext:
        try:
            context = ssl.create_default_context(
                cafile=str(self.ca_file) if self.ca_file is not None else None)
        except (OSError, ssl.SSLError) as exc:
            raise BackOfficeConfigError(
                f"CA file {self.ca_file} cannot be loaded: {_ssl_reason(exc)}") from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.client_cert is not None:
            try:
                context.load_cert_chain(
                    str(self.client_cert),
                    str(self.client_key) if self.client_key is not None else None)
            except (OSError, ssl.SSLError) as exc:
                raise BackOfficeConfigError(
                    f"client certificate {self.client_cert} cannot be loaded: "
                    f"{_ssl_reason(exc)}") from None
        elif self.client_key is not None:
            raise BackOfficeConfigError("a client key without a client certificate")
        return context


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of one call. ``attempts`` counts the first one. Delays are "full jitter":
    uniform in [0, min(max_delay_s, base_delay_s * 2**(n-1))], so many kiosks coming back after
    an outage do not hit the server in step. ``budget_s`` bounds the whole call, attempts and
    delays included (None: the client's ``timeout_s``)."""

    attempts: int = 3
    base_delay_s: float = 0.2
    max_delay_s: float = 1.0
    budget_s: float | None = None

    def delay(self, failed_attempts: int, rng: random.Random) -> float:
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** max(0, failed_attempts - 1))
        return rng.uniform(0.0, ceiling)


NO_RETRY = RetryPolicy(attempts=1)


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


class _ApplicationWire(_Wire):
    tracking_number: str = Field(min_length=1, max_length=64)
    service_name: str
    department: str
    status: ApplicationStatus
    note: str = ""
    submitted_at: AwareDatetime
    updated_at: AwareDatetime


class _StepWire(_Wire):
    at: AwareDatetime
    step: ApplicationStatus
    department: str
    note: str = ""


class _ProgressWire(_ApplicationWire):
    history: list[_StepWire] = []


class _MaterialWire(_Wire):
    code: str = Field(min_length=1, max_length=64)
    name: str
    requirement: str = Field(pattern=r"^(required|optional|deferrable)$")
    paper: str = Field(pattern=r"^(a4|id1|passport)$")
    max_pages: int = Field(ge=1, le=50)
    copies: str = ""
    note: str = ""


class _ItemWire(_Wire):
    code: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    name: str = Field(min_length=1)
    item_type: str
    centre_id: str
    category_code: str
    department: str
    basic_code: str = ""
    legal_basis: list[str] = []
    conditions: list[str] = []
    materials: list[_MaterialWire] = []
    promised_days: int | None = Field(default=None, ge=0)
    statutory_days: int | None = Field(default=None, ge=0)
    fees: str = ""
    co_departments: list[str] = []
    kiosk_services: list[str] = []
    result_name: str = ""


class _CatalogueWire(_Wire):
    version: str = Field(min_length=1, max_length=128)
    items: list[_ItemWire]


class _ReadyWire(_Wire):
    tracking_number: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    service_name: str
    department: str
    result_title: str
    ready_at: AwareDatetime
    media_type: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    content_base64: str


class _CollectedWire(_Wire):
    tracking_number: str
    status: ApplicationStatus
    collected_at: AwareDatetime


class _RatingCreatedWire(_Wire):
    id: int
    created_at: AwareDatetime


class _HeartbeatAckWire(_Wire):
    received_at: AwareDatetime
    stale_after_s: float = 0.0


class _SubmittedWire(_Wire):
    tracking_number: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    local_tracking_number: str = Field(min_length=1, max_length=64)
    status: ApplicationStatus
    submitted_at: AwareDatetime


class _BatchItemWire(_Wire):
    local_tracking_number: str | None = None
    status: int
    replayed: bool = False
    application: _SubmittedWire | None = None
    error: _ErrorWire | None = None


class _BatchWire(_Wire):
    results: list[_BatchItemWire]


_W = TypeVar("_W")


def _parse(adapter: TypeAdapter[_W], payload: Any, what: str) -> _W:
    try:
        return adapter.validate_python(payload)
    except ValidationError as exc:
        # Field locations and error kinds only: the input values may be personal data.
        problems = ", ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['type']}"
            for err in exc.errors(include_input=False, include_url=False, include_context=False)[:5])
        raise BadAnswer(
            f"{what}: the back office's answer does not have the expected shape ({problems})"
        ) from None


_APPOINTMENT = TypeAdapter(_AppointmentWire)
_APPLICATION = TypeAdapter(_ProgressWire)
_CATALOGUE = TypeAdapter(_CatalogueWire)
_ITEM = TypeAdapter(_ItemWire)
_READY = TypeAdapter(list[_ReadyWire])
_COLLECTED = TypeAdapter(_CollectedWire)
_RATING_CREATED = TypeAdapter(_RatingCreatedWire)


class _LevelWire(_Wire):
    level: int = Field(ge=1, le=5)
    name: str


class _IndicatorWire(_Wire):
    code: str
    group: str
    label: str


class _RatingSchemeWire(_Wire):
    standard: str
    levels: list[_LevelWire]
    indicators: list[_IndicatorWire]
    max_comment_chars: int = Field(ge=0)


_RATING_SCHEME = TypeAdapter(_RatingSchemeWire)
_HEARTBEAT_ACK = TypeAdapter(_HeartbeatAckWire)
_APPLICATIONS = TypeAdapter(list[_ApplicationWire])
_TICKET = TypeAdapter(_TicketEnvelopeWire)
_CATEGORIES = TypeAdapter(list[_TicketCategoryWire])
_HEALTH = TypeAdapter(_HealthWire)
_HELP_CREATED = TypeAdapter(_HelpCreatedWire)
_SUBMITTED = TypeAdapter(_SubmittedWire)
_BATCH = TypeAdapter(_BatchWire)
_ERROR = TypeAdapter(_ErrorWire)


def _ticket(wire: _TicketEnvelopeWire) -> QueueTicket:
    t = wire.ticket
    return QueueTicket(number=t.number, service_name=t.service_name, centre_name=t.centre_name,
                       floor=t.floor, area=t.area, window=t.window, issued_at=t.issued_at,
                       waiting_ahead=t.waiting_ahead, appointment_id=t.appointment_id)


def _summary(a: _ApplicationWire) -> ApplicationSummary:
    history = tuple(ApplicationStep(s.at, s.step, s.department, s.note)
                    for s in getattr(a, "history", []))
    return ApplicationSummary(a.tracking_number, a.service_name, a.department, a.status,
                              a.submitted_at, a.updated_at, a.note, history)


def _item(w: _ItemWire) -> ServiceItemInfo:
    return ServiceItemInfo(
        code=w.code, name=w.name, item_type=w.item_type, centre_id=w.centre_id,
        category_code=w.category_code, department=w.department, basic_code=w.basic_code,
        legal_basis=tuple(w.legal_basis), conditions=tuple(w.conditions),
        materials=tuple(ItemMaterial(m.code, m.name, m.requirement, m.paper, m.max_pages,
                                     m.copies, m.note) for m in w.materials),
        promised_days=w.promised_days, statutory_days=w.statutory_days, fees=w.fees,
        co_departments=tuple(w.co_departments), kiosk_services=tuple(w.kiosk_services),
        result_name=w.result_name)


def _ready(w: _ReadyWire) -> ReadyResult:
    try:
        content = base64.b64decode(w.content_base64, validate=True)
    except ValueError:
        raise BadAnswer("ready results: a document is not base64") from None
    if sha256(content).hexdigest() != w.sha256:
        # A damaged certificate must not be printed as if it were the real one.
        raise BadAnswer("ready results: a document does not match its sha256")
    return ReadyResult(w.tracking_number, w.service_name, w.department, w.result_title,
                       w.ready_at, w.media_type, content)


def _receipt(wire: _SubmittedWire, local_tracking_number: str, replayed: bool,
             what: str) -> SubmissionReceipt:
    if wire.local_tracking_number != local_tracking_number:
        # An answer for another submission would pair this citizen with a stranger's 办件编号.
        raise BadAnswer(f"{what}: the answer is for another local tracking number")
    return SubmissionReceipt(tracking_number=wire.tracking_number,
                             local_tracking_number=wire.local_tracking_number,
                             status=wire.status, submitted_at=wire.submitted_at,
                             replayed=replayed)


def _batch_outcomes(wire: _BatchWire, batch: Sequence[OutgoingSubmission],
                    what: str) -> list[BatchOutcome]:
    """Each item's receipt or refusal. All or nothing: one result that does not fit makes the
    whole answer a :class:`BadAnswer`, and the batch is resent under the same keys."""
    if len(wire.results) != len(batch):
        raise BadAnswer(f"{what}: {len(wire.results)} results for {len(batch)} submissions")
    outcomes: list[BatchOutcome] = []
    for position, (result, outgoing) in enumerate(zip(wire.results, batch, strict=True)):
        number = outgoing.local_tracking_number
        if result.local_tracking_number not in (None, number):
            raise BadAnswer(f"{what}: result {position} is for another local tracking number")
        if 200 <= result.status < 300 and result.application is not None:
            outcomes.append(_receipt(result.application, number, result.replayed, what))
        elif result.status in PERMANENT_SUBMISSION_STATUSES and result.error is not None:
            log.info("%s: %s refused: %s %s", what, number, result.status, result.error.error)
            outcomes.append(SubmissionRejected(
                result.status, result.error.error,
                f"{what}: {number}: HTTP {result.status} {result.error.error}"))
        else:
            raise BadAnswer(f"{what}: result {position} is neither a receipt nor a refusal")
    return outcomes


def _ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return str(exc.verify_message)
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind an httpx transport error, if that is what it was."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


class _Transient(Exception):
    """Internal: an attempt failed in a way a repeat may fix; carries what to raise if not."""

    def __init__(self, error: BackOfficeUnavailable | BackOfficeRejected) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class _Request:
    what: str
    method: str
    path: str
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


class HttpBackOffice:
    """``BackOffice`` over HTTP. ``base_url`` is the server's root (``https://host:port``; a
    trailing ``/api/v1`` is accepted too). ``transport`` replaces the network, for tests;
    ``sleep`` and ``rng`` replace the retry pauses and their jitter."""

    def __init__(self, base_url: str, timeout_s: float = 5.0,
                 transport: httpx.BaseTransport | None = None, *,
                 tls: TlsSettings | None = None, retry: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> None:
        root = base_url.rstrip("/")
        if root.endswith(API_PREFIX):
            root = root[: -len(API_PREFIX)]
        if tls is not None and not root.startswith("https://"):
            raise BackOfficeConfigError(f"TLS settings given for a plain http URL ({root})")
        self.base_url = root
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()
        verify: ssl.SSLContext | bool = tls.context() if tls is not None else True
        self._http = httpx.Client(
            base_url=root + API_PREFIX, timeout=httpx.Timeout(timeout_s), transport=transport,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"}, verify=verify,
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
            payload = self._call("health", "GET", "/health", retry=False)
            return _parse(_HEALTH, payload, "health").status == "ok"
        except BackOfficeError as exc:
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
                             body={"kiosk_id": kiosk_id, "centre_id": centre_id},
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
                             body={"centre_id": centre_id, "category_code": category_code,
                                   "kiosk_id": kiosk_id},
                             idempotency_key=idempotency_key)
        return _ticket(_parse(_TICKET, payload, "take ticket"))

    def call_staff(self, *, kiosk_id: str, centre_id: str, session_id: str) -> None:
        # One key per call, reused by this call's retries: one tap raises one alarm.
        payload = self._call("call staff", "POST", "/help-requests",
                             body={"kiosk_id": kiosk_id, "centre_id": centre_id,
                                   "session_id": session_id},
                             idempotency_key=new_idempotency_key())
        _parse(_HELP_CREATED, payload, "call staff")

    def find_applications(self, *, id_number: str, document_type: str,
                          session_id: str) -> list[ApplicationSummary]:
        # A read, but a POST: the ID number travels in the body, never in a URL or a log.
        payload = self._call("find applications", "POST", "/applications/search",
                             body={"id_number": id_number, "document_type": document_type,
                                   "session_id": session_id}, retry=True)
        return [_summary(a) for a in _parse(_APPLICATIONS, payload, "find applications")]

    # -- applications --

    def submit_application(self, submission: ApplicationSubmission, *,
                           local_tracking_number: str,
                           idempotency_key: str) -> SubmissionReceipt:
        """``POST /applications``. Raises :class:`SubmissionRejected` when the server refuses
        it as invalid, ``BackOfficeUnavailable`` (incl. :class:`BadAnswer`) when the outcome is
        unknown and a resend with the same key is the way on."""
        what = "submit application"
        response = self._call_response(
            what, "POST", "/applications",
            body=submission_body(submission, local_tracking_number),
            idempotency_key=idempotency_key, submission=True)
        wire = _parse(_SUBMITTED, self._json(response, what), what)
        return _receipt(wire, local_tracking_number,
                        response.headers.get("Idempotent-Replayed", "").lower() == "true", what)

    def submit_applications(self, batch: Sequence[OutgoingSubmission]) -> list[BatchOutcome]:
        """``POST /applications:batch``: one outcome per submission, in order: its receipt, or
        :class:`SubmissionRejected` when the server refuses that one as invalid. Raises
        ``BackOfficeUnavailable`` (incl. :class:`BadAnswer`) when the outcome is unknown (resend
        the same batch, or any regrouping of it: every item carries its own key), and
        :class:`BatchRefused` when the server will not take the batch at all."""
        what = "submit applications"
        if not batch:
            return []
        response = self._call_response(what, "POST", "/applications:batch",
                                       encoded=batch_body(batch), retry=True, batch=True)
        wire = _parse(_BATCH, self._json(response, what), what)
        return _batch_outcomes(wire, batch, what)

    def application_progress(self, number: str) -> ApplicationSummary:
        """One application by its 办件编号 or by the kiosk's local tracking number."""
        if not isinstance(number, str) or not _CODE_RE.fullmatch(number):
            raise BackOfficeRejected("tracking number is malformed (1-64 of A-Z a-z 0-9 - _)")
        payload = self._call("application progress", "GET", f"/applications/progress/{number}")
        return _summary(_parse(_APPLICATION, payload, "application progress"))

    # -- catalogue --

    def service_catalogue(self, centre_id: str, *,
                          etag: str | None = None) -> ServiceCatalogue | None:
        """The centre's catalogue; None when ``etag`` (a previous ``version``) is still
        current, so the caller keeps its cached copy."""
        headers = {"If-None-Match": f'"{etag}"'} if etag else None
        response = self._call_response("service catalogue", "GET", "/service-items",
                                       params={"centre_id": centre_id}, headers=headers)
        if response.status_code == 304:
            return None
        wire = _parse(_CATALOGUE, self._json(response, "service catalogue"), "service catalogue")
        return ServiceCatalogue(wire.version, tuple(_item(i) for i in wire.items))

    def service_item(self, code: str, *, centre_id: str) -> ServiceItemInfo:
        if not isinstance(code, str) or not _CODE_RE.fullmatch(code):
            raise BackOfficeRejected("service item code is malformed")
        payload = self._call("service item", "GET", f"/service-items/{code}",
                             params={"centre_id": centre_id})
        return _item(_parse(_ITEM, payload, "service item"))

    # -- 自助出件 --

    def ready_results(self, *, id_number: str, document_type: str,
                      session_id: str) -> list[ReadyResult]:
        """The person's results ready for pickup, with their documents (checked against
        their SHA-256). The ID number travels in the body, never in a URL."""
        payload = self._call("ready results", "POST", "/applications/ready-for-pickup",
                             body={"id_number": id_number, "document_type": document_type,
                                   "session_id": session_id}, retry=True)
        return [_ready(w) for w in _parse(_READY, payload, "ready results")]

    def confirm_collected(self, number: str, *, id_number: str, document_type: str,
                          kiosk_id: str, session_id: str,
                          idempotency_key: str) -> dt.datetime:
        """Tell the back office the result was printed; returns when it was recorded. A
        resend with the same key answers the same."""
        if not isinstance(number, str) or not _CODE_RE.fullmatch(number):
            raise BackOfficeRejected("tracking number is malformed (1-64 of A-Z a-z 0-9 - _)")
        payload = self._call("confirm collected", "POST", f"/applications/{number}/collected",
                             body={"id_number": id_number, "document_type": document_type,
                                   "kiosk_id": kiosk_id, "session_id": session_id},
                             idempotency_key=idempotency_key)
        return _parse(_COLLECTED, payload, "confirm collected").collected_at

    # -- 好差评 --

    def rate(self, rating: Rating, *, idempotency_key: str) -> int:
        """Send a 好差评; returns the back office's id of it."""
        body = {"level": int(rating.level), "indicators": list(rating.indicators),
                "comment": rating.comment, "tracking_number": rating.tracking_number,
                "session_id": rating.session_id, "service_item_code": rating.service_item_code,
                "kiosk_id": rating.kiosk_id, "centre_id": rating.centre_id}
        payload = self._call("rating", "POST", "/ratings", body=body,
                             idempotency_key=idempotency_key)
        return _parse(_RATING_CREATED, payload, "rating").id

    def rating_scheme(self) -> RatingScheme:
        """The five levels and the GB/T 39734 indicators the rating screen offers."""
        payload = self._call("rating scheme", "GET", "/ratings/scheme", retry=True)
        wire = _parse(_RATING_SCHEME, payload, "rating scheme")
        return RatingScheme(
            wire.standard, tuple((RatingLevel(w.level), w.name) for w in wire.levels),
            tuple(SchemeIndicator(w.code, w.group, w.label) for w in wire.indicators),
            wire.max_comment_chars)

    # -- heartbeat --

    def heartbeat(self, kiosk_id: str, report: HeartbeatReport) -> dt.datetime:
        """Post one heartbeat; not retried (the next one comes soon). Returns when the
        back office received it."""
        if not isinstance(kiosk_id, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", kiosk_id):
            raise BackOfficeRejected("kiosk id is malformed")
        payload = self._call("heartbeat", "POST", f"/kiosks/{kiosk_id}/heartbeat",
                             body=report.body(), retry=False)
        return _parse(_HEARTBEAT_ACK, payload, "heartbeat").received_at

    # -- plumbing --

    @staticmethod
    def _appointment_path(code: str) -> str:
        if not isinstance(code, str) or not _CODE_RE.fullmatch(code):
            # Not sent at all: a malformed code could reshape the URL.
            raise BackOfficeRejected("appointment code is malformed (1-64 of A-Z a-z 0-9 - _)")
        return f"/appointments/{code}"

    def _call(self, what: str, method: str, path: str, *, body: Any = None,
              idempotency_key: str | None = None, retry: bool | None = None,
              params: Mapping[str, str] | None = None) -> Any:
        response = self._call_response(what, method, path, body=body,
                                       idempotency_key=idempotency_key, retry=retry,
                                       params=params)
        return self._json(response, what)

    def _call_response(self, what: str, method: str, path: str, *, body: Any = None,
                       idempotency_key: str | None = None, retry: bool | None = None,
                       submission: bool = False, params: Mapping[str, str] | None = None,
                       headers: Mapping[str, str] | None = None,
                       encoded: tuple[bytes, str] | None = None,
                       batch: bool = False) -> httpx.Response:
        """``encoded``: a body already encoded, with its Content-Type (instead of ``body``);
        ``submission``/``batch``: the 4xx answers to map to SubmissionRejected/BatchRefused."""
        request = _Request(what, method, path, params=dict(params or {}),
                           headers=dict(headers or {}))
        if encoded is not None:
            request.content, request.headers["Content-Type"] = encoded
        elif body is not None:
            # Encoded once: every retry sends the very same bytes.
            request.content = json.dumps(body, ensure_ascii=False,
                                         separators=(",", ":")).encode("utf-8")
            request.headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            request.headers["Idempotency-Key"] = idempotency_key
        if retry is None:
            retry = method == "GET" or idempotency_key is not None
        policy = self.retry if retry else NO_RETRY
        budget = policy.budget_s if policy.budget_s is not None else self.timeout_s
        deadline = time.monotonic() + budget
        failed = 0
        while True:
            attempt_timeout = min(self.timeout_s, max(deadline - time.monotonic(),
                                                      _MIN_ATTEMPT_S))
            try:
                return self._attempt(request, attempt_timeout, submission, batch)
            except _Transient as transient:
                failed += 1
                if failed >= policy.attempts:
                    raise transient.error from None
                pause = policy.delay(failed, self._rng)
                if time.monotonic() + pause + _MIN_ATTEMPT_S >= deadline:
                    raise transient.error from None
                log.info("%s: attempt %d failed (%s); retrying in %.2f s", what, failed,
                         transient.error.code, pause)
                self._sleep(pause)

    def _attempt(self, request: _Request, timeout_s: float,
                 submission: bool, batch: bool = False) -> httpx.Response:
        what = request.what
        try:
            response = self._http.request(request.method, request.path, content=request.content,
                                          headers=request.headers or None,
                                          params=request.params or None,
                                          timeout=httpx.Timeout(timeout_s))
        except httpx.TimeoutException as exc:
            log.warning("%s: timed out after %.3g s (%s)", what, timeout_s, type(exc).__name__)
            raise _Transient(BackOfficeUnavailable(
                f"{what}: the back office did not answer within {timeout_s:.3g} s")) from None
        except httpx.HTTPError as exc:
            tls_error = _ssl_cause(exc)
            if tls_error is not None:
                reason = _ssl_reason(tls_error)
                log.error("%s: TLS failure: %s", what, reason)
                raise TlsFailure(f"{what}: TLS with the back office at {self.base_url} failed: "
                                 f"{reason}") from None
            log.warning("%s: %s", what, type(exc).__name__)
            raise _Transient(BackOfficeUnavailable(
                f"{what}: cannot reach the back office at {self.base_url} "
                f"({type(exc).__name__})")) from None
        status = response.status_code
        log.debug("%s: HTTP %s", what, status)
        if 200 <= status < 300:
            return response
        if status == 304 and "If-None-Match" in request.headers:
            return response
        if status >= 500:
            self._raise_server_error(response, what)
        if 400 <= status < 500:
            self._raise_client_error(response, what, submission, batch)
        # 1xx/3xx: the contract has none; a redirect means we are not talking to it.
        raise BadAnswer(f"{what}: unexpected HTTP {status} from the back office")

    @staticmethod
    def _json(response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:  # JSONDecodeError and UnicodeDecodeError both
            raise BadAnswer(
                f"{what}: the back office answered HTTP {response.status_code} with a body "
                "that is not JSON") from None

    def _raise_server_error(self, response: httpx.Response, what: str) -> NoReturn:
        error = self._error_code(response)
        log.warning("%s: HTTP %s %s", what, response.status_code, error or "")
        unavailable = BackOfficeUnavailable(
            f"{what}: the back office failed with HTTP {response.status_code}"
            + (f" ({error})" if error else ""))
        if response.status_code in _RETRY_STATUSES:
            raise _Transient(unavailable)
        raise unavailable

    def _raise_client_error(self, response: httpx.Response, what: str,
                            submission: bool, batch: bool = False) -> NoReturn:
        status = response.status_code
        error = self._error_code(response)
        if batch and status == 413:
            # Too large is too large, whoever says it: the back office's body limit answers in
            # plain text, and so does a proxy in front of it. Smaller requests are the way on.
            log.info("%s: HTTP 413", what)
            raise BatchRefused(413, error or "content_too_large", f"{what}: HTTP 413")
        if error is None:
            # A 4xx without the contract's error body is not from our back office (a wrong
            # base URL, a proxy's page): calling it "not found" would mislead the citizen.
            log.warning("%s: HTTP %s without an error body", what, status)
            raise BadAnswer(
                f"{what}: HTTP {status} without the back office's error body (wrong address?)")
        log.info("%s: HTTP %s %s", what, status, error)
        detail = f"{what}: HTTP {status} {error}"
        if batch and status in BATCH_REFUSED_STATUSES:
            raise BatchRefused(status, error, detail)
        if submission and status in PERMANENT_SUBMISSION_STATUSES:
            raise SubmissionRejected(status, error, detail)
        if status == 404 and error == "appointment_not_found":
            raise AppointmentNotFound(detail)
        if status == 409 and error == "already_checked_in":
            raise AppointmentAlreadyUsed(detail)
        if status == 422 and error in NOT_VALID_HERE_REASONS:
            raise AppointmentNotValidHere(error, detail)
        if status in _RETRY_STATUSES:
            raise _Transient(BackOfficeRejected(detail))
        raise BackOfficeRejected(detail)

    @staticmethod
    def _error_code(response: httpx.Response) -> str | None:
        try:
            return _ERROR.validate_python(response.json()).error
        except (ValueError, ValidationError):
            return None


__all__ = [
    "Applicant",
    "ApplicationSubmission",
    "BackOfficeConfigError",
    "BadAnswer",
    "BatchOutcome",
    "BatchRefused",
    "Commitment",
    "DeviceReport",
    "HeartbeatReport",
    "HttpBackOffice",
    "Material",
    "NO_RETRY",
    "OutgoingSubmission",
    "RetryPolicy",
    "SubmissionReceipt",
    "SubmissionRejected",
    "TlsFailure",
    "TlsSettings",
    "batch_body",
    "new_idempotency_key",
    "submission_body",
]
