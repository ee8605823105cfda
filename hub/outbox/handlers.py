"""The registry of delivery handlers, one per outbox topic."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from hub.db import Database
from hub.settings import Settings

__all__ = [
    "DeliveryContext",
    "Handler",
    "MessageView",
    "PermanentDeliveryError",
    "TransientDeliveryError",
    "handler_for",
    "outbox_handler",
]


class TransientDeliveryError(Exception):
    """The far side may accept the message later (timeout, 5xx, 429, connection refused)."""


class PermanentDeliveryError(Exception):
    """The far side will never accept this message (4xx, unknown recipient): dead-letter it now."""


@dataclass(frozen=True, slots=True)
class MessageView:
    """What a handler sees of a claimed message (no ORM row: handlers hold no session)."""

    id: int
    account_id: int | None
    topic: str
    payload: dict[str, Any]
    idempotency_key: str
    ordering_key: str | None
    attempts: int  # this attempt's number, from 1
    max_attempts: int | None = None


@dataclass(frozen=True, slots=True)
class DeliveryContext:
    db: Database
    settings: Settings
    http: httpx.AsyncClient
    # Lives for one worker round: what a handler read for one message (e.g. the partner
    # connection) serves the round's other messages, instead of a database read each.
    round_cache: dict[object, Any] = field(default_factory=dict)


Handler = Callable[[DeliveryContext, MessageView], Awaitable[None]]
_HANDLERS: dict[str, Handler] = {}


def outbox_handler(topic: str) -> Callable[[Handler], Handler]:
    """Decorator: ``fn`` delivers messages of ``topic``. Returning means delivered."""

    def decorate(fn: Handler) -> Handler:
        if topic in _HANDLERS and _HANDLERS[topic] is not fn:
            raise RuntimeError(f"two outbox handlers for topic {topic!r}")
        _HANDLERS[topic] = fn
        return fn

    return decorate


def handler_for(topic: str) -> Handler | None:
    return _HANDLERS.get(topic)
