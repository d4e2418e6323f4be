"""Applications submitted at a kiosk (自助申报): ``POST /api/v1/applications`` and the progress
lookup by either number.

The body is JSON with each material in base64 next to its SHA-256, rather than multipart:
- one document, so the contract's ``Idempotency-Key`` fingerprint, its validation errors and
  its OpenAPI schema cover the whole submission the way they cover every other write;
- the digest lets the server prove it got every byte the kiosk sealed in its outbox, and a
  resend of the same submission fingerprints the same without hashing megabytes twice;
- no extra server dependency (FastAPI's multipart needs python-multipart), and materials are
  photos of a few hundred kB, where base64's third more on the wire costs little on a LAN.

A replay (same key, same body) answers the first 201 again with ``Idempotent-Replayed: true``,
so the kiosk's outbox can resend after a crash or a lost answer without ever making a second
application. A body the server refuses (422, 409) is not stored under the key: the kiosk
quarantines it, and it is never a transient failure.

Include it in the app with ``app.include_router(router)``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, Field
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backoffice import API_PREFIX, models
from backoffice.app import (
    ApiError,
    IdempotencyKey,
    SessionDep,
    Settings,
    SettingsDep,
    _errors,
    _idempotent,
)
from backoffice.schemas import (
    CODE_PATTERN,
    ApiModel,
    ApplicationSearch,
    ApplicationStatus,
    ApplicationSummary,
    CentreId,
    KioskId,
)

MAX_MATERIALS = 20
MAX_MATERIAL_BYTES = 10 * 1024 * 1024
MAX_FORM_BYTES = 64 * 1024
IDEMPOTENCY_SCOPE = "application"
NUMBER_PREFIX = "BJ"  # 办件

router = APIRouter(prefix=API_PREFIX, tags=["applications"])


# --- contract --------------------------------------------------------------------------------

class SubmittedApplicant(ApiModel):
    """Who applies, from the document read at the kiosk. Personal data."""

    document_type: Literal["residentId", "passport", "travelPermit"]
    id_number: str = Field(min_length=5, max_length=64, pattern=r"^[0-9A-Za-z<]+$")
    name: str = Field(min_length=1, max_length=100)


class SignedCommitment(ApiModel):
    """The 告知承诺 the applicant signed: the version of its text, and when."""

    text_version: str = Field(min_length=1, max_length=64)
    signed_at: AwareDatetime


class SubmittedMaterial(ApiModel):
    """One 申请材料: the file in base64 and the SHA-256 of its bytes (lower-case hex)."""

    code: str = Field(pattern=CODE_PATTERN, description="The material's code in the item.")
    media_type: Literal["image/jpeg", "image/png", "application/pdf"]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    content_base64: str = Field(min_length=4, max_length=(MAX_MATERIAL_BYTES * 4) // 3 + 8,
                                description="Standard base64 (RFC 4648 section 4), padded.")


class ApplicationSubmit(ApiModel):
    """A 自助申报 from a kiosk."""

    local_tracking_number: str = Field(
        pattern=CODE_PATTERN, description="The number on the kiosk's receipt; unique.")
    kiosk_id: KioskId
    centre_id: CentreId
    session_id: str = Field(min_length=1, max_length=128)
    service_item_code: str = Field(pattern=CODE_PATTERN, description="事项编码")
    applicant: SubmittedApplicant
    form: dict[str, Any] = Field(default_factory=dict,
                                 description="The item's form as filled in (at most 64 kB).")
    commitment: SignedCommitment
    materials: list[SubmittedMaterial] = Field(default_factory=list, max_length=MAX_MATERIALS)
    deferred_materials: list[Annotated[str, Field(pattern=CODE_PATTERN)]] = Field(
        default_factory=list, max_length=MAX_MATERIALS,
        description="容缺后补: codes of materials the applicant will bring later.")


class ApplicationSubmitted(ApiModel):
    tracking_number: str = Field(description="办件编号")
    local_tracking_number: str
    status: ApplicationStatus
    submitted_at: AwareDatetime


class ApplicationStep(ApiModel):
    """One step of an application's history (办理环节)."""

    at: AwareDatetime
    step: ApplicationStatus = Field(description="The status the application moved to.")
    department: str
    note: str = ""


class ApplicationProgress(ApplicationSummary):
    """One application by either of its numbers; no personal data."""

    local_tracking_number: str | None = None
    history: list[ApplicationStep] = Field(default_factory=list, description="Oldest first.")


class ReadyResult(ApiModel):
    """A result (办理结果) ready for pickup, with the document the kiosk prints."""

    tracking_number: str = Field(description="办件编号")
    service_item_code: str
    service_name: str
    department: str
    result_title: str = Field(description="What the document is, e.g. 户籍证明.")
    ready_at: AwareDatetime
    media_type: Literal["application/pdf"]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    content_base64: str


class CollectionConfirm(ApiModel):
    """自助出件 done: the kiosk printed it for the person it identified. The document is sent
    again so that only its holder can mark an application collected."""

    id_number: str = Field(min_length=5, max_length=64, pattern=r"^[0-9A-Za-z<]+$")
    document_type: str = Field(pattern=r"^(residentId|passport|travelPermit)$")
    kiosk_id: KioskId
    session_id: str = Field(min_length=1, max_length=128)


class CollectionConfirmed(ApiModel):
    tracking_number: str
    status: ApplicationStatus
    collected_at: AwareDatetime


TrackingNumber = Annotated[str, Path(
    pattern=CODE_PATTERN, description="A 办件编号 or the kiosk's local tracking number.")]


# --- logic -----------------------------------------------------------------------------------

def _decode_materials(body: ApplicationSubmit) -> list[tuple[SubmittedMaterial, bytes]]:
    decoded = []
    for position, material in enumerate(body.materials):
        try:
            content = base64.b64decode(material.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(422, "material_not_base64",
                           f"materials[{position}].content_base64 is not base64.") from None
        if not content:
            raise ApiError(422, "material_empty", f"materials[{position}] is empty.")
        if len(content) > MAX_MATERIAL_BYTES:
            raise ApiError(422, "material_too_large",
                           f"materials[{position}] is larger than {MAX_MATERIAL_BYTES} bytes.")
        if hashlib.sha256(content).hexdigest() != material.sha256:
            raise ApiError(422, "material_digest_mismatch",
                           f"materials[{position}] does not match its sha256.")
        decoded.append((material, content))
    return decoded


def _fingerprint_payload(body: ApplicationSubmit) -> dict[str, Any]:
    """What the idempotency fingerprint covers: the whole body, each material by its digest
    (checked against its bytes already)."""
    payload = body.model_dump(mode="json", exclude={"materials"})
    payload["materials"] = [m.model_dump(exclude={"content_base64"}) for m in body.materials]
    return payload


def _next_tracking_number(session: Session, day: dt.date) -> str:
    """``BJ`` + the day + a 6-digit sequence, bumped in the caller's transaction."""
    where = models.ApplicationCounter.day == day
    bump = (update(models.ApplicationCounter).where(where)
            .values(last_seq=models.ApplicationCounter.last_seq + 1)
            .execution_options(synchronize_session=False))
    while True:
        if session.execute(bump).rowcount == 0:  # type: ignore[attr-defined]
            try:
                with session.begin_nested():
                    session.add(models.ApplicationCounter(day=day, last_seq=1))
            except IntegrityError:
                session.execute(bump)  # another transaction created it first
        seq = session.scalar(select(models.ApplicationCounter.last_seq).where(where))
        assert seq is not None
        number = f"{NUMBER_PREFIX}{day:%Y%m%d}{seq:06d}"
        # Seeded or window applications may use the same shape: skip a number already taken.
        if session.get(models.Application, number) is None:
            return number


def _create(session: Session, settings: Settings, body: ApplicationSubmit,
            materials: list[tuple[SubmittedMaterial, bytes]]) -> tuple[int, dict[str, Any]]:
    if session.get(models.Centre, body.centre_id) is None:
        raise ApiError(422, "unknown_centre", "No service centre has this id.")
    item = session.scalar(select(models.ServiceItem).where(
        models.ServiceItem.centre_id == body.centre_id,
        models.ServiceItem.code == body.service_item_code))
    if item is None:
        raise ApiError(422, "unknown_service_item",
                       "This centre offers no service item with this code.")
    form_size = len(json.dumps(body.form, ensure_ascii=False).encode("utf-8"))
    if form_size > MAX_FORM_BYTES:
        raise ApiError(422, "form_too_large", f"The form is larger than {MAX_FORM_BYTES} bytes.")
    taken = session.scalar(select(models.Application.tracking_number).where(
        models.Application.local_tracking_number == body.local_tracking_number))
    if taken is not None:
        raise ApiError(409, "local_tracking_number_taken",
                       "Another submission (under another Idempotency-Key) has this local "
                       "tracking number.")
    now = settings.now()
    application = models.Application(
        tracking_number=_next_tracking_number(session, now.date()),
        centre_id=body.centre_id, service_item_code=item.code, service_name=item.name,
        department=item.department, applicant_document_type=body.applicant.document_type,
        applicant_id_number=body.applicant.id_number.upper(),
        applicant_name=body.applicant.name, status=ApplicationStatus.submitted.value,
        note="", submitted_at=now, updated_at=now,
        local_tracking_number=body.local_tracking_number, kiosk_id=body.kiosk_id,
        session_id=body.session_id, form=body.form,
        commitment_version=body.commitment.text_version,
        commitment_signed_at=body.commitment.signed_at,
        deferred_materials=list(body.deferred_materials),
        materials=[models.ApplicationMaterial(
            position=position, code=material.code, media_type=material.media_type,
            size=len(content), sha256=material.sha256, content=content)
            for position, (material, content) in enumerate(materials)])
    application.history.append(models.ApplicationEvent(
        at=now, step=ApplicationStatus.submitted.value, department=item.department,
        note="自助终端提交"))
    session.add(application)
    session.flush()
    answer = ApplicationSubmitted(tracking_number=application.tracking_number,
                                  local_tracking_number=body.local_tracking_number,
                                  status=ApplicationStatus.submitted, submitted_at=now)
    return 201, answer.model_dump(mode="json")


# --- routes ----------------------------------------------------------------------------------

@router.post(
    "/applications", status_code=201, response_model=ApplicationSubmitted,
    summary="Submit an application (自助申报) with its materials",
    responses=_errors(
        (400, "idempotency_key_required / malformed_idempotency_key"),
        (409, "local_tracking_number_taken (under a different Idempotency-Key)"),
        (422, "invalid_request, unknown_centre, unknown_service_item, material_not_base64, "
              "material_empty, material_too_large, material_digest_mismatch, form_too_large, "
              "idempotency_key_reused"),
        (503, "database_unavailable")))
def submit_application(body: ApplicationSubmit, idempotency_key: IdempotencyKey,
                       session: SessionDep, settings: SettingsDep) -> JSONResponse:
    materials = _decode_materials(body)
    return _idempotent(session, settings, IDEMPOTENCY_SCOPE, idempotency_key,
                       _fingerprint_payload(body),
                       lambda: _create(session, settings, body, materials))


@router.get(
    "/applications/progress/{number}", response_model=ApplicationProgress,
    summary="One application's progress by its 办件编号 or the kiosk's local tracking number",
    responses=_errors((404, "application_not_found")))
def application_progress(number: TrackingNumber, session: SessionDep,
                         settings: SettingsDep) -> ApplicationProgress:
    # Either number is a bearer reference like a parcel number: the answer holds no personal
    # data, and the local numbers carry 50 random bits.
    application = session.scalar(select(models.Application).where(or_(
        models.Application.tracking_number == number,
        models.Application.local_tracking_number == number)).limit(1))
    if application is None:
        raise ApiError(404, "application_not_found", "No application has this number.")
    return progress_of(application, settings)


def progress_of(application: models.Application, settings: Settings) -> ApplicationProgress:
    return ApplicationProgress(
        tracking_number=application.tracking_number,
        local_tracking_number=application.local_tracking_number,
        service_item_code=application.service_item_code,
        service_name=application.service_name, department=application.department,
        status=ApplicationStatus(application.status), note=application.note,
        submitted_at=application.submitted_at.astimezone(settings.tz),
        updated_at=application.updated_at.astimezone(settings.tz),
        history=[ApplicationStep(at=e.at.astimezone(settings.tz), step=ApplicationStatus(e.step),
                                 department=e.department, note=e.note)
                 for e in application.history])


def ensure_result_document(application: models.Application, settings: Settings) -> bytes:
    """The result's PDF, rendered now if staff (or the seed) marked it ready without one."""
    if application.result_content is None:
        from backoffice.staff import render_result_document  # reportlab: loaded only if needed

        application.result_content = render_result_document(application, settings)
        application.result_media_type = "application/pdf"
    return application.result_content


@router.post(
    "/applications/ready-for-pickup", response_model=list[ReadyResult],
    summary="A person's results ready for pickup (自助出件), with their documents",
    responses=_errors((422, "invalid_request")))
def ready_for_pickup(body: ApplicationSearch, session: SessionDep,
                     settings: SettingsDep) -> list[ReadyResult]:
    # POST with the number in the body, like /applications/search: never in a URL or a log.
    rows = list(session.scalars(
        select(models.Application)
        .where(models.Application.applicant_id_number == body.id_number.upper(),
               models.Application.applicant_document_type == body.document_type,
               models.Application.status == ApplicationStatus.ready.value)
        .order_by(models.Application.updated_at, models.Application.tracking_number)))
    answer = []
    for application in rows:
        content = ensure_result_document(application, settings)
        ready_at = application.ready_at or application.updated_at
        answer.append(ReadyResult(
            tracking_number=application.tracking_number,
            service_item_code=application.service_item_code,
            service_name=application.service_name, department=application.department,
            result_title=application.result_title or application.service_name,
            ready_at=ready_at.astimezone(settings.tz), media_type="application/pdf",
            sha256=hashlib.sha256(content).hexdigest(),
            content_base64=base64.b64encode(content).decode("ascii")))
    session.commit()  # keeps documents rendered on the way
    return answer


def _collect(session: Session, settings: Settings, number: str,
             body: CollectionConfirm) -> tuple[int, dict[str, Any]]:
    application = session.get(models.Application, number, with_for_update=True)
    if (application is None
            or application.applicant_id_number != body.id_number.upper()
            or application.applicant_document_type != body.document_type):
        # The same answer for "no such number" and "not yours": a number proves nothing.
        raise ApiError(404, "application_not_found",
                       "No application with this number belongs to this document.")
    if application.status == ApplicationStatus.collected.value:
        raise ApiError(409, "already_collected", "This result has already been collected.")
    if application.status != ApplicationStatus.ready.value:
        raise ApiError(409, "not_ready", "This application's result is not ready for pickup.")
    now = settings.now()
    application.status = ApplicationStatus.collected.value
    application.updated_at = now
    application.collected_at = now
    application.collected_by_kiosk = body.kiosk_id
    application.note = "已在自助终端领取"
    application.history.append(models.ApplicationEvent(
        at=now, step=ApplicationStatus.collected.value, department=application.department,
        note="自助终端出件"))
    session.flush()
    return 200, CollectionConfirmed(tracking_number=number, status=ApplicationStatus.collected,
                                    collected_at=now).model_dump(mode="json")


@router.post(
    "/applications/{number}/collected", response_model=CollectionConfirmed,
    summary="Confirm that a result was printed / handed over (自助出件 done)",
    responses=_errors(
        (400, "idempotency_key_required / malformed_idempotency_key"),
        (404, "application_not_found (no such number, or not this document's)"),
        (409, "not_ready, already_collected (under a different Idempotency-Key)"),
        (422, "invalid_request, idempotency_key_reused")))
def confirm_collected(number: Annotated[str, Path(pattern=CODE_PATTERN, description="办件编号")],
                      body: CollectionConfirm, idempotency_key: IdempotencyKey,
                      session: SessionDep, settings: SettingsDep) -> JSONResponse:
    payload = {"number": number, **body.model_dump(mode="json")}
    return _idempotent(session, settings, "collected", idempotency_key, payload,
                       lambda: _collect(session, settings, number, body))
