"""Database tables of the reference back office (SQLAlchemy 2 declarative, any backend)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores aware datetimes as naive UTC, because SQLite keeps no offset and would otherwise
    hand back a naive value whose zone nobody knows."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UTCDateTime needs an aware datetime")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    pass


class Centre(Base):
    """A 政务服务中心 / 便民服务中心."""

    __tablename__ = "centres"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300), default="")


class TicketCategory(Base):
    """A queue of the centre; ``code`` is the ticket prefix ("A")."""

    __tablename__ = "ticket_categories"
    __table_args__ = (UniqueConstraint("centre_id", "code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    centre_id: Mapped[str] = mapped_column(ForeignKey("centres.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(100))
    floor: Mapped[str] = mapped_column(String(50))
    area: Mapped[str] = mapped_column(String(50))
    window: Mapped[str] = mapped_column(String(50))


class ServiceItem(Base):
    """A 事项 as offered at one centre; ``category_code`` names the queue it is served in."""

    __tablename__ = "service_items"
    __table_args__ = (
        UniqueConstraint("centre_id", "code"),
        ForeignKeyConstraint(["centre_id", "category_code"],
                             ["ticket_categories.centre_id", "ticket_categories.code"]),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    centre_id: Mapped[str] = mapped_column(ForeignKey("centres.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    category_code: Mapped[str] = mapped_column(String(8))
    department: Mapped[str] = mapped_column(String(200))
    # The unified fields of the 办事指南 (backoffice/catalogue.py reads and writes them).
    basic_code: Mapped[str] = mapped_column(String(32), default="")  # 基本编码, GB/T 39554.1
    item_type: Mapped[str] = mapped_column(String(32), default="公共服务")  # 事项类型
    legal_basis: Mapped[list[str]] = mapped_column(JSON, default=list)  # 设定依据
    conditions: Mapped[list[str]] = mapped_column(JSON, default=list)  # 申请条件
    materials: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # 申请材料
    promised_days: Mapped[int | None] = mapped_column(Integer, default=None)  # 承诺时限
    statutory_days: Mapped[int | None] = mapped_column(Integer, default=None)  # 法定时限
    fees: Mapped[str] = mapped_column(String(500), default="不收费")  # 收费
    co_departments: Mapped[list[str]] = mapped_column(JSON, default=list)  # 联办部门
    kiosk_services: Mapped[list[str]] = mapped_column(JSON, default=list)
    result_name: Mapped[str] = mapped_column(String(200), default="")  # 办理结果名称


class Appointment(Base):
    __tablename__ = "appointments"
    __table_args__ = (
        ForeignKeyConstraint(["centre_id", "service_item_code"],
                             ["service_items.centre_id", "service_items.code"]),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    centre_id: Mapped[str] = mapped_column(ForeignKey("centres.id", ondelete="CASCADE"))
    service_item_code: Mapped[str] = mapped_column(String(64))
    date: Mapped[dt.date]
    slot_start: Mapped[dt.time]
    slot_end: Mapped[dt.time]
    applicant_name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    # The key of the check-in that used it: a repeat with this key is a replay, another is a 409.
    checkin_idempotency_key: Mapped[str | None] = mapped_column(String(128), default=None)
    checked_in_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)


class QueueTicket(Base):
    __tablename__ = "queue_tickets"
    __table_args__ = (UniqueConstraint("centre_id", "day", "category_code", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    centre_id: Mapped[str] = mapped_column(ForeignKey("centres.id", ondelete="CASCADE"))
    category_code: Mapped[str] = mapped_column(String(8))
    day: Mapped[dt.date]
    seq: Mapped[int]
    number: Mapped[str] = mapped_column(String(16))
    service_name: Mapped[str] = mapped_column(String(200))
    kiosk_id: Mapped[str] = mapped_column(String(64))
    appointment_id: Mapped[str | None] = mapped_column(String(64), default=None)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    served_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)


class TicketCounter(Base):
    """Last number issued per centre, day and category.

    Numbering bumps this row with one UPDATE inside the issuing transaction: the row lock (or
    SQLite's database write lock) is what keeps two concurrent requests off the same number.
    """

    __tablename__ = "ticket_counters"

    centre_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[dt.date] = mapped_column(primary_key=True)
    category_code: Mapped[str] = mapped_column(String(8), primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)


class HelpRequest(Base):
    """呼叫帮办: a citizen at a kiosk asked for a member of staff."""

    __tablename__ = "help_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    centre_id: Mapped[str] = mapped_column(ForeignKey("centres.id", ondelete="CASCADE"))
    kiosk_id: Mapped[str] = mapped_column(String(64))
    session_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Application(Base):
    """An application (办件) made at a kiosk or a window, as the progress query and the staff
    see it. Applications from a kiosk also carry what the citizen submitted there."""

    __tablename__ = "applications"

    tracking_number: Mapped[str] = mapped_column(String(64), primary_key=True)  # 办件编号
    centre_id: Mapped[str] = mapped_column(ForeignKey("centres.id", ondelete="CASCADE"))
    service_item_code: Mapped[str] = mapped_column(String(64))
    service_name: Mapped[str] = mapped_column(String(200))
    department: Mapped[str] = mapped_column(String(200))
    # The applicant's document (ID number or passport number) and its type: the key of the
    # progress query. Personal data: never in a URL, never in a log.
    applicant_document_type: Mapped[str] = mapped_column(String(32))
    applicant_id_number: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(String(500), default="")
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Submitted at a kiosk (None for seeded and window applications):
    # the number on the kiosk's receipt before the 办件编号 was known; unique across kiosks.
    local_tracking_number: Mapped[str | None] = mapped_column(String(64), unique=True,
                                                              default=None)
    kiosk_id: Mapped[str | None] = mapped_column(String(64), default=None)
    session_id: Mapped[str | None] = mapped_column(String(128), default=None)
    applicant_name: Mapped[str] = mapped_column(String(200), default="")  # personal data
    form: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # may hold personal data
    commitment_version: Mapped[str | None] = mapped_column(String(64), default=None)  # 告知承诺
    commitment_signed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    # 容缺后补: material codes the applicant will bring later.
    deferred_materials: Mapped[list[str]] = mapped_column(JSON, default=list)
    materials: Mapped[list[ApplicationMaterial]] = relationship(
        back_populates="application", cascade="all, delete-orphan", passive_deletes=True,
        order_by="ApplicationMaterial.position")
    history: Mapped[list[ApplicationEvent]] = relationship(
        back_populates="application", cascade="all, delete-orphan", passive_deletes=True,
        order_by="ApplicationEvent.id")
    # The result (办理结果) once staff mark it ready: the document the kiosk prints at 自助出件.
    result_title: Mapped[str] = mapped_column(String(200), default="")
    result_media_type: Mapped[str | None] = mapped_column(String(100), default=None)
    result_content: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    ready_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    collected_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    collected_by_kiosk: Mapped[str | None] = mapped_column(String(64), default=None)


class ApplicationMaterial(Base):
    """A material (申请材料) submitted with an application: the file's bytes and what they are."""

    __tablename__ = "application_materials"
    __table_args__ = (UniqueConstraint("tracking_number", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tracking_number: Mapped[str] = mapped_column(
        ForeignKey("applications.tracking_number", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    application: Mapped[Application] = relationship(back_populates="materials")


class ApplicationEvent(Base):
    """One step of an application's history (办理环节), as the progress query lists it. The
    note is what the department tells the applicant: staff are told to keep personal data out."""

    __tablename__ = "application_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tracking_number: Mapped[str] = mapped_column(
        ForeignKey("applications.tracking_number", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    step: Mapped[str] = mapped_column(String(32))  # the status it moved to
    department: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(String(500), default="")
    application: Mapped[Application] = relationship(back_populates="history")


class Rating(Base):
    """好差评 (GB/T 39734-2020): one evaluation of one transaction."""

    __tablename__ = "ratings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    level: Mapped[int] = mapped_column(Integer)  # 5 非常满意 ... 1 非常不满意
    indicators: Mapped[list[str]] = mapped_column(JSON, default=list)
    comment: Mapped[str] = mapped_column(String(500), default="")
    tracking_number: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    session_id: Mapped[str | None] = mapped_column(String(128), default=None)
    kiosk_id: Mapped[str] = mapped_column(String(64))
    centre_id: Mapped[str] = mapped_column(String(64))
    service_item_code: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class KioskHeartbeat(Base):
    """The latest heartbeat of each kiosk; a newer one replaces it."""

    __tablename__ = "kiosk_heartbeats"

    kiosk_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    centre_id: Mapped[str] = mapped_column(String(64))
    software_version: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    devices: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    outbox_depth: Mapped[int] = mapped_column(Integer, default=0)
    outbox_quarantined: Mapped[int] = mapped_column(Integer, default=0)
    outbox_oldest_age_s: Mapped[float | None] = mapped_column(default=None)
    count: Mapped[int] = mapped_column(Integer, default=1)


class ApplicationCounter(Base):
    """Last 办件编号 sequence issued per day; bumped inside the submitting transaction, like
    :class:`TicketCounter`."""

    __tablename__ = "application_counters"

    day: Mapped[dt.date] = mapped_column(primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)


class IdempotencyRecord(Base):
    """The stored answer to a write, replayed verbatim when the same key comes again."""

    __tablename__ = "idempotency_records"

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    # A digest of what was asked, so a key reused for a different request is refused.
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int]
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
