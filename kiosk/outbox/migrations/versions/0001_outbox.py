"""outbox_submissions and outbox_materials

Revision ID: ob0001
Revises:
Create Date: first outbox schema

Written out in full rather than importing the models: a revision must describe the schema as
it was at that revision, whatever the models say later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ob0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox_submissions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("local_tracking_number", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("service_item_code", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_submissions")),
        sa.UniqueConstraint("local_tracking_number",
                            name=op.f("uq_outbox_submissions_local_tracking_number")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_submissions_idempotency_key")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_outbox_submissions_state_id", "outbox_submissions", ["state", "id"])
    op.create_table(
        "outbox_materials",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["submission_id"], ["outbox_submissions.id"],
            name=op.f("fk_outbox_materials_submission_id_outbox_submissions"),
            ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_materials")),
        sa.UniqueConstraint("submission_id", "position",
                            name=op.f("uq_outbox_materials_submission_id")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_outbox_materials_submission_id"), "outbox_materials",
                    ["submission_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_materials_submission_id"), table_name="outbox_materials")
    op.drop_table("outbox_materials")
    op.drop_index("ix_outbox_submissions_state_id", table_name="outbox_submissions")
    op.drop_table("outbox_submissions")
