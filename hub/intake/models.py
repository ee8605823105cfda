"""The one table every inbound event passes through, whatever its sender."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, Id, JSONType, PortableId, utcnow

__all__ = ["IntakeEvent", "IntakeState"]


class IntakeState(enum.StrEnum):
    PENDING = "pending"  # stored and acknowledged; the worker applies it
    APPLYING = "applying"  # claimed by a worker (until ``locked_until``)
    DONE = "done"  # applied: ``outcome`` says what it did (applied, duplicate, ignored, refused...)
    FAILED = "failed"  # could not be applied within the attempts: an administrator may retry it
    REJECTED = "rejected"  # refused at the door (signature, token, unknown endpoint): never applied


class IntakeEvent(Id, Base):
    """One event as its sender sent it, with what became of it."""

    __tablename__ = "intake_events"
    __table_args__ = (
        # The sender's own key for the event (a provider's event id, a PBX event id): stored once.
        UniqueConstraint("source", "dedupe_key"),
        # The worker reads what is due in id order through this index: no sort of the backlog.
        Index(
            "ix_intake_events_due",
            "id",
            postgresql_where=text("state IN ('pending', 'applying')"),
            sqlite_where=text("state IN ('pending', 'applying')"),
        ),
        Index("ix_intake_events_order", "order_key", "id"),
        Index("ix_intake_events_account", "account_id", "source", "id"),
    )

    source: Mapped[str] = mapped_column(String(40))  # e.g. payments.stripe, telephony, monitoring
    account_id: Mapped[int | None] = mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))
    # The sender's endpoint row (a payment account, a PBX's settings): what verified it.
    endpoint_id: Mapped[int | None] = mapped_column(PortableId)
    dedupe_key: Mapped[str | None] = mapped_column(String(300))
    # What repeats a request byte for byte (a signature): a replayed request, not a redelivery.
    replay_key: Mapped[str | None] = mapped_column(String(128))
    # Events of one key (an invoice, a call, a shared ticket) are applied one at a time, in order.
    order_key: Mapped[str | None] = mapped_column(String(200))
    headers: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    body: Mapped[str] = mapped_column(Text, default="")
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    state: Mapped[str] = mapped_column(String(10), default=IntakeState.PENDING)
    outcome: Mapped[str | None] = mapped_column(String(20))
    error_code: Mapped[str | None] = mapped_column(String(100))
    error_detail: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]
    claim_token: Mapped[str | None] = mapped_column(String(40))
    applied_at: Mapped[datetime | None]
    # What applying produced that others may want (a call id, a ticket id): the source decides.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
