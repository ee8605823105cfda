"""desk: SLA rules, working hours, holidays, reply clocks and overrides (DESK-5)

Revision ID: desk_0003_sla
Revises: desk_0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import hub.db

revision: str = "desk_0003_sla"
down_revision: str | Sequence[str] | None = "desk_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = hub.db.UTCDateTime(timezone=True)


def _account(table: str, **kw: Any) -> list[Any]:
    return [
        sa.Column("account_id", ID, nullable=False, **kw),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f(f"fk_{table}_account_id_accounts"), ondelete="CASCADE"
        ),
    ]


def _id(table: str) -> list[Any]:
    return [
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    ]


def upgrade() -> None:
    op.create_table(
        "sla_settings",
        *_account("sla_settings"),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("week", sa.JSON(), nullable=True),
        sa.Column("reaction_minutes", sa.Integer(), nullable=True),
        sa.Column("resolution_minutes", sa.Integer(), nullable=True),
        sa.Column("reply_minutes", sa.Integer(), nullable=True),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_sla_settings")),
    )
    op.create_table(
        "sla_rules",
        *_account("sla_rules"),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("ticket_type", sa.String(length=20), nullable=True),
        sa.Column("priority", sa.String(length=10), nullable=True),
        sa.Column("client_category", sa.String(length=100), nullable=True),
        sa.Column("company_id", ID, nullable=True),
        sa.Column("object_id", ID, nullable=True),
        sa.Column("reaction_minutes", sa.Integer(), nullable=True),
        sa.Column("resolution_minutes", sa.Integer(), nullable=True),
        sa.Column("reply_minutes", sa.Integer(), nullable=True),
        sa.Column("working_hours", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        *_id("sla_rules"),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_sla_rules_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["service_objects.id"],
            name=op.f("fk_sla_rules_object_id_service_objects"),
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_sla_rules_account_position", "sla_rules", ["account_id", "position", "id"])
    op.create_table(
        "sla_holidays",
        *_account("sla_holidays"),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        *_id("sla_holidays"),
        sa.UniqueConstraint("account_id", "day", name=op.f("uq_sla_holidays_account_id_day")),
    )
    op.create_table(
        "sla_reply_clocks",
        *_account("sla_reply_clocks"),
        sa.Column("ticket_id", ID, nullable=False),
        sa.Column("comment_id", ID, nullable=False),
        sa.Column("due_at", TIME, nullable=False),
        sa.Column("answered_at", TIME, nullable=True),
        sa.Column("breached", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        *_id("sla_reply_clocks"),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_sla_reply_clocks_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["comment_id"],
            ["ticket_comments.id"],
            name=op.f("fk_sla_reply_clocks_comment_id_ticket_comments"),
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_sla_reply_clocks_due", "sla_reply_clocks", ["due_at", "id"])
    op.create_index("ix_sla_reply_clocks_ticket", "sla_reply_clocks", ["ticket_id", "id"])
    op.create_index(op.f("ix_sla_reply_clocks_comment_id"), "sla_reply_clocks", ["comment_id"])
    op.create_table(
        "sla_overrides",
        sa.Column("ticket_id", ID, nullable=False),
        *_account("sla_overrides"),
        sa.Column("reaction", sa.Boolean(), nullable=False),
        sa.Column("resolution", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_sla_overrides_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_sla_overrides")),
    )
    op.create_index(op.f("ix_sla_overrides_account_id"), "sla_overrides", ["account_id"])
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("reply_due_at", TIME, nullable=True))
        batch.add_column(
            sa.Column("sla_reply_overdue", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("sla_reply_overdue")
        batch.drop_column("reply_due_at")
    op.drop_table("sla_overrides")
    op.drop_table("sla_reply_clocks")
    op.drop_table("sla_holidays")
    op.drop_table("sla_rules")
    op.drop_table("sla_settings")
