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
    "register_handler",
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
_TOPIC_MARK = "outbox_topic"


def outbox_handler(topic: str) -> Callable[[Handler], Handler]:
    """Decorator: mark ``fn`` as the delivery of ``topic`` messages (returning means delivered).

    It only marks: :func:`register_handler` (called by ``hub.wiring``) makes it deliver."""

    def mark(fn: Handler) -> Handler:
        setattr(fn, _TOPIC_MARK, topic)
        return fn

    return mark


def topic_of(handler: Handler) -> str | None:
    """The topic ``handler`` was marked for with :func:`outbox_handler`, if any."""
    topic = getattr(handler, _TOPIC_MARK, None)
    return topic if isinstance(topic, str) else None


def register_handler(handler: Handler) -> None:
    """Deliver the marked topic's messages with ``handler``; registering it again is a no-op."""
    topic = topic_of(handler)
    if topic is None:
        raise TypeError(f"{handler.__qualname__} is not marked with @outbox_handler(topic)")
    if _HANDLERS.setdefault(topic, handler) is not handler:
        raise RuntimeError(f"two outbox handlers for topic {topic!r}")


def handler_for(topic: str) -> Handler | None:
    return _HANDLERS.get(topic)
