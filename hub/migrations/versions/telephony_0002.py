"""telephony: call bindings reference tickets (the desk has landed)

Revision ID: telephony_0002
Revises: telephony_0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "telephony_0002"
down_revision: str | Sequence[str] | None = "telephony_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "desk_0001"


def upgrade() -> None:
    with op.batch_alter_table("call_tickets", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_call_tickets_ticket_id_tickets"),
            "tickets",
            ["ticket_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("call_tickets", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_call_tickets_ticket_id_tickets"), type_="foreignkey")
