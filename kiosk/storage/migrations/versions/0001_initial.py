"""audit_events and used_appointment_codes

Revision ID: 0001
Revises:
Create Date: first schema

Written out in full rather than importing the models: a revision must describe the schema as
it was at that revision, whatever the models say later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_events_session_id", "audit_events", ["session_id"])
    op.create_table(
        "used_appointment_codes",
        sa.Column("appointment_id", sa.String(length=128), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("appointment_id", name=op.f("pk_used_appointment_codes")),
    )


def downgrade() -> None:
    op.drop_table("used_appointment_codes")
    op.drop_index("ix_audit_events_session_id", table_name="audit_events")
    op.drop_table("audit_events")
