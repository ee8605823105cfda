"""desk: indexes for the sweeper's SLA scans in deadline order (DESK-5)

Revision ID: desk_0002
Revises: desk_0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "desk_0002"
down_revision: str | Sequence[str] | None = "desk_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index("ix_tickets_reaction_due_at", ["reaction_due_at", "id"], unique=False)
        batch_op.create_index("ix_tickets_resolution_due_at", ["resolution_due_at", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_resolution_due_at")
        batch_op.drop_index("ix_tickets_reaction_due_at")
