"""Applications submitted at a kiosk (自助申报): ``POST /api/v1/applications`` (one, JSON),
``POST /api/v1/applications:batch`` (several, multipart with the materials as raw bytes) and the
progress lookup by either number.

The single endpoint's body is JSON with each material in base64 next to its SHA-256:
- one document, so the contract's ``Idempotency-Key`` fingerprint, its validation errors and
  its OpenAPI schema cover the whole submission the way they cover every other write;
- the digest lets the server prove it got every byte the kiosk sealed in its outbox, and a
  resend of the same submission fingerprints the same without hashing megabytes twice.

The batch endpoint is what the kiosk's outbox drains through after an outage. Measured with
bench/outbox.py, one request per submission spent most of the server's CPU on per-request HTTP
work, base64 and a commit each (11.5 ms per 200 kB submission; 5.7 ms in batches of 8), so a
batch is ``multipart/form-data`` with the bytes as they are: one ``submissions`` part, a JSON
array of up to :data:`MAX_BATCH_ITEMS` submissions, each with its own ``idempotency_key`` and
its materials described by code, media type and SHA-256, followed by one ``materials`` file
part per material, in the order the array names them. Items are taken in order, each in a
savepoint of one transaction: an item the server refuses is answered with the status and error
it would have had alone (422, 409) while the others are stored; one commit for the batch. The
answer lists one result per item, in order. An item's fingerprint is the one its JSON twin would
have, so a submission sent once alone and once in a batch is a replay, not a conflict.

A replay (same key, same submission) answers the first 201 again (``Idempotent-Replayed: true``
alone, ``"replayed": true`` in a batch), so the kiosk's outbox can resend after a crash or a
lost answer without ever making a second application. A submission the server refuses (422,
409) is not stored under its key: the kiosk quarantines it, and it is never a transient failure.

Include it in the app with ``app.include_router(router)``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Path, UploadFile
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, Field, TypeAdapter, ValidationError
from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backoffice import API_PREFIX, models
from backoffice.app import (
    IDEMPOTENCY_KEY_PATTERN,
    ApiError,
    IdempotencyKey,
    SessionDep,
    Settings,
    SettingsDep,
    _errors,
    _fingerprint,
    _idempotent,
)
from backoffice.db import serialise_on
from backoffice.schemas import (
    CODE_PATTERN,
    ApiModel,
    ApplicationSearch,
    ApplicationStatus,
    ApplicationSummary,
    CentreId,
    Error,
    KioskId,
)

MAX_MATERIALS = 20
MAX_MATERIAL_BYTES = 10 * 1024 * 1024
MAX_FORM_BYTES = 64 * 1024
MAX_BATCH_ITEMS = 32
# The ``submissions`` part: every item's form may be 64 kB.
MAX_BATCH_METADATA_BYTES = MAX_BATCH_ITEMS * (MAX_FORM_BYTES + 16 * 1024)
MAX_BATCH_BYTES = 64 * 1024 * 1024
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


class MaterialDigest(ApiModel):
    """One 申请材料 as a batch names it: its bytes are the next ``materials`` part."""

    code: str = Field(pattern=CODE_PATTERN, description="The material's code in the item.")
    media_type: Literal["image/jpeg", "image/png", "application/pdf"]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$",
                        description="SHA-256 of the material's bytes, lower-case hex.")


class SubmittedMaterial(MaterialDigest):
    """One 申请材料: the file in base64 and the SHA-256 of its bytes (lower-case hex)."""

    content_base64: str = Field(min_length=4, max_length=(MAX_MATERIAL_BYTES * 4) // 3 + 8,
                                description="Standard base64 (RFC 4648 section 4), padded.")


class _ApplicationFields(ApiModel):
    """What a 自助申报 carries besides its materials."""

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
    deferred_materials: list[Annotated[str, Field(pattern=CODE_PATTERN)]] = Field(
        default_factory=list, max_length=MAX_MATERIALS,
        description="容缺后补: codes of materials the applicant will bring later.")


class ApplicationSubmit(_ApplicationFields):
    """A 自助申报 from a kiosk."""

    materials: list[SubmittedMaterial] = Field(default_factory=list, max_length=MAX_MATERIALS)


class BatchedApplication(_ApplicationFields):
    """One 自助申报 of a batch: the fields of ``ApplicationSubmit``, its own Idempotency-Key,
    and its materials by digest (their bytes are ``materials`` parts)."""

    idempotency_key: str = Field(pattern=IDEMPOTENCY_KEY_PATTERN,
                                 description="What the Idempotency-Key header is to a single "
                                             "submission: unique per submission, resent as is.")
    materials: list[MaterialDigest] = Field(default_factory=list, max_length=MAX_MATERIALS)


class ApplicationSubmitted(ApiModel):
    tracking_number: str = Field(description="办件编号")
    local_tracking_number: str
    status: ApplicationStatus
    submitted_at: AwareDatetime


class BatchItemResult(ApiModel):
    """What became of one item of a batch: the answer it would have had alone."""

    local_tracking_number: str | None = Field(
        description="The item's local tracking number, when it had a readable one.")
    status: int = Field(description="201 stored (or replayed), 409 or 422 refused.")
    replayed: bool = Field(default=False,
                           description="Answered from the item's idempotency record.")
    application: ApplicationSubmitted | None = Field(
        default=None, description="The acknowledgement, when the status is 201.")
    error: Error | None = Field(default=None, description="Why it was refused, otherwise.")


class BatchAnswer(ApiModel):
    results: list[BatchItemResult] = Field(description="One per submitted item, in order.")


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

Materials = list[tuple[MaterialDigest, bytes]]


def _check_material(position: int, material: MaterialDigest, content: bytes) -> None:
    if not content:
        raise ApiError(422, "material_empty", f"materials[{position}] is empty.")
    if len(content) > MAX_MATERIAL_BYTES:
        raise ApiError(422, "material_too_large",
                       f"materials[{position}] is larger than {MAX_MATERIAL_BYTES} bytes.")
    if hashlib.sha256(content).hexdigest() != material.sha256:
        raise ApiError(422, "material_digest_mismatch",
                       f"materials[{position}] does not match its sha256.")


def _decode_materials(body: ApplicationSubmit) -> Materials:
    decoded: Materials = []
    for position, material in enumerate(body.materials):
        try:
            content = base64.b64decode(material.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(422, "material_not_base64",
                           f"materials[{position}].content_base64 is not base64.") from None
        _check_material(position, material, content)
        decoded.append((material, content))
    return decoded


def _fingerprint_payload(body: _ApplicationFields,
                         materials: Sequence[MaterialDigest]) -> dict[str, Any]:
    """What the idempotency fingerprint covers: the whole submission, each material by its
    digest (checked against its bytes already). The same for a submission sent alone and in a
    batch."""
    payload = body.model_dump(mode="json", exclude={"materials", "idempotency_key"})
    payload["materials"] = [{"code": m.code, "media_type": m.media_type, "sha256": m.sha256}
                            for m in materials]
    return payload


def _next_tracking_number(session: Session, day: dt.date) -> str:
    """``BJ`` + the day + a 6-digit sequence, bumped in the caller's transaction."""
    bump = (update(models.ApplicationCounter).where(models.ApplicationCounter.day == day)
            .values(last_seq=models.ApplicationCounter.last_seq + 1)
            .returning(models.ApplicationCounter.last_seq)
            .execution_options(synchronize_session=False))
    while True:
        seq = session.scalar(bump)
        if seq is None:
            try:
                with session.begin_nested():
                    session.add(models.ApplicationCounter(day=day, last_seq=1))
                seq = 1
            except IntegrityError:
                seq = session.scalar(bump)  # another transaction created it first
        assert seq is not None
        number = f"{NUMBER_PREFIX}{day:%Y%m%d}{seq:06d}"
        # Seeded or window applications may use the same shape: skip a number already taken.
        if session.get(models.Application, number) is None:
            return number


@dataclass(frozen=True)
class _Item:
    code: str
    name: str
    department: str


def _service_item(session: Session, centre_id: str, code: str) -> _Item | None:
    """The centre's item, looked up once per request: a batch names the same few again and
    again. Plain values, not the ORM object, which a refused item's rollback may expire."""
    cache: dict[tuple[str, str], _Item | None] = session.info.setdefault("service_items", {})
    if (centre_id, code) not in cache:
        item = session.scalar(select(models.ServiceItem).where(
            models.ServiceItem.centre_id == centre_id, models.ServiceItem.code == code))
        cache[centre_id, code] = (_Item(item.code, item.name, item.department)
                                  if item is not None else None)
    return cache[centre_id, code]


def _create(session: Session, settings: Settings, body: _ApplicationFields,
            materials: Materials) -> tuple[int, dict[str, Any]]:
    if session.get(models.Centre, body.centre_id) is None:
        raise ApiError(422, "unknown_centre", "No service centre has this id.")
    item = _service_item(session, body.centre_id, body.service_item_code)
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
    number = _next_tracking_number(session, now.date())
    # Bulk INSERTs of parameter lists rather than the unit of work: the rows are not used again
    # in this request, and the ORM's per-object flush was most of a submission's cost.
    session.execute(insert(models.Application), [{
        "tracking_number": number,
        "centre_id": body.centre_id, "service_item_code": item.code, "service_name": item.name,
        "department": item.department, "applicant_document_type": body.applicant.document_type,
        "applicant_id_number": body.applicant.id_number.upper(),
        "applicant_name": body.applicant.name, "status": ApplicationStatus.submitted.value,
        "note": "", "submitted_at": now, "updated_at": now,
        "local_tracking_number": body.local_tracking_number, "kiosk_id": body.kiosk_id,
        "session_id": body.session_id, "form": body.form,
        "commitment_version": body.commitment.text_version,
        "commitment_signed_at": body.commitment.signed_at,
        "deferred_materials": list(body.deferred_materials)}])
    if materials:
        session.execute(insert(models.ApplicationMaterial), [
            {"tracking_number": number, "position": position, "code": material.code,
             "media_type": material.media_type, "size": len(content), "sha256": material.sha256,
             "content": content}
            for position, (material, content) in enumerate(materials)])
    session.execute(insert(models.ApplicationEvent), [{
        "tracking_number": number, "at": now, "step": ApplicationStatus.submitted.value,
        "department": item.department, "note": "自助终端提交"}])
    answer = ApplicationSubmitted(tracking_number=number,
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
                       _fingerprint_payload(body, body.materials),
                       lambda: _create(session, settings, body, materials))


# --- batches ---------------------------------------------------------------------------------

_BATCH_ITEM = TypeAdapter(BatchedApplication)


def _inline_schema(adapter: TypeAdapter[Any]) -> dict[str, Any]:
    """``adapter``'s JSON Schema with its ``$defs`` written in place: a schema inside a form
    field's ``contentSchema`` cannot point into ``#/$defs`` (that is the OpenAPI document's
    root), and these models do not refer to themselves."""
    schema = adapter.json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    return resolve(schema)


_SUBMISSIONS_SCHEMA = _inline_schema(TypeAdapter(Annotated[
    list[BatchedApplication], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]))


def _batch_items(text: str, parts: int) -> list[tuple[Any, slice]]:
    """The ``submissions`` array, each item with the slice of ``materials`` parts it owns. Only
    the envelope is checked here: a malformed item is that item's 422, not the batch's."""
    try:
        items = json.loads(text)
    except ValueError:
        raise ApiError(422, "invalid_batch", "submissions is not JSON.") from None
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH_ITEMS:
        raise ApiError(422, "invalid_batch",
                       f"submissions is not an array of 1 to {MAX_BATCH_ITEMS} submissions.")
    owned = []
    start = 0
    for index, item in enumerate(items):
        materials = item.get("materials", []) if isinstance(item, dict) else None
        if not isinstance(materials, list) or len(materials) > MAX_MATERIALS:
            # Without its count the parts of every later item would be misassigned.
            raise ApiError(422, "invalid_batch",
                           f"submissions[{index}].materials is not an array of at most "
                           f"{MAX_MATERIALS}.")
        owned.append((item, slice(start, start + len(materials))))
        start += len(materials)
    if start != parts:
        raise ApiError(422, "material_parts_mismatch",
                       f"submissions name {start} materials; the request has {parts} parts.")
    return owned


def _invalid_item(exc: ValidationError) -> ApiError:
    # Locations only: the values are personal data.
    where = ", ".join(".".join(str(p) for p in err["loc"]) or "(item)"
                      for err in exc.errors(include_input=False, include_url=False,
                                            include_context=False)[:5])
    return ApiError(422, "invalid_request", f"Invalid fields: {where}.")


def _read_part(upload: UploadFile) -> bytes:
    # One byte past the limit is enough to know it is too large, without reading it all.
    return upload.file.read(MAX_MATERIAL_BYTES + 1)


def _store_item(session: Session, settings: Settings, item: BatchedApplication,
                materials: Materials) -> tuple[int, dict[str, Any], bool]:
    """``_idempotent`` for one item, inside the batch's transaction: a replay answers the stored
    record; a new item is created and its record written, both undone together if it fails."""
    fingerprint = _fingerprint(_fingerprint_payload(item, [m for m, _ in materials]))
    serialise_on(session, f"idempotency:{IDEMPOTENCY_SCOPE}:{item.idempotency_key}")
    record = session.get(models.IdempotencyRecord, (IDEMPOTENCY_SCOPE, item.idempotency_key))
    if record is not None:
        if record.fingerprint != fingerprint:
            raise ApiError(422, "idempotency_key_reused",
                           "This Idempotency-Key was already used for a different request.")
        return record.status_code, record.body, True
    with session.begin_nested():
        status_code, body = _create(session, settings, item, materials)
        session.execute(insert(models.IdempotencyRecord), [{
            "scope": IDEMPOTENCY_SCOPE, "key": item.idempotency_key, "fingerprint": fingerprint,
            "status_code": status_code, "body": body, "created_at": settings.now()}])
    return status_code, body, False


def _batch_item(session: Session, settings: Settings, raw: Any,
                parts: Sequence[UploadFile]) -> BatchItemResult:
    number = raw.get("local_tracking_number") if isinstance(raw, dict) else None
    echo = number if isinstance(number, str) and len(number) <= 64 else None
    try:
        try:
            item = _BATCH_ITEM.validate_python(raw)
        except ValidationError as exc:
            raise _invalid_item(exc) from None
        materials: Materials = []
        for position, (material, part) in enumerate(zip(item.materials, parts, strict=True)):
            content = _read_part(part)
            _check_material(position, material, content)
            materials.append((material, content))
        status_code, body, replayed = _store_item(session, settings, item, materials)
    except ApiError as exc:
        return BatchItemResult(local_tracking_number=echo, status=exc.status_code,
                               error=Error(error=exc.error, message=exc.message))
    return BatchItemResult(local_tracking_number=echo, status=status_code, replayed=replayed,
                           application=ApplicationSubmitted.model_validate(body))


@router.post(
    "/applications:batch", response_model=BatchAnswer,
    summary="Submit several applications (自助申报) at once, materials as raw bytes",
    description=(
        "`multipart/form-data`: a `submissions` part holding a JSON array of up to "
        f"{MAX_BATCH_ITEMS} submissions (the fields of `POST /applications` plus "
        "`idempotency_key`, each material as `{code, media_type, sha256}`), then one "
        "`materials` file part per material, in the order the array names them. Items are "
        "stored in order; each is answered as it would have been alone (201, a replay, or its "
        "409/422 error) and the others are stored regardless. At most "
        f"{MAX_BATCH_BYTES // (1024 * 1024)} MiB in all."),
    form_limits={"max_fields": 1, "max_files": MAX_BATCH_ITEMS * MAX_MATERIALS,
                 "max_part_size": MAX_BATCH_METADATA_BYTES},
    max_body_size=MAX_BATCH_BYTES,
    openapi_extra={"requestBody": {"content": {"multipart/form-data": {"encoding": {
        "submissions": {"contentType": "application/json"},
        "materials": {"contentType": "image/jpeg, image/png, application/pdf"}}}}}},
    responses={
        **_errors((422, "invalid_request, invalid_batch, material_parts_mismatch"),
                  (503, "database_unavailable")),
        # The framework's body limit answers before any handler of ours, in plain text.
        413: {"description": "The request is larger than the batch limit.",
              "content": {"text/plain": {"schema": {"type": "string"}}}}})
def submit_batch(
        submissions: Annotated[str, Form(
            description=f"JSON: an array of 1 to {MAX_BATCH_ITEMS} submissions.",
            json_schema_extra={"contentMediaType": "application/json",
                               "contentSchema": _SUBMISSIONS_SCHEMA})],
        session: SessionDep, settings: SettingsDep,
        materials: Annotated[list[UploadFile] | None, File(description=(
            "The materials' bytes, one part each, in the order the submissions name them."
            ))] = None) -> BatchAnswer:
    parts = materials or []
    items = _batch_items(submissions, len(parts))
    results = [_batch_item(session, settings, raw, parts[owned]) for raw, owned in items]
    session.commit()
    return BatchAnswer(results=results)


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
