"""What each kind of sender plugs into the intake pipeline: how its stored events are applied."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from hub.jobs import JobContext

__all__ = [
    "Applied",
    "EventView",
    "IntakeSource",
    "SetApplier",
    "TransientApplyError",
    "register_source",
    "source_for",
]


@dataclass(frozen=True, slots=True)
class EventView:
    """A stored event as the worker hands it to its source (a plain value: no session needed)."""

    id: int
    source: str
    account_id: int | None
    endpoint_id: int | None
    dedupe_key: str | None
    replay_key: str | None
    order_key: str | None
    headers: dict[str, Any]
    body: str
    remote_addr: str | None
    received_at: datetime
    attempts: int


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying one event did. ``outcome`` is the source's word (applied, duplicate, ignored,
    rejected, ...); ``code``/``detail`` say why an event changed nothing; ``result`` is kept on
    the event for whoever waits for it (an inline caller, an administrator)."""

    outcome: str = "applied"
    code: str | None = None
    detail: str | None = None
    result: dict[str, Any] | None = None


class TransientApplyError(Exception):
    """The event cannot be applied now (a provider's API is down): tried again later, bounded."""


class IntakeSource(Protocol):
    """``prepare`` runs with no database session open (it may call a provider's API, e.g. to
    confirm a payment); ``apply`` runs in the worker's transaction, inside a savepoint of its own,
    and must not commit. When either raises, the savepoint is undone and ``refused`` may turn the
    exception into the event's outcome (a refusal by the domain's rules, recorded in its own log);
    ``None`` makes it a failed attempt, tried again later (bounded) and then shown as failed."""

    name: str

    async def prepare(self, ctx: JobContext, event: EventView) -> Any: ...

    async def apply(
        self, session: AsyncSession, ctx: JobContext, event: EventView, prepared: Any
    ) -> Applied: ...

    async def refused(
        self, session: AsyncSession, ctx: JobContext, event: EventView, exc: Exception
    ) -> Applied | None: ...


class SetApplier(Protocol):
    """Optional for a source: ``apply_many`` applies, in a few set-based statements, those of a
    batch's prepared events it can without changing what one-by-one application in id order
    would do (say, events whose keys no other event of the batch shares), and returns their
    outcomes by event id. It runs in a savepoint before the rest; the events it does not answer
    (or all, when it raises) are applied one by one after it."""

    async def apply_many(
        self, session: AsyncSession, ctx: JobContext, items: Sequence[tuple[EventView, Any]]
    ) -> dict[int, Applied]: ...


_SOURCES: dict[str, IntakeSource] = {}


def register_source(source: IntakeSource) -> None:
    """Sources are named by the first part of an event's source: ``payments`` applies
    ``payments.stripe`` and ``payments.yookassa`` alike. Registering a name again replaces it
    (``hub.wiring`` registers each once per app; tests register probes of their own)."""
    _SOURCES[source.name] = source


def source_for(event_source: str) -> IntakeSource | None:
    return _SOURCES.get(event_source.split(".", 1)[0])
