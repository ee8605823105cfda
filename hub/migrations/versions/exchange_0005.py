"""exchange: one inbound message per (ticket, seq), message digests, protocol version

Revision ID: exchange_0005
Revises: exchange_0004
Create Date: 2026-12-02 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "exchange_0005"
down_revision: str | Sequence[str] | None = "exchange_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("exchange_connections") as batch:
        batch.add_column(sa.Column("protocol_version", sa.Integer(), server_default="1", nullable=False))
    with op.batch_alter_table("exchange_inbound_messages") as batch:
        batch.add_column(sa.Column("digest", sa.String(length=64), nullable=True))
        batch.drop_index("ix_exchange_inbound_held")
        batch.create_index("ix_exchange_inbound_status", ["connection_id", "status"])
        batch.create_unique_constraint(
            "uq_exchange_inbound_messages_connection_id_ticket_uuid_seq",
            ["connection_id", "ticket_uuid", "seq"],
        )


def downgrade() -> None:
    with op.batch_alter_table("exchange_inbound_messages") as batch:
        batch.drop_constraint("uq_exchange_inbound_messages_connection_id_ticket_uuid_seq", type_="unique")
        batch.drop_index("ix_exchange_inbound_status")
        batch.create_index("ix_exchange_inbound_held", ["connection_id", "ticket_uuid", "seq"])
        batch.drop_column("digest")
    with op.batch_alter_table("exchange_connections") as batch:
        batch.drop_column("protocol_version")
