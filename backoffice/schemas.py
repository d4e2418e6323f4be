"""Request and response bodies of the /api/v1 contract, and the seed file's shape.

The class names and docstrings here are what /openapi.json publishes as schema names and
descriptions: write them for the people who build another back office or kiosk against it.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_serializer

CODE_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"

CentreId = Annotated[str, Field(pattern=ID_PATTERN, description="Service centre id, e.g. 530102-01.",
                                examples=["530102-01"])]
KioskId = Annotated[str, Field(min_length=1, max_length=64, description="The calling kiosk's id.",
                               examples=["KIOSK-530102-01-03"])]


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Error(ApiModel):
    """Every error answer has this shape; ``error`` is stable and meant for programs."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"error": "appointment_not_found", "message": "No appointment has this code."}]})

    error: str = Field(description="Stable machine-readable code, e.g. appointment_not_found, "
                                   "already_checked_in, wrong_centre, not_today, cancelled, "
                                   "malformed_code, idempotency_key_required.")
    message: str = Field(description="Human-readable explanation (Chinese or English); not stable.")


class Health(ApiModel):
    """Liveness of the back office and its database."""

    status: str = Field(description='"ok" when the server and its database answer.')
    version: str = Field(description="Version of the back-office program.")


class AppointmentStatus(enum.StrEnum):
    booked = "booked"
    checked_in = "checked_in"
    cancelled = "cancelled"


def _hhmm(value: dt.time) -> str:
    return value.strftime("%H:%M")


class Appointment(ApiModel):
    """A booked 预约 as the kiosk shows it before check-in."""

    code: str = Field(description="The code printed in the citizen's QR (APT-...).")
    appointment_id: str = Field(description="The back office's id of the appointment.")
    centre_id: str
    centre_name: str
    service_item_code: str = Field(description="Code of the 事项 the appointment is for.")
    service_name: str = Field(description="Name of the 事项.")
    date: dt.date = Field(description="Day of the appointment (ISO 8601).")
    slot_start: dt.time = Field(description='Start of the slot, "HH:MM", centre local time.')
    slot_end: dt.time = Field(description='End of the slot, "HH:MM", centre local time.')
    applicant_name: str = Field(description="Personal data: show masked, never log.")
    status: AppointmentStatus

    @field_serializer("slot_start", "slot_end")
    def _serialise_slot(self, value: dt.time) -> str:
        return _hhmm(value)


class CheckInRequest(ApiModel):
    kiosk_id: KioskId
    centre_id: CentreId = Field(description="The centre the kiosk stands in; must be the "
                                            "appointment's centre.")


class QueueTicket(ApiModel):
    """A 排队号: what the citizen holds while waiting to be called."""

    number: str = Field(description="Category prefix and 3 digits, per centre, day and category.",
                        examples=["A012"])
    service_name: str = Field(description="The 事项 (check-in) or the category (walk-in).")
    centre_name: str
    floor: str = Field(examples=["二楼"])
    area: str = Field(examples=["B区"])
    window: str = Field(examples=["5-8号窗口"])
    issued_at: AwareDatetime = Field(description="When it was issued, ISO 8601 with offset.")
    waiting_ahead: int = Field(ge=0, description="Tickets of the same category issued today "
                                                 "before this one and not yet served.")
    appointment_id: str | None = Field(default=None, description="Set for a check-in ticket.")


class TicketAnswer(ApiModel):
    ticket: QueueTicket


class TicketCategory(ApiModel):
    """A queue of the centre, with where it is served."""

    code: str = Field(description="Ticket prefix.", examples=["A"])
    name: str = Field(examples=["社会保障"])
    floor: str
    area: str
    window: str


class QueueTicketRequest(ApiModel):
    centre_id: CentreId
    category_code: str = Field(min_length=1, max_length=8, description="Ticket prefix to queue in.")
    kiosk_id: KioskId


class HelpRequestCreate(ApiModel):
    kiosk_id: KioskId
    centre_id: CentreId
    session_id: str = Field(min_length=1, max_length=128,
                            description="The kiosk session in which the citizen asked for help.")


class HelpRequestCreated(ApiModel):
    id: int
    created_at: AwareDatetime


class HelpRequest(ApiModel):
    """An open 呼叫帮办 request, for the staff's screen."""

    id: int
    kiosk_id: str
    centre_id: str
    session_id: str
    status: str = Field(description='"open" until staff close it.')
    created_at: AwareDatetime


class ServiceItem(ApiModel):
    """A 事项 offered at the centre."""

    code: str
    name: str
    category_code: str = Field(description="The ticket category it is served in.")
    department: str = Field(description="The approving department.")
    centre_id: str


class Centre(ApiModel):
    id: str
    name: str
    address: str


# --- seed file -------------------------------------------------------------------------------

class ApplicationStatus(enum.StrEnum):
    submitted = "submitted"
    accepted = "accepted"
    in_review = "in_review"
    supplement_needed = "supplement_needed"
    approved = "approved"
    rejected = "rejected"
    ready = "ready"
    collected = "collected"


class ApplicationSearch(ApiModel):
    """Who asks: the document the kiosk read. Sent in the body, never in the URL, so that no
    access log ever holds an ID number."""

    id_number: str = Field(min_length=5, max_length=64, pattern=r"^[0-9A-Za-z<]+$")
    document_type: str = Field(pattern=r"^(residentId|passport|travelPermit)$")
    session_id: str = Field(min_length=1, max_length=128)


class ApplicationSummary(ApiModel):
    tracking_number: str = Field(description="办件编号")
    service_item_code: str
    service_name: str
    department: str
    status: ApplicationStatus
    note: str = ""
    submitted_at: dt.datetime
    updated_at: dt.datetime


class SeedModel(BaseModel):
    # A seed file is hand-written: a misspelt key must be an error, not a silent default.
    model_config = ConfigDict(extra="forbid")


class SeedTicketCategory(SeedModel):
    code: str = Field(pattern=r"^[A-Z]{1,2}$")
    name: str = Field(min_length=1)
    floor: str
    area: str
    window: str


class SeedServiceItem(SeedModel):
    code: str = Field(pattern=CODE_PATTERN)
    name: str = Field(min_length=1)
    category_code: str
    department: str


class SeedCentre(SeedModel):
    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1)
    address: str = ""
    ticket_categories: list[SeedTicketCategory] = []
    service_items: list[SeedServiceItem] = []


class SeedAppointment(SeedModel):
    code: str = Field(pattern=CODE_PATTERN)
    appointment_id: str = Field(min_length=1, max_length=64)
    centre_id: str
    service_item_code: str
    day_offset: int = Field(description="Days from the day the seed is loaded: 0 is today.")
    slot_start: dt.time
    slot_end: dt.time
    applicant_name: str
    status: AppointmentStatus = AppointmentStatus.booked
    note: str = ""


class SeedApplication(SeedModel):
    tracking_number: str = Field(pattern=CODE_PATTERN)
    centre_id: str
    service_item_code: str
    applicant_document_type: str = "residentId"
    applicant_id_number: str = Field(min_length=5, max_length=64)
    status: ApplicationStatus
    note: str = ""
    submitted_day_offset: int = Field(le=0, description="Days before the seed is loaded.")
    updated_day_offset: int = Field(le=0)


class SeedFile(SeedModel):
    comment: str | list[str] = Field(default="", alias="_comment")
    centres: list[SeedCentre]
    appointments: list[SeedAppointment] = []
    applications: list[SeedApplication] = []
