"""Outbox Structs for the administrators' view of deliveries and dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

__all__ = ["AttemptRead", "OutboxMessageDetail", "OutboxMessageRead"]


class OutboxMessageRead(msgspec.Struct):
    id: int
    topic: str
    idempotency_key: str
    ordering_key: str | None
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    dead_at: datetime | None


class AttemptRead(msgspec.Struct):
    attempt: int
    started_at: datetime
    finished_at: datetime
    outcome: str
    error: str | None


class OutboxMessageDetail(msgspec.Struct):
    message: OutboxMessageRead
    payload: dict[str, Any]
    attempts: list[AttemptRead]
