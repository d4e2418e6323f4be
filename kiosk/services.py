"""The services of DESIGN.md, what devices each needs, and whether each can be offered now.

CUSS app states: the kiosk is ``available`` while any service works, ``unavailable`` (out of
service) only when none does, ``active`` while a citizen uses it. A device that is down greys
out only the services that need it, each with its reason.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from devices.contract import DeviceState, DeviceStatus, DoorState, PaperState
from kiosk.i18n import N_


class ServiceId(enum.StrEnum):
    CHECKIN = "checkin"  # 预约签到
    TAKE_NUMBER = "take_number"  # 取号
    GUIDE = "guide"  # 办事指南
    APPLY = "apply"  # 自助申报
    QUERY = "query"  # 办件查询
    CERTIFICATE = "certificate"  # 自助出件
    RATING = "rating"  # 好差评


class AppState(enum.StrEnum):
    INITIALIZE = "initialize"
    UNAVAILABLE = "unavailable"
    AVAILABLE = "available"
    ACTIVE = "active"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ServiceSpec:
    id: ServiceId
    title: str  # msgid
    subtitle: str  # msgid
    # Each inner tuple is a set of alternatives: one of them must be usable.
    requires: tuple[tuple[str, ...], ...]
    implemented: bool


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(ServiceId.CHECKIN, N_("Appointment check-in"), N_("Scan your booking QR code"),
                (("barcode",), ("receipt_printer",)), implemented=True),
    ServiceSpec(ServiceId.TAKE_NUMBER, N_("Take a number"), N_("Queue without an appointment"),
                (("receipt_printer",),), implemented=False),
    ServiceSpec(ServiceId.GUIDE, N_("Service guide"), N_("What each service needs"),
                (), implemented=True),
    ServiceSpec(ServiceId.APPLY, N_("Apply"), N_("Apply with your ID card and documents"),
                (("id_card", "smart_card"), ("camera",), ("receipt_printer",)),
                implemented=True),
    ServiceSpec(ServiceId.QUERY, N_("Track an application"),
                N_("With your ID card or passport"),
                (("id_card", "smart_card"),), implemented=True),
    ServiceSpec(ServiceId.CERTIFICATE, N_("Print a certificate"),
                N_("Collect a result ready for you"),
                (("id_card", "smart_card"), ("document_printer",)), implemented=True),
    ServiceSpec(ServiceId.RATING, N_("Rate our service"), N_("Five levels, GB/T 39734"),
                (), implemented=True),
)

DEVICE_TITLES: dict[str, str] = {
    "id_card": N_("ID card reader"),
    "smart_card": N_("passport reader"),
    "camera": N_("camera"),
    "barcode": N_("QR code reader"),
    "receipt_printer": N_("ticket printer"),
    "document_printer": N_("A4 printer"),
}


@dataclass(frozen=True)
class Availability:
    service: ServiceSpec
    available: bool
    reason: str = ""  # msgid, formatted with ``device`` (a msgid too) when set
    device: str = ""


def device_problem(status: DeviceStatus | None) -> str | None:
    """Why a device cannot serve now (a msgid), or None when it can."""
    if status is None:
        return N_("{device} not installed")
    if status.paper is PaperState.OUT:
        return N_("{device} out of paper")
    if status.paper is PaperState.JAMMED:
        return N_("{device} jammed")
    if status.door is DoorState.OPEN:
        return N_("{device} cover open")
    if status.state is DeviceState.NO_DEVICE:
        return N_("{device} disconnected")
    if not status.usable:
        return N_("{device} out of order")
    return None


def evaluate(statuses: Mapping[str, DeviceStatus]) -> list[Availability]:
    result = []
    for spec in SERVICES:
        if not spec.implemented:
            result.append(Availability(spec, False, N_("Not yet offered at this kiosk")))
            continue
        blocked: Availability | None = None
        for alternatives in spec.requires:
            problems = [(name, device_problem(statuses.get(name))) for name in alternatives]
            if all(problem is not None for _, problem in problems):
                name, problem = problems[0]
                blocked = Availability(spec, False, problem or "", DEVICE_TITLES[name])
                break
        result.append(blocked or Availability(spec, True))
    return result


def app_state(availability: list[Availability], session_active: bool) -> AppState:
    if not any(a.available for a in availability):
        return AppState.UNAVAILABLE
    return AppState.ACTIVE if session_active else AppState.AVAILABLE
