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


BASIC_CODE_PATTERN = r"^([A-Z]{2}[0-9]{5}[0-9A-Z]{3})?$"


class ItemType(enum.StrEnum):
    """事项类型, as the 政务服务事项基本目录 names them."""

    licence = "行政许可"
    benefit = "行政给付"
    confirmation = "行政确认"
    adjudication = "行政裁决"
    reward = "行政奖励"
    other_power = "其他行政权力"
    public_service = "公共服务"


class MaterialRequirement(enum.StrEnum):
    required = "required"  # 必要
    optional = "optional"  # 非必要 (情形材料)
    deferrable = "deferrable"  # 容缺后补: required, but may be brought after acceptance


class PaperKind(enum.StrEnum):
    """What the document camera is told to look for (devices.vision.document.PaperKind)."""

    a4 = "a4"
    id1 = "id1"
    passport = "passport"


class KioskService(enum.StrEnum):
    """The kiosk services (kiosk.services.ServiceId) that offer an item."""

    checkin = "checkin"
    take_number = "take_number"
    guide = "guide"
    apply = "apply"
    query = "query"
    certificate = "certificate"
    rating = "rating"


class ItemMaterial(ApiModel):
    """One 申请材料 of an item, with what the kiosk's material capture needs."""

    code: str = Field(pattern=CODE_PATTERN, description="Material code, unique in the item.")
    name: str = Field(min_length=1, max_length=200, description="材料名称")
    requirement: MaterialRequirement = Field(
        description="required / optional / deferrable (容缺后补: may be supplied later).")
    paper: PaperKind = Field(default=PaperKind.a4, description="Paper kind to photograph.")
    max_pages: int = Field(default=1, ge=1, le=50)
    copies: str = Field(default="原件", max_length=50, description="原件 / 复印件 and how many.")
    note: str = Field(default="", max_length=500, description="填报说明")


class ServiceItem(ApiModel):
    """A 事项 offered at the centre: the summary the kiosk's list shows."""

    code: str = Field(description="The centre's code of the item (used by appointments and "
                                  "submissions).")
    name: str = Field(description="事项名称")
    category_code: str = Field(description="The ticket category it is served in.")
    department: str = Field(description="The approving department (办理部门).")
    centre_id: str
    basic_code: str = Field(default="", description="基本编码 in the GB/T 39554.1 shape: "
                                                    "事项类型代码 (2 letters) + 主项 (5 digits) + "
                                                    "子项 (3); empty when not assigned.")
    item_type: ItemType = Field(default=ItemType.public_service, description="事项类型")
    kiosk_services: list[KioskService] = Field(default_factory=list)


class ServiceItemDetail(ServiceItem):
    """A 事项 with the five unified fields of the 办事指南 and what the kiosk prints on the
    一次性告知单."""

    legal_basis: list[str] = Field(default_factory=list, description="设定依据")
    conditions: list[str] = Field(default_factory=list, description="申请条件")
    materials: list[ItemMaterial] = Field(default_factory=list, description="申请材料")
    promised_days: int | None = Field(default=None, ge=0,
                                      description="承诺时限 in working days; 0 is 即办.")
    statutory_days: int | None = Field(default=None, ge=0, description="法定时限, working days.")
    fees: str = Field(default="不收费", description="收费标准")
    co_departments: list[str] = Field(default_factory=list, description="联办部门")
    result_name: str = Field(default="", description="办理结果 (the certificate's name).")


class ServiceCatalogue(ApiModel):
    """The catalogue of a centre (or of all centres). ``version`` changes whenever any item
    does; the same value is the response's ETag, so a kiosk revalidates with If-None-Match."""

    version: str = Field(description="Digest of the catalogue's content.")
    items: list[ServiceItemDetail]


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
    basic_code: str = Field(default="", pattern=BASIC_CODE_PATTERN)
    item_type: ItemType = ItemType.public_service
    legal_basis: list[str] = []
    conditions: list[str] = []
    materials: list[ItemMaterial] = []
    promised_days: int | None = Field(default=None, ge=0)
    statutory_days: int | None = Field(default=None, ge=0)
    fees: str = "不收费"
    co_departments: list[str] = []
    kiosk_services: list[KioskService] = []
    result_name: str = ""


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
