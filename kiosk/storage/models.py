"""ORM mapping of the kiosk's tables. The schema itself is owned by the Alembic migrations in
``migrations/versions``: a change here needs a new revision, never an edit of an old one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so later batch migrations on SQLite can drop/alter them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as naive UTC.

    SQLite has no time zone type; storing UTC only means rows written before and after a
    clock's zone change still sort and compare correctly. Naive input is refused because its
    zone would be a guess.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime: pass an aware one (datetime.now(UTC))")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AuditEvent(Base):
    """What happened at the kiosk, for technicians and for the centre's audit: never personal
    data, see :mod:`kiosk.storage.audit`."""

    __tablename__ = "audit_events"
    # AUTOINCREMENT: ids are never reused after old rows are pruned, so "newest first" by id
    # stays true.
    __table_args__ = (
        Index("ix_audit_events_session_id", "session_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    session_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    device_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[str] = mapped_column(Text, nullable=False, default="{}")


class UsedAppointmentCode(Base):
    """An appointment checked in at this kiosk: the primary key is what makes a code
    single-use, even while the back office cannot be asked."""

    __tablename__ = "used_appointment_codes"

    appointment_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    used_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    session_id: Mapped[str] = mapped_column(String(64), nullable=False)
