"""monitoring requests move into the intake pipeline

The Idempotency-Keys the monitoring software sent before become intake events (source
``monitoring``, done, with the ticket they created), so that a retry sent across the upgrade is
still answered with its ticket; ``monitoring_requests`` goes away.

Revision ID: monitoring_0002
Revises: monitoring_0001
Create Date: 2026-12-02 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.db

revision: str = "monitoring_0002"
down_revision: str | Sequence[str] | None = "monitoring_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "intake_0001"

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WHEN = hub.db.UTCDateTime(timezone=True)
_requests = sa.table(
    "monitoring_requests",
    sa.column("account_id", _ID),
    sa.column("idempotency_key", sa.String()),
    sa.column("body_hash", sa.String()),
    sa.column("ticket_id", _ID),
    sa.column("created_at", _WHEN),
)
_events = sa.table(
    "intake_events",
    *(sa.column(name, _ID) for name in ("account_id", "endpoint_id")),
    *(sa.column(name, sa.String()) for name in ("source", "dedupe_key", "replay_key", "state", "outcome")),
    *(sa.column(name, _WHEN) for name in ("received_at", "next_attempt_at", "applied_at")),
    sa.column("headers", sa.JSON()),
    sa.column("body", sa.Text()),
    sa.column("attempts", sa.Integer()),
    sa.column("result", sa.JSON()),
)


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(_requests).where(_requests.c.ticket_id.is_not(None))).all()
    events = [
        {
            "source": "monitoring",
            "account_id": r.account_id,
            "endpoint_id": None,
            "dedupe_key": f"{r.account_id}:{r.idempotency_key}",
            "replay_key": r.body_hash,
            "state": "done",
            "outcome": "applied",
            "received_at": r.created_at,
            "next_attempt_at": r.created_at,
            "applied_at": r.created_at,
            "headers": {"idempotency-key": r.idempotency_key},
            "body": "",
            "attempts": 1,
            "result": {"ticket_id": r.ticket_id},
        }
        for r in rows
    ]
    if events:
        bind.execute(_events.insert(), events)
    op.drop_table("monitoring_requests")


def downgrade() -> None:
    op.create_table(
        "monitoring_requests",
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("ticket_id", _ID, nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_monitoring_requests_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_monitoring_requests_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitoring_requests")),
        sa.UniqueConstraint(
            "account_id", "idempotency_key", name=op.f("uq_monitoring_requests_account_id_idempotency_key")
        ),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(_events).where(
            _events.c.source == "monitoring", _events.c.dedupe_key.is_not(None), _events.c.state == "done"
        )
    ).all()
    requests = [
        {
            "account_id": r.account_id,
            "idempotency_key": r.dedupe_key.split(":", 1)[1],
            "body_hash": r.replay_key or "",
            "ticket_id": (r.result or {}).get("ticket_id"),
            "created_at": r.received_at,
        }
        for r in rows
        if (r.result or {}).get("ticket_id")
    ]
    if requests:
        bind.execute(_requests.insert(), requests)
