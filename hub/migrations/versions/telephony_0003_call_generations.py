"""telephony: a PBX call id names one call at a time (generation); a hunt group's ringing per party

A PBX that restarts its call-id counter sends ids already used: a new call with an old id is the
id's next generation. Each extension's ``ringing`` of a hunt group is logged apart (``party``).

Revision ID: telephony_0003_call_generations
Revises: telephony_0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "telephony_0003_call_generations"
down_revision: str | Sequence[str] | None = "telephony_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("generation", sa.Integer(), server_default="0", nullable=False))
        batch_op.drop_constraint(batch_op.f("uq_calls_account_id_external_id"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_calls_account_id_external_id_generation"),
            ["account_id", "external_id", "generation"],
        )
    with op.batch_alter_table("call_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("party", sa.String(length=100), server_default="", nullable=False))
        batch_op.drop_constraint(
            batch_op.f("uq_call_events_account_id_external_call_id_event"), type_="unique"
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_call_events_call_id_event_party"), ["call_id", "event", "party"]
        )


def downgrade() -> None:
    with op.batch_alter_table("call_events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_call_events_call_id_event_party"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_call_events_account_id_external_call_id_event"),
            ["account_id", "external_call_id", "event"],
        )
        batch_op.drop_column("party")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_calls_account_id_external_id_generation"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_calls_account_id_external_id"), ["account_id", "external_id"]
        )
        batch_op.drop_column("generation")
