"""live events replay log

Revision ID: live_0001
Revises: 0001_core
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.db

revision: str = "live_0001"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = ("live",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "live_events",
        sa.Column("channel", sa.String(length=120), nullable=False),
        sa.Column("event_type", sa.String(length=60), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", hub.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_events")),
    )
    op.create_index("ix_live_events_channel_id", "live_events", ["channel", "id"], unique=False)
    op.create_index(op.f("ix_live_events_created_at"), "live_events", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_live_events_created_at"), table_name="live_events")
    op.drop_index("ix_live_events_channel_id", table_name="live_events")
    op.drop_table("live_events")
