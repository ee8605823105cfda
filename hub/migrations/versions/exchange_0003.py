"""exchange: a rating or send-back on its way to the partner

Revision ID: exchange_0003
Revises: exchange_0002
Create Date: 2026-12-01 20:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "exchange_0003"
down_revision: str | Sequence[str] | None = "exchange_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("exchange_shared_tickets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("decision_pending", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("exchange_shared_tickets", schema=None) as batch_op:
        batch_op.drop_column("decision_pending")
