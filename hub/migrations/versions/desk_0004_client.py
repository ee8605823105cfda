"""tickets.pending_for_client: a ticket pending while staff wait for the client (DESK-11)

Revision ID: desk_0004_client
Revises: desk_0003_sla
Create Date: 2026-12-02 10:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "desk_0004_client"
down_revision: str | Sequence[str] | None = "desk_0003_sla"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(
            sa.Column("pending_for_client", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("pending_for_client")
