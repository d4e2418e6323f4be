"""Kiosk heartbeats: ``POST /api/v1/kiosks/{kiosk_id}/heartbeat`` keeps the latest per kiosk;
``GET /api/v1/kiosks`` lists them with flags for the staff (stale, quarantined submissions,
device faults, paper low or out).

No idempotency key: a heartbeat is a snapshot, and a repeat only states the same thing again. A
heartbeat older than the stored one (by ``sent_at``) is acknowledged and dropped, so a retried
old snapshot never hides a newer one.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import AwareDatetime, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from backoffice import API_PREFIX, models
from backoffice.app import SessionDep, Settings, SettingsDep, _centre_or_404, _errors
from backoffice.schemas import ID_PATTERN, ApiModel, CentreId

router = APIRouter(prefix=API_PREFIX, tags=["kiosks"])

DEFAULT_STALE_AFTER_S = 180.0
MAX_DEVICES = 32
FAULT_STATES = frozenset({"offline", "powerOff", "noDevice", "hardwareError"})


class DeviceState(enum.StrEnum):
    """The HAL's common device states (CEN XFS4IoT vocabulary)."""

    starting = "starting"
    online = "online"
    offline = "offline"
    power_off = "powerOff"
    no_device = "noDevice"
    hardware_error = "hardwareError"
    user_error = "userError"
    device_busy = "deviceBusy"


class PaperLevel(enum.StrEnum):
    full = "full"
    low = "low"
    out = "out"
    jammed = "jammed"
    unknown = "unknown"


class DeviceSummary(ApiModel):
    device_id: str = Field(min_length=1, max_length=64, examples=["receipt-printer"])
    device_class: str = Field(default="", max_length=32, examples=["printer"])
    state: DeviceState
    paper: PaperLevel | None = Field(default=None, description="Printers only.")


class OutboxSummary(ApiModel):
    # Bounded so that every value fits any database's integer and float columns.
    depth: int = Field(ge=0, le=10_000_000, description="Submissions waiting to be delivered.")
    quarantined: int = Field(ge=0, le=10_000_000,
                             description="Submissions the server refused; staff act.")
    oldest_age_s: float | None = Field(default=None, ge=0, le=1e10,
                                       description="Age of the oldest waiting submission.")


class Heartbeat(ApiModel):
    """What a kiosk reports every interval."""

    centre_id: CentreId
    software_version: str = Field(min_length=1, max_length=64)
    sent_at: AwareDatetime | None = Field(default=None, description="The kiosk's clock.")
    devices: list[DeviceSummary] = Field(default_factory=list, max_length=MAX_DEVICES)
    outbox: OutboxSummary


class HeartbeatAck(ApiModel):
    received_at: AwareDatetime
    stale_after_s: float = Field(description="Staff see the kiosk as stale after this long "
                                             "without a heartbeat.")


class KioskStatus(ApiModel):
    """The latest heartbeat of a kiosk, as staff see it."""

    kiosk_id: str
    centre_id: str
    software_version: str
    received_at: AwareDatetime
    sent_at: AwareDatetime | None
    heartbeats: int = Field(description="How many were received.")
    devices: list[DeviceSummary]
    outbox: OutboxSummary
    stale: bool
    flags: list[str] = Field(description="stale, quarantined, device_fault, paper_low, "
                                          "paper_out, outbox_backlog.")


KioskIdPath = Annotated[str, Path(pattern=ID_PATTERN, description="The kiosk's id.")]


def kiosk_status(row: models.KioskHeartbeat, settings: Settings,
                 stale_after_s: float) -> KioskStatus:
    age = (settings.now() - row.received_at).total_seconds()
    stale = age > stale_after_s
    devices = [DeviceSummary.model_validate(d) for d in row.devices or []]
    flags = []
    if stale:
        flags.append("stale")
    if row.outbox_quarantined > 0:
        flags.append("quarantined")
    if any(d.state.value in FAULT_STATES for d in devices):
        flags.append("device_fault")
    papers = {d.paper for d in devices}
    if PaperLevel.out in papers or PaperLevel.jammed in papers:
        flags.append("paper_out")
    elif PaperLevel.low in papers:
        flags.append("paper_low")
    if row.outbox_depth > 0 and (row.outbox_oldest_age_s or 0) > stale_after_s:
        flags.append("outbox_backlog")
    return KioskStatus(
        kiosk_id=row.kiosk_id, centre_id=row.centre_id, software_version=row.software_version,
        received_at=row.received_at.astimezone(settings.tz),
        sent_at=row.sent_at.astimezone(settings.tz) if row.sent_at else None,
        heartbeats=row.count, devices=devices,
        outbox=OutboxSummary(depth=row.outbox_depth, quarantined=row.outbox_quarantined,
                             oldest_age_s=row.outbox_oldest_age_s),
        stale=stale, flags=flags)


def list_kiosks(session: Session, settings: Settings, stale_after_s: float,
                centre_id: str | None = None) -> list[KioskStatus]:
    query = select(models.KioskHeartbeat).order_by(models.KioskHeartbeat.kiosk_id)
    if centre_id is not None:
        query = query.where(models.KioskHeartbeat.centre_id == centre_id)
    return [kiosk_status(r, settings, stale_after_s) for r in session.scalars(query)]


def stale_after(request: Request) -> float:
    return float(getattr(request.app.state, "heartbeat_stale_after_s", DEFAULT_STALE_AFTER_S))


def _older(sent_at: dt.datetime | None, stored: dt.datetime | None) -> bool:
    return sent_at is not None and stored is not None and sent_at < stored


@router.post("/kiosks/{kiosk_id}/heartbeat", response_model=HeartbeatAck,
             summary="A kiosk reports its state", responses=_errors(
                 (404, "centre_not_found"), (422, "invalid_request")))
def heartbeat(kiosk_id: KioskIdPath, body: Heartbeat, request: Request, session: SessionDep,
              settings: SettingsDep) -> HeartbeatAck:
    _centre_or_404(session, body.centre_id)
    now = settings.now()
    row = session.get(models.KioskHeartbeat, kiosk_id, with_for_update=True)
    values = {
        "centre_id": body.centre_id, "software_version": body.software_version,
        "received_at": now, "sent_at": body.sent_at,
        "devices": [d.model_dump(mode="json") for d in body.devices],
        "outbox_depth": body.outbox.depth, "outbox_quarantined": body.outbox.quarantined,
        "outbox_oldest_age_s": body.outbox.oldest_age_s}
    if row is None:
        session.add(models.KioskHeartbeat(kiosk_id=kiosk_id, count=1, **values))
    else:
        row.count += 1
        row.received_at = now  # a late snapshot is still a sign of life
        if not _older(body.sent_at, row.sent_at):
            for name, value in values.items():
                setattr(row, name, value)
    session.commit()
    return HeartbeatAck(received_at=now, stale_after_s=stale_after(request))


@router.get("/kiosks", response_model=list[KioskStatus],
            summary="The latest heartbeat of every kiosk, flagged for staff",
            responses=_errors((404, "centre_not_found")))
def kiosks(request: Request, session: SessionDep, settings: SettingsDep,
           centre_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
           ) -> list[KioskStatus]:
    if centre_id is not None:
        _centre_or_404(session, centre_id)
    return list_kiosks(session, settings, stale_after(request), centre_id)
