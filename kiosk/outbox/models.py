"""ORM mapping of the outbox database (its own SQLite file, next to the kiosk's).

The schema is owned by the Alembic revisions in ``kiosk/outbox/migrations/versions``: a change
here needs a new revision, never an edit of an old one.

Columns in clear hold nothing personal: numbers the kiosk made up, the 事项编码, sizes, states,
error codes. Everything about the applicant and every material's bytes are in the sealed
columns (``payload``, ``content``), see :mod:`kiosk.outbox.crypto`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, MetaData, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kiosk.storage.models import NAMING_CONVENTION, UtcDateTime

PENDING = "pending"
QUARANTINED = "quarantined"


class OutboxBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class OutboxSubmission(OutboxBase):
    """One application waiting to be delivered (``pending``) or set aside for staff because
    the back office refused it as invalid (``quarantined``). Delivery order is ``id``."""

    __tablename__ = "outbox_submissions"
    # AUTOINCREMENT: an id is never reused, so a sealed value bound to a row id can never be
    # mistaken for a later row's.
    __table_args__ = (
        Index("ix_outbox_submissions_state_id", "state", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    local_tracking_number: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    # Made at enqueue and sent with every attempt: a resend after a crash is a replay.
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    service_item_code: Mapped[str] = mapped_column(String(64), nullable=False)
    session_id: Mapped[str] = mapped_column(String(128), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default=PENDING)
    key_id: Mapped[str] = mapped_column(String(16), nullable=False)
    payload: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    # Revision 0002: delivery bookkeeping, for the heartbeat and for staff.
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0,
                                          server_default="0")
    last_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(100), nullable=True)
    quarantined_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class OutboxMaterial(OutboxBase):
    """One material of a waiting submission; its bytes sealed."""

    __tablename__ = "outbox_materials"
    __table_args__ = (
        UniqueConstraint("submission_id", "position"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("outbox_submissions.id", ondelete="CASCADE"), nullable=False, index=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    media_type: Mapped[str] = mapped_column(String(100), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    key_id: Mapped[str] = mapped_column(String(16), nullable=False)
    content: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class OutboxReceipt(OutboxBase):
    """Revision 0002: a delivered submission, kept without any personal data so that the
    receipt's local tracking number still leads to the back office's 办件编号."""

    __tablename__ = "outbox_receipts"

    local_tracking_number: Mapped[str] = mapped_column(String(32), primary_key=True)
    tracking_number: Mapped[str] = mapped_column(String(64), nullable=False)  # 办件编号
    delivered_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, index=True)
