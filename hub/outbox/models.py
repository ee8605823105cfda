"""The durable outbox: one row per outbound effect, one row per delivery attempt."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, Id, JSONType, PortableId, utcnow

__all__ = ["DeliveryAttempt", "OutboxMessage", "OutboxStatus"]


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    DEAD = "dead"


# The rows a worker may still claim. The partial indexes below hold only these, so the claim walks
# the due messages in id order and stops at its batch (no sort of the whole backlog), and the
# look-back at a message's ordering key skips the key's delivered history.
_UNFINISHED_SQL = "status IN ('pending', 'delivering')"


def _unfinished_index(name: str, *columns: str) -> Index:
    where = text(_UNFINISHED_SQL)
    return Index(name, *columns, postgresql_where=where, sqlite_where=where)


class OutboxMessage(Id, Base):
    __tablename__ = "outbox_messages"
    __table_args__ = (
        _unfinished_index("ix_outbox_messages_unfinished", "id", "next_attempt_at"),
        _unfinished_index("ix_outbox_messages_unfinished_key", "ordering_key", "id"),
        Index("ix_outbox_messages_ordering", "ordering_key", "id"),
        Index("ix_outbox_messages_account_status", "account_id", "status"),
    )

    account_id: Mapped[int | None] = mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))
    topic: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # One effect, one key: enqueueing the same key twice is a no-op, and handlers pass it to the
    # far side (Idempotency-Key headers, message ids) so a re-delivery is recognised there too.
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    # Messages sharing an ordering key are delivered one at a time, oldest first.
    ordering_key: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # None: the worker's configured bound (settings.outbox.max_attempts).
    max_attempts: Mapped[int | None] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set when a worker claims the message; another worker takes over once it passes.
    locked_until: Mapped[datetime | None]
    claim_token: Mapped[str | None] = mapped_column(String(40))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    dead_at: Mapped[datetime | None]


class DeliveryAttempt(Id, Base):
    __tablename__ = "outbox_attempts"

    message_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("outbox_messages.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(20))  # delivered | retry | dead
    error: Mapped[str | None] = mapped_column(Text)
