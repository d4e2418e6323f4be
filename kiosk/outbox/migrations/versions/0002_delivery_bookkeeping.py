"""delivery bookkeeping: attempts and last error per submission, receipts of delivered ones

Revision ID: ob0002
Revises: ob0001
Create Date: second outbox schema

Applied in place with submissions waiting: the new columns have server defaults (or are
nullable), so rows written under ob0001 stay valid and are delivered as they are. Plain ALTER
TABLE ADD/DROP COLUMN (SQLite 3.35+), never batch mode's copy-and-rename: dropping the old
outbox_submissions during a copy would cascade into outbox_materials and delete every waiting
material.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ob0002"
down_revision: str | Sequence[str] | None = "ob0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox_submissions",
                  sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("outbox_submissions", sa.Column("last_attempt_at", sa.DateTime(), nullable=True))
    op.add_column("outbox_submissions",
                  sa.Column("last_error", sa.String(length=100), nullable=True))
    op.add_column("outbox_submissions", sa.Column("quarantined_at", sa.DateTime(), nullable=True))
    op.create_table(
        "outbox_receipts",
        sa.Column("local_tracking_number", sa.String(length=32), nullable=False),
        sa.Column("tracking_number", sa.String(length=64), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("local_tracking_number", name=op.f("pk_outbox_receipts")),
    )
    op.create_index(op.f("ix_outbox_receipts_delivered_at"), "outbox_receipts",
                    ["delivered_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_receipts_delivered_at"), table_name="outbox_receipts")
    op.drop_table("outbox_receipts")
    for column in ("quarantined_at", "last_error", "last_attempt_at", "attempts"):
        op.execute(f"ALTER TABLE outbox_submissions DROP COLUMN {column}")
