"""The reference back office's HTTP API (FastAPI), versioned under /api/v1.

Every error answer is ``{"error": "<stable_code>", "message": "<human text>"}``. Writes that the
kiosk may retry (check-in, queue tickets, help requests) take an ``Idempotency-Key`` header: the
first answer is stored and replayed verbatim for the same key, so a retry after a lost answer
never issues a second ticket.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path as FsPath
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, Field
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from backoffice import API_PREFIX, __version__, models
from backoffice.appointment_codes import (
    SigningKey,
    demo_signing_key,
    fields_for_appointment,
    issue_code,
)
from backoffice.db import (
    DEFAULT_DATABASE_URL,
    SessionFactory,
    init_schema,
    make_engine,
    serialise_on,
)
from backoffice.schemas import (
    CODE_PATTERN,
    ID_PATTERN,
    ApiModel,
    ApplicationSearch,
    ApplicationStatus,
    ApplicationSummary,
    Appointment,
    AppointmentStatus,
    Centre,
    CheckInRequest,
    Error,
    Health,
    HelpRequest,
    HelpRequestCreate,
    HelpRequestCreated,
    QueueTicket,
    QueueTicketRequest,
    TicketAnswer,
    TicketCategory,
)
from backoffice.seed import load_seed, read_seed_file

log = logging.getLogger("backoffice")

DEFAULT_TIMEZONE = "Asia/Shanghai"
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{8,128}$"
STAFF_TOKEN_ENV = "ZIZHU_STAFF_TOKEN"

Clock = Callable[[], dt.datetime]


class ApiError(Exception):
    """Raised by a handler to answer with the contract's error body."""

    def __init__(self, status_code: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error = error
        self.message = message


def _error_response(status_code: int, error: str, message: str,
                    headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status_code, content={"error": error, "message": message},
                        headers=headers)


def _errors(*pairs: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": Error, "description": description}
            for status, description in pairs}


class Settings:
    def __init__(self, timezone: str, clock: Clock) -> None:
        self.tz = ZoneInfo(timezone)
        self.clock = clock

    def now(self) -> dt.datetime:
        # Whole seconds: the ticket shows it, and a replay must compare equal to the original.
        return self.clock().astimezone(self.tz).replace(microsecond=0)

    def today(self) -> dt.date:
        return self.now().date()


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- dependencies -----------------------------------------------------------------------------

def get_session(request: Request) -> Iterator[Session]:
    factory: SessionFactory = request.app.state.sessions
    with factory.session() as session:
        yield session


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
AppointmentCode = Annotated[str, Path(
    pattern=CODE_PATTERN, description="Appointment code from the QR: 1-64 of A-Z a-z 0-9 - _.",
    examples=["APT-DEMO-0001"])]
IdempotencyKey = Annotated[str, Header(
    alias="Idempotency-Key", pattern=IDEMPOTENCY_KEY_PATTERN,
    description="8-128 printable ASCII characters, unique per intended write (a UUID). The same "
                "key with the same request replays the stored answer.")]
OptionalIdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", pattern=IDEMPOTENCY_KEY_PATTERN,
    description="Optional: makes a retried request create only one record.")]


# --- idempotency -----------------------------------------------------------------------------

def _fingerprint(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _replay(record: models.IdempotencyRecord, fingerprint: str) -> JSONResponse:
    if record.fingerprint != fingerprint:
        raise ApiError(422, "idempotency_key_reused",
                       "This Idempotency-Key was already used for a different request.")
    return JSONResponse(status_code=record.status_code, content=record.body,
                        headers={"Idempotent-Replayed": "true"})


def _idempotent(session: Session, settings: Settings, scope: str, key: str,
                request_payload: dict[str, Any],
                produce: Callable[[], tuple[int, dict[str, Any]]]) -> JSONResponse:
    """Run ``produce`` at most once per (scope, key); its answer is stored in the same
    transaction as its effects, so either both exist or neither does."""
    fingerprint = _fingerprint(request_payload)
    # Two requests with one key must not both miss the record (PostgreSQL has no SQLite-style
    # database write lock to order them).
    serialise_on(session, f"idempotency:{scope}:{key}")
    record = session.get(models.IdempotencyRecord, (scope, key))
    if record is not None:
        return _replay(record, fingerprint)
    status_code, body = produce()
    session.add(models.IdempotencyRecord(scope=scope, key=key, fingerprint=fingerprint,
                                         status_code=status_code, body=body,
                                         created_at=settings.now()))
    try:
        session.commit()
    except IntegrityError:
        # A concurrent request with the same key won (possible on servers that do not serialise
        # writers the way SQLite does); ours is undone and theirs is the answer.
        session.rollback()
        record = session.get(models.IdempotencyRecord, (scope, key))
        if record is None:
            raise
        return _replay(record, fingerprint)
    return JSONResponse(status_code=status_code, content=body,
                        headers={"Idempotent-Replayed": "false"})


# --- domain helpers --------------------------------------------------------------------------

def _find_appointment(session: Session, ref: str, *, for_update: bool = False,
                      ) -> models.Appointment:
    """The appointment whose code is ``ref`` or, failing that, whose id is: a kiosk that
    verified a signed code checks in by the id the code carries. Seeds never let a code equal
    another appointment's id (backoffice/seed.py), so the two cannot be confused here."""
    for column in (models.Appointment.code, models.Appointment.id):
        query = select(models.Appointment).where(column == ref)
        appt = session.scalar(query.with_for_update() if for_update else query)
        if appt is not None:
            return appt
    raise ApiError(404, "appointment_not_found", "No appointment has this code.")


def _centre_or_404(session: Session, centre_id: str) -> models.Centre:
    centre = session.get(models.Centre, centre_id)
    if centre is None:
        raise ApiError(404, "centre_not_found", "No service centre has this id.")
    return centre


def _category(session: Session, centre_id: str, code: str) -> models.TicketCategory | None:
    return session.scalar(select(models.TicketCategory).where(
        models.TicketCategory.centre_id == centre_id, models.TicketCategory.code == code))


def _next_seq(session: Session, centre_id: str, day: dt.date, category_code: str) -> int:
    """Bump and return the day's counter for the category, inside the caller's transaction."""
    where = (models.TicketCounter.centre_id == centre_id, models.TicketCounter.day == day,
             models.TicketCounter.category_code == category_code)
    bump = (update(models.TicketCounter).where(*where)
            .values(last_seq=models.TicketCounter.last_seq + 1)
            .execution_options(synchronize_session=False))
    if session.execute(bump).rowcount == 0:  # type: ignore[attr-defined]
        try:
            with session.begin_nested():
                session.add(models.TicketCounter(centre_id=centre_id, day=day,
                                                 category_code=category_code, last_seq=1))
            return 1
        except IntegrityError:
            # Another transaction created today's counter first: bump theirs.
            session.execute(bump)
    seq = session.scalar(select(models.TicketCounter.last_seq).where(*where))
    assert seq is not None
    return seq


def _issue_ticket(session: Session, settings: Settings, centre: models.Centre,
                  category: models.TicketCategory, *, service_name: str, kiosk_id: str,
                  appointment_id: str | None) -> QueueTicket:
    now = settings.now()
    day = now.date()
    seq = _next_seq(session, centre.id, day, category.code)
    ticket = models.QueueTicket(
        centre_id=centre.id, category_code=category.code, day=day, seq=seq,
        number=f"{category.code}{seq:03d}", service_name=service_name, kiosk_id=kiosk_id,
        appointment_id=appointment_id, issued_at=now)
    session.add(ticket)
    session.flush()
    waiting_ahead = session.scalar(select(func.count()).select_from(models.QueueTicket).where(
        models.QueueTicket.centre_id == centre.id, models.QueueTicket.day == day,
        models.QueueTicket.category_code == category.code,
        models.QueueTicket.served_at.is_(None), models.QueueTicket.seq < seq)) or 0
    return QueueTicket(number=ticket.number, service_name=service_name, centre_name=centre.name,
                     floor=category.floor, area=category.area, window=category.window,
                     issued_at=now, waiting_ahead=waiting_ahead, appointment_id=appointment_id)


def _appointment_out(session: Session, appt: models.Appointment) -> Appointment:
    centre = session.get(models.Centre, appt.centre_id)
    item = session.scalar(select(models.ServiceItem).where(
        models.ServiceItem.centre_id == appt.centre_id,
        models.ServiceItem.code == appt.service_item_code))
    return Appointment(
        code=appt.code, appointment_id=appt.id, centre_id=appt.centre_id,
        centre_name=centre.name if centre else "", service_item_code=appt.service_item_code,
        service_name=item.name if item else "", date=appt.date, slot_start=appt.slot_start,
        slot_end=appt.slot_end, applicant_name=appt.applicant_name,
        status=AppointmentStatus(appt.status))


def _validation_error(exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    locs = [tuple(str(p).lower() for p in err.get("loc", ())) for err in errors]
    if ("path", "code") in locs:
        return _error_response(422, "malformed_code",
                               "An appointment code is 1 to 64 of A-Z, a-z, 0-9, '-' and '_'.")
    for loc, err in zip(locs, errors, strict=True):
        if loc == ("header", "idempotency-key"):
            if err.get("type") == "missing":
                return _error_response(400, "idempotency_key_required",
                                       "This write needs an Idempotency-Key header.")
            return _error_response(400, "malformed_idempotency_key",
                                   "Idempotency-Key must be 8 to 128 printable ASCII characters.")
    # Locations and messages only: the input may hold personal data and must not be echoed.
    summary = "; ".join(f"{'.'.join(loc)}: {err.get('msg', 'invalid')}"
                        for loc, err in zip(locs, errors, strict=True))
    return _error_response(422, "invalid_request", summary or "The request is not valid.")


class SignedCode(ApiModel):
    """A signed QR appointment code (docs/appointment-code.md) for the booking confirmation."""

    qr_text: str = Field(description="The text to put in the QR code: ZZ1: + base45.",
                         examples=["ZZ1:Y56IB0/50:O00$CX1E0..."])
    key_id: str = Field(description="The key it is signed with; kiosks list its public key.")
    expires_at: AwareDatetime = Field(description="After this no kiosk accepts it.")


def _document_unparseable_bodies(app: FastAPI) -> None:
    """Every operation with a body can answer 400 (a body that is not JSON, a malformed
    Idempotency-Key): say so in the published document, so clients and schemathesis expect it."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        for path_item in document.get("paths", {}).values():
            for operation in path_item.values():
                if "requestBody" in operation and "400" not in operation["responses"]:
                    operation["responses"]["400"] = {
                        "description": "The body is not JSON, or a header is malformed.",
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/Error"}}}}
        return document

    app.openapi = openapi  # type: ignore[method-assign]


# --- the application -------------------------------------------------------------------------

def create_app(database_url: str = DEFAULT_DATABASE_URL, *, timezone: str = DEFAULT_TIMEZONE,
               seed: dict[str, Any] | str | FsPath | None = None, reset: bool = False,
               clock: Clock | None = None, signing_key: SigningKey | None = None,
               staff_token: str | None = None,
               heartbeat_stale_after_s: float = 180.0) -> FastAPI:
    """Build the back office on ``database_url``: creates the schema (dropping it first when
    ``reset``) and loads ``seed`` (a seed dict or a JSON file path) if given.

    ``timezone`` is where "today" is decided (appointment day, ticket numbering); ``clock``
    returns the current aware datetime and exists for tests. ``signing_key`` signs the
    appointment codes it issues; without one it signs with the published demo key.

    ``staff_token`` (or the ZIZHU_STAFF_TOKEN environment variable) gates the /staff pages;
    without one they are open and say so. A kiosk whose last heartbeat is older than
    ``heartbeat_stale_after_s`` is flagged stale.
    """
    settings = Settings(timezone, clock or _utc_now)
    engine = make_engine(database_url)
    init_schema(engine, reset=reset)
    sessions = SessionFactory(engine)
    if seed is not None:
        data = seed if isinstance(seed, dict) else read_seed_file(seed)
        with sessions.session() as session:
            result = load_seed(session, data, settings.today())
        log.info("seed loaded: %s", result.inserted)

    app = FastAPI(
        title="Zizhu reference back office",
        version=__version__,
        description=(
            "The back-office API the Zizhu self-service kiosk (自助终端) speaks: appointment "
            "check-in (预约签到), queue tickets (取号), help requests (呼叫帮办), the service "
            "catalogue (办事指南), applications (自助申报, 办件查询, 自助出件), ratings (好差评) "
            "and kiosk heartbeats. Errors are `{\"error\": code, \"message\": text}`; writes take an "
            "`Idempotency-Key` header and replay their stored answer for the same key."),
        openapi_tags=[
            {"name": "health", "description": "Liveness."},
            {"name": "appointments", "description": "预约: look up and check in."},
            {"name": "queue", "description": "排队取号: ticket categories and tickets."},
            {"name": "help", "description": "呼叫帮办: a citizen asks for staff."},
            {"name": "catalogue", "description": "Centres and service items (事项)."},
            {"name": "applications",
             "description": "办件: submit, progress, results ready for pickup, collection."},
            {"name": "ratings", "description": "好差评 per GB/T 39734-2020."},
            {"name": "kiosks", "description": "Kiosk heartbeats and their state for staff."},
        ],
    )
    app.state.settings = settings
    app.state.sessions = sessions
    app.state.signing_key = signing_key or demo_signing_key()
    app.state.engine = engine

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc.status_code, exc.error, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code,
                                                                  f"http_{exc.status_code}")
        return _error_response(exc.status_code, error, str(exc.detail),
                               headers=getattr(exc, "headers", None))

    @app.exception_handler(SQLAlchemyError)
    async def _db_error(_request: Request, exc: SQLAlchemyError) -> JSONResponse:
        log.error("database error: %s", type(exc).__name__, exc_info=exc)
        return _error_response(503, "database_unavailable", "The database did not answer.")

    @app.exception_handler(Exception)
    async def _crash(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
        return _error_response(500, "internal_error", "The back office failed; see its log.")

    @app.get(f"{API_PREFIX}/health", tags=["health"], response_model=Health,
             summary="Is the back office up", responses=_errors((503, "Database down.")))
    def health(session: SessionDep) -> Health:
        session.execute(text("SELECT 1"))
        return Health(status="ok", version=__version__)

    @app.get(f"{API_PREFIX}/appointments/{{code}}", tags=["appointments"],
             response_model=Appointment, summary="Look up an appointment by its QR code",
             responses=_errors((404, "appointment_not_found"), (422, "malformed_code")))
    def get_appointment(code: AppointmentCode, session: SessionDep) -> Appointment:
        return _appointment_out(session, _find_appointment(session, code))

    @app.get(f"{API_PREFIX}/appointments/{{code}}/signed-code", tags=["appointments"],
             response_model=SignedCode,
             summary="The signed QR code of an appointment, as the booking system sends it",
             responses=_errors((404, "appointment_not_found"), (422, "cancelled, malformed_code")))
    def signed_code(code: AppointmentCode, session: SessionDep,
                    settings: SettingsDep) -> SignedCode:
        appt = _find_appointment(session, code)
        if appt.status == AppointmentStatus.cancelled:
            raise ApiError(422, "cancelled", "This appointment was cancelled.")
        key: SigningKey = app.state.signing_key
        fields = fields_for_appointment(session, appt, settings.tz)
        return SignedCode(qr_text=issue_code(fields, key), key_id=key.key_id,
                          expires_at=fields.expires_at)

    @app.post(f"{API_PREFIX}/appointments/{{code}}/check-in", tags=["appointments"],
              response_model=TicketAnswer,
              summary="Check in and get a queue ticket (by the code, or by the appointment id "
                      "a verified signed code carries)",
              responses=_errors(
                  (400, "idempotency_key_required / malformed_idempotency_key"),
                  (404, "appointment_not_found"),
                  (409, "already_checked_in (under a different Idempotency-Key)"),
                  (422, "wrong_centre, not_today, cancelled, malformed_code, "
                        "idempotency_key_reused, invalid_request")))
    def check_in(code: AppointmentCode, body: CheckInRequest, idempotency_key: IdempotencyKey,
                 session: SessionDep, settings: SettingsDep) -> JSONResponse:
        def produce() -> tuple[int, dict[str, Any]]:
            appt = _find_appointment(session, code, for_update=True)
            if appt.status == AppointmentStatus.cancelled:
                raise ApiError(422, "cancelled", "This appointment was cancelled.")
            if appt.status == AppointmentStatus.checked_in:
                raise ApiError(409, "already_checked_in",
                               "This appointment has already been checked in.")
            if appt.centre_id != body.centre_id:
                raise ApiError(422, "wrong_centre",
                               "This appointment is for another service centre.")
            if appt.date != settings.today():
                raise ApiError(422, "not_today", "This appointment is not for today.")
            centre = _centre_or_404(session, appt.centre_id)
            item = session.scalar(select(models.ServiceItem).where(
                models.ServiceItem.centre_id == appt.centre_id,
                models.ServiceItem.code == appt.service_item_code))
            category = item and _category(session, appt.centre_id, item.category_code)
            if item is None or category is None:
                raise ApiError(500, "catalogue_inconsistent",
                               "The appointment's service item has no ticket category.")
            ticket = _issue_ticket(session, settings, centre, category, service_name=item.name,
                                   kiosk_id=body.kiosk_id, appointment_id=appt.id)
            appt.status = AppointmentStatus.checked_in.value
            appt.checkin_idempotency_key = idempotency_key
            appt.checked_in_at = ticket.issued_at
            return 200, TicketAnswer(ticket=ticket).model_dump(mode="json")

        return _idempotent(session, settings, "check-in", idempotency_key,
                           {"code": code, **body.model_dump()}, produce)

    @app.get(f"{API_PREFIX}/centres", tags=["catalogue"], response_model=list[Centre],
             summary="List service centres")
    def list_centres(session: SessionDep) -> list[Centre]:
        return [Centre(id=c.id, name=c.name, address=c.address)
                for c in session.scalars(select(models.Centre).order_by(models.Centre.id))]

    @app.get(f"{API_PREFIX}/centres/{{centre_id}}/ticket-categories", tags=["queue"],
             response_model=list[TicketCategory], summary="Queues of a centre",
             responses=_errors((404, "centre_not_found")))
    def ticket_categories(centre_id: Annotated[str, Path(pattern=ID_PATTERN)],
                          session: SessionDep) -> list[TicketCategory]:
        _centre_or_404(session, centre_id)
        rows = session.scalars(select(models.TicketCategory)
                               .where(models.TicketCategory.centre_id == centre_id)
                               .order_by(models.TicketCategory.code))
        return [TicketCategory(code=c.code, name=c.name, floor=c.floor, area=c.area,
                                  window=c.window) for c in rows]

    @app.post(f"{API_PREFIX}/queue-tickets", tags=["queue"], status_code=201,
              response_model=TicketAnswer, summary="Take a number without appointment",
              responses=_errors(
                  (400, "idempotency_key_required / malformed_idempotency_key"),
                  (404, "centre_not_found, category_not_found"),
                  (422, "idempotency_key_reused, invalid_request")))
    def take_ticket(body: QueueTicketRequest, idempotency_key: IdempotencyKey,
                    session: SessionDep, settings: SettingsDep) -> JSONResponse:
        def produce() -> tuple[int, dict[str, Any]]:
            centre = _centre_or_404(session, body.centre_id)
            category = _category(session, centre.id, body.category_code)
            if category is None:
                raise ApiError(404, "category_not_found", "This centre has no such ticket category.")
            ticket = _issue_ticket(session, settings, centre, category,
                                   service_name=category.name, kiosk_id=body.kiosk_id,
                                   appointment_id=None)
            return 201, TicketAnswer(ticket=ticket).model_dump(mode="json")

        return _idempotent(session, settings, "queue-ticket", idempotency_key,
                           body.model_dump(), produce)

    @app.post(f"{API_PREFIX}/help-requests", tags=["help"], status_code=201,
              response_model=HelpRequestCreated, summary="A citizen asks for staff (呼叫帮办)",
              responses=_errors((404, "centre_not_found"), (422, "invalid_request")))
    def create_help_request(body: HelpRequestCreate, session: SessionDep, settings: SettingsDep,
                            idempotency_key: OptionalIdempotencyKey = None) -> JSONResponse:
        def produce() -> tuple[int, dict[str, Any]]:
            _centre_or_404(session, body.centre_id)
            row = models.HelpRequest(centre_id=body.centre_id, kiosk_id=body.kiosk_id,
                                     session_id=body.session_id, status="open",
                                     created_at=settings.now())
            session.add(row)
            session.flush()
            created = HelpRequestCreated(id=row.id, created_at=row.created_at.astimezone(settings.tz))
            return 201, created.model_dump(mode="json")

        if idempotency_key is None:
            status_code, payload = produce()
            session.commit()
            return JSONResponse(status_code=status_code, content=payload)
        return _idempotent(session, settings, "help-request", idempotency_key,
                           body.model_dump(), produce)

    @app.get(f"{API_PREFIX}/help-requests", tags=["help"], response_model=list[HelpRequest],
             summary="Open help requests", responses=_errors((404, "centre_not_found")))
    def list_help_requests(session: SessionDep, settings: SettingsDep,
                           centre_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
                           ) -> list[HelpRequest]:
        query = select(models.HelpRequest).where(models.HelpRequest.status == "open")
        if centre_id is not None:
            _centre_or_404(session, centre_id)
            query = query.where(models.HelpRequest.centre_id == centre_id)
        return [HelpRequest(id=r.id, kiosk_id=r.kiosk_id, centre_id=r.centre_id,
                               session_id=r.session_id, status=r.status,
                               created_at=r.created_at.astimezone(settings.tz))
                for r in session.scalars(query.order_by(models.HelpRequest.id))]

    @app.post(f"{API_PREFIX}/applications/search", tags=["applications"],
              response_model=list[ApplicationSummary],
              summary="A person's applications (办件查询), newest first",
              responses=_errors((422, "invalid_request")))
    def search_applications(body: ApplicationSearch, session: SessionDep,
                            settings: SettingsDep) -> list[ApplicationSummary]:
        # POST with the number in the body: an ID number must not end up in access logs.
        query = (select(models.Application)
                 .where(models.Application.applicant_id_number == body.id_number.upper(),
                        models.Application.applicant_document_type == body.document_type)
                 .order_by(models.Application.submitted_at.desc(),
                           models.Application.tracking_number))
        return [ApplicationSummary(
                    tracking_number=a.tracking_number, service_item_code=a.service_item_code,
                    service_name=a.service_name, department=a.department,
                    status=ApplicationStatus(a.status), note=a.note,
                    submitted_at=a.submitted_at.astimezone(settings.tz),
                    updated_at=a.updated_at.astimezone(settings.tz))
                for a in session.scalars(query)]

    # Imported here: submissions uses this module's idempotency and error helpers.
    from backoffice.catalogue import router as catalogue_router
    from backoffice.heartbeat import router as heartbeat_router
    from backoffice.ratings import router as ratings_router
    from backoffice.staff import StaffConfig
    from backoffice.staff import router as staff_router
    from backoffice.submissions import router as submissions_router

    app.include_router(catalogue_router)
    app.include_router(submissions_router)
    app.include_router(ratings_router)
    app.include_router(heartbeat_router)
    app.include_router(staff_router)
    _document_unparseable_bodies(app)
    app.state.staff = StaffConfig(staff_token or os.environ.get(STAFF_TOKEN_ENV) or None)
    app.state.heartbeat_stale_after_s = heartbeat_stale_after_s
    return app
