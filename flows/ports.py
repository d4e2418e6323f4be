"""What the flows need from outside, as interfaces: the back office, and the kiosk's records.

The kiosk's httpx client (``kiosk/client.py``) and storage implement these; tests may hand a
flow a fake. Flows never import either implementation.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, Protocol

from devices.identity import mask_id


class AppointmentStatus(enum.StrEnum):
    BOOKED = "booked"
    CHECKED_IN = "checked_in"
    CANCELLED = "cancelled"


@dataclass(frozen=True, repr=False)
class Appointment:
    code: str
    appointment_id: str
    centre_id: str
    centre_name: str
    service_item_code: str
    service_name: str
    date: date
    slot_start: time
    slot_end: time
    applicant_name: str  # personal data: only its mask reaches a screen, never a log
    status: AppointmentStatus

    def __repr__(self) -> str:
        return f"Appointment({self.appointment_id}, {self.centre_id}, {self.date}, {self.status})"


@dataclass(frozen=True)
class QueueTicket:
    """A 排队号: what the citizen holds while waiting to be called."""

    number: str  # e.g. "A012"
    service_name: str
    centre_name: str
    floor: str
    area: str
    window: str
    issued_at: datetime
    waiting_ahead: int
    appointment_id: str | None = None


@dataclass(frozen=True)
class TicketCategory:
    code: str  # the ticket prefix, "A"
    name: str
    floor: str
    area: str
    window: str


class ApplicationStatus(enum.StrEnum):
    """Where an application (办件) stands, as the back office reports it."""

    SUBMITTED = "submitted"  # 已提交: received, not yet taken up
    ACCEPTED = "accepted"  # 已受理
    IN_REVIEW = "in_review"  # 审批中
    SUPPLEMENT_NEEDED = "supplement_needed"  # 待补正: 容缺后补 materials still missing
    APPROVED = "approved"  # 已办结
    REJECTED = "rejected"  # 不予受理 / 不予批准
    READY = "ready"  # 待领取: the result can be printed or collected
    COLLECTED = "collected"  # 已领取


@dataclass(frozen=True)
class ApplicationStep:
    """One step of an application's history (办理环节)."""

    at: datetime
    step: ApplicationStatus
    department: str
    note: str = ""


@dataclass(frozen=True)
class ApplicationSummary:
    """One of the citizen's applications as the progress query shows it: no personal data."""

    tracking_number: str  # 办件编号
    service_name: str
    department: str
    status: ApplicationStatus
    submitted_at: datetime
    updated_at: datetime
    note: str = ""  # what the department says about the current status
    history: tuple[ApplicationStep, ...] = ()  # oldest first; empty where not asked for


@dataclass(frozen=True)
class ItemMaterial:
    """One 申请材料 of a service item, as the material capture needs it."""

    code: str
    name: str
    requirement: str  # required | optional | deferrable (容缺后补)
    paper: str  # a4 | id1 | passport (devices.vision.document.PaperKind values)
    max_pages: int
    copies: str = ""
    note: str = ""


@dataclass(frozen=True)
class ServiceItemInfo:
    """A 事项 with the five unified fields of the 办事指南."""

    code: str
    name: str  # 事项名称
    item_type: str  # 事项类型
    centre_id: str
    category_code: str
    department: str
    basic_code: str = ""  # 基本编码, GB/T 39554.1 shape
    legal_basis: tuple[str, ...] = ()  # 设定依据
    conditions: tuple[str, ...] = ()  # 申请条件
    materials: tuple[ItemMaterial, ...] = ()  # 申请材料
    promised_days: int | None = None  # 承诺时限, working days
    statutory_days: int | None = None
    fees: str = ""
    co_departments: tuple[str, ...] = ()
    kiosk_services: tuple[str, ...] = ()
    result_name: str = ""


@dataclass(frozen=True)
class ServiceCatalogue:
    version: str  # also the ETag: revalidate with it
    items: tuple[ServiceItemInfo, ...]


@dataclass(frozen=True, repr=False)
class ReadyResult:
    """A result ready for pickup (自助出件) with its document. The document is personal data."""

    tracking_number: str
    service_name: str
    department: str
    result_title: str
    ready_at: datetime
    media_type: str
    content: bytes

    def __repr__(self) -> str:
        return f"ReadyResult({self.tracking_number}, {len(self.content)} bytes)"


class RatingLevel(enum.IntEnum):
    """GB/T 39734-2020's five levels."""

    VERY_SATISFIED = 5  # 非常满意
    SATISFIED = 4  # 满意
    BASICALLY_SATISFIED = 3  # 基本满意
    DISSATISFIED = 2  # 不满意
    VERY_DISSATISFIED = 1  # 非常不满意


@dataclass(frozen=True, repr=False)
class Rating:
    """A 好差评 of one transaction: ``indicators`` (codes of GET /ratings/scheme) are required
    for levels 1-2 and empty otherwise; one of tracking_number / session_id is set."""

    level: RatingLevel
    kiosk_id: str
    centre_id: str
    indicators: tuple[str, ...] = ()
    comment: str = ""  # may hold personal data: never logged
    tracking_number: str | None = None
    session_id: str | None = None
    service_item_code: str | None = None

    def __repr__(self) -> str:
        return f"Rating({int(self.level)}, {self.indicators}, {self.tracking_number or self.session_id})"


@dataclass(frozen=True, repr=False)
class Applicant:
    """Who applies, as read from their document. Personal data: never logged."""

    document_type: str  # residentId | passport | travelPermit
    id_number: str
    name: str

    def __repr__(self) -> str:
        return f"Applicant({self.document_type}, {mask_id(self.id_number)})"


@dataclass(frozen=True)
class Commitment:
    """The 告知承诺 the applicant signed on screen: which text, and when."""

    text_version: str
    signed_at: datetime  # aware


@dataclass(frozen=True, repr=False)
class Material:
    """One 申请材料 as photographed or scanned at the kiosk."""

    code: str  # the material's code in the item's catalogue entry
    media_type: str  # image/jpeg, image/png or application/pdf
    content: bytes

    def __repr__(self) -> str:
        return f"Material({self.code}, {self.media_type}, {len(self.content)} bytes)"


@dataclass(frozen=True, repr=False)
class ApplicationSubmission:
    """An application (自助申报) as the citizen confirmed it at the kiosk."""

    centre_id: str
    kiosk_id: str
    session_id: str
    service_item_code: str  # 事项编码
    applicant: Applicant
    form: Mapping[str, Any]  # JSON-compatible; may hold personal data (address, phone)
    commitment: Commitment
    materials: tuple[Material, ...] = ()
    # 容缺后补: material codes the citizen will supply later, where the item allows it.
    deferred_materials: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (f"ApplicationSubmission({self.service_item_code}, session={self.session_id}, "
                f"{len(self.materials)} materials)")


@dataclass(frozen=True)
class SubmissionReceipt:
    """The back office's acknowledgement of a submission."""

    tracking_number: str  # 办件编号
    local_tracking_number: str
    status: ApplicationStatus
    submitted_at: datetime
    replayed: bool  # the server answered from its idempotency record (a resend)


class BackOfficeError(Exception):
    """Base of what the back-office client raises; ``code`` is stable for screens and logs."""

    code = "backoffice_error"


class BackOfficeUnavailable(BackOfficeError):
    """Network down, timeout, a 5xx, or an answer that does not parse."""

    code = "backoffice_unavailable"


class AppointmentNotFound(BackOfficeError):
    code = "appointment_not_found"


class AppointmentAlreadyUsed(BackOfficeError):
    code = "already_checked_in"


class AppointmentNotValidHere(BackOfficeError):
    """The server refuses the check-in: ``reason`` is wrong_centre, not_today or cancelled."""

    code = "appointment_not_valid"

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason


class BackOfficeRejected(BackOfficeError):
    """A 4xx the client has no better name for (bad request, unknown category...)."""

    code = "backoffice_rejected"


class BackOffice(Protocol):
    def health(self) -> bool: ...

    def get_appointment(self, code: str) -> Appointment: ...

    def check_in(self, code: str, *, kiosk_id: str, centre_id: str,
                 idempotency_key: str) -> QueueTicket:
        """Check in by an online code, or by the appointment id of a verified signed code
        (the back office resolves either; docs/appointment-code.md)."""
        ...

    def ticket_categories(self, centre_id: str) -> list[TicketCategory]: ...

    def take_ticket(self, category_code: str, *, kiosk_id: str, centre_id: str,
                    idempotency_key: str) -> QueueTicket: ...

    def call_staff(self, *, kiosk_id: str, centre_id: str, session_id: str) -> None: ...

    def find_applications(self, *, id_number: str, document_type: str,
                          session_id: str) -> list[ApplicationSummary]:
        """The applications of the person identified by the document, newest first."""
        ...


class UsedCodes(Protocol):
    """The kiosk's own record of appointment codes already checked in here; it holds when the
    back office cannot be asked, and it is what makes a signed offline code single-use."""

    def is_used(self, appointment_id: str) -> bool: ...

    def mark_used(self, appointment_id: str, session_id: str) -> bool:
        """Record it; False if it was already recorded."""
        ...


class AuditSink(Protocol):
    """Where flows record what happened. ``detail`` must hold no personal data."""

    def record(self, kind: str, *, session_id: str | None = None,
               device_id: str | None = None, detail: dict[str, object] | None = None) -> None: ...


class CatalogueSource(Protocol):
    """Where the 办事指南 comes from: the back office, or the kiosk's cached copy of it."""

    def service_catalogue(self, centre_id: str, *,
                          etag: str | None = None) -> ServiceCatalogue | None:
        """The centre's catalogue; None when ``etag`` is still current."""
        ...


class ResultDesk(Protocol):
    """自助出件: results ready for the person, and the record that one was collected."""

    def ready_results(self, *, id_number: str, document_type: str,
                      session_id: str) -> list[ReadyResult]: ...

    def confirm_collected(self, number: str, *, id_number: str, document_type: str,
                          kiosk_id: str, session_id: str, idempotency_key: str) -> datetime: ...


class RatingDesk(Protocol):
    """好差评: where a rating goes; returns the back office's id of it."""

    def rate(self, rating: Rating, *, idempotency_key: str) -> int: ...


class ApplicationOutbox(Protocol):
    """Where a confirmed application waits until the back office has it (kiosk/outbox)."""

    def enqueue(self, submission: ApplicationSubmission) -> str:
        """Commit it durably; returns the local tracking number. Raises if it could not be
        stored: then the citizen must not be told it was received."""
        ...

    def delivered_number(self, local_tracking_number: str) -> str | None:
        """The back office's 办件编号 once it has acknowledged the submission, else None."""
        ...
