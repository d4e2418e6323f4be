"""In-memory stand-ins for the flows' ports: for unit tests on top of the real-peer tests."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time

from flows.ports import (
    ApplicationSummary,
    Appointment,
    AppointmentAlreadyUsed,
    AppointmentNotFound,
    AppointmentStatus,
    BackOfficeUnavailable,
    QueueTicket,
    TicketCategory,
)
from kiosk.storage.audit import _clean

TODAY = date(2026, 11, 22)


def appointment(code: str = "APT-0001", **changes: object) -> Appointment:
    base = Appointment(code=code, appointment_id=f"id-{code}", centre_id="530102-01",
                       centre_name="五华区政务服务中心", service_item_code="SI-001",
                       service_name="社会保障卡补办", date=TODAY, slot_start=time(9, 0),
                       slot_end=time(9, 30), applicant_name="张三丰",
                       status=AppointmentStatus.BOOKED)
    return replace(base, **changes)  # type: ignore[arg-type]


@dataclass
class FakeBackOffice:
    appointments: dict[str, Appointment] = field(default_factory=dict)
    down: bool = False
    calls: list[tuple[str, str]] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)  # code -> idempotency key used
    issued: int = 0
    # (document type, id number) -> applications
    applications: dict[tuple[str, str], list[ApplicationSummary]] = field(default_factory=dict)

    def health(self) -> bool:
        return not self.down

    def get_appointment(self, code: str) -> Appointment:
        self.calls.append(("get", code))
        if self.down:
            raise BackOfficeUnavailable("down")
        if code not in self.appointments:
            raise AppointmentNotFound(code)
        return self.appointments[code]

    def check_in(self, code: str, *, kiosk_id: str, centre_id: str,
                 idempotency_key: str) -> QueueTicket:
        self.calls.append(("check_in", idempotency_key))
        if self.down:
            raise BackOfficeUnavailable("down")
        if code in self.keys and self.keys[code] != idempotency_key:
            raise AppointmentAlreadyUsed(code)
        if code not in self.keys:
            self.issued += 1
        self.keys[code] = idempotency_key
        return QueueTicket(number=f"A{self.issued:03d}", service_name="社会保障卡补办",
                           centre_name="五华区政务服务中心", floor="二楼", area="B区",
                           window="5号窗口", issued_at=datetime(2026, 11, 22, 9, 5,
                                                                tzinfo=UTC),
                           waiting_ahead=3, appointment_id=self.appointments[code].appointment_id)

    def ticket_categories(self, centre_id: str) -> list[TicketCategory]:
        return []

    def take_ticket(self, category_code: str, *, kiosk_id: str, centre_id: str,
                    idempotency_key: str) -> QueueTicket:
        raise NotImplementedError

    def call_staff(self, *, kiosk_id: str, centre_id: str, session_id: str) -> None:
        self.calls.append(("call_staff", session_id))
        if self.down:
            raise BackOfficeUnavailable("down")

    def find_applications(self, *, id_number: str, document_type: str,
                          session_id: str) -> list[ApplicationSummary]:
        self.calls.append(("find_applications", document_type))
        if self.down:
            raise BackOfficeUnavailable("down")
        return list(self.applications.get((document_type, id_number), []))


@dataclass
class MemoryUsedCodes:
    used: dict[str, str] = field(default_factory=dict)

    def is_used(self, appointment_id: str) -> bool:
        return appointment_id in self.used

    def mark_used(self, appointment_id: str, session_id: str) -> bool:
        if appointment_id in self.used:
            return False
        self.used[appointment_id] = session_id
        return True


@dataclass
class ListAudit:
    rows: list[tuple[str, str | None, dict[str, object]]] = field(default_factory=list)

    def record(self, kind: str, *, session_id: str | None = None,
               device_id: str | None = None, detail: dict[str, object] | None = None) -> None:
        # The real audit log's rule: a flow that records personal data fails here too.
        _clean(detail or {}, "")
        self.rows.append((kind, session_id, dict(detail or {})))

    def kinds(self) -> list[str]:
        return [k for k, _, _ in self.rows]
