"""Domain events of the desk, delivered to subscribers inside the same transaction.

Other domains react here instead of the desk knowing them: the exchange mirrors comments and
status to partners, telephony binds calls, notifications queue outbox messages, the client app
pushes live updates. Subscribers must not commit; anything that leaves the process goes through
the outbox (``hub.outbox.enqueue``) or ``hub.db.after_commit``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from hub.desk.actors import Actor

if TYPE_CHECKING:
    from hub.desk.models import Comment, Ticket

__all__ = [
    "CommentAdded",
    "DeskEvent",
    "StatusChanged",
    "TicketCreated",
    "TicketUpdated",
    "add_subscriber",
    "emit",
    "event_type_of",
    "subscriber",
]


@dataclass(frozen=True)
class DeskEvent:
    ticket: Ticket
    actor: Actor


@dataclass(frozen=True)
class TicketCreated(DeskEvent):
    # Extra request data other domains act on (e.g. ``call_id`` for telephony binding, TEL-5).
    context: dict[str, Any] = field(default_factory=dict)
    # Read or known while the ticket was created, handed on so no subscriber reads them again.
    executor_ids: tuple[int, ...] = ()
    observer_ids: tuple[int, ...] = ()
    responsible_name: str | None = None
    object_user_ids: tuple[int, ...] = ()  # the contacts using the ticket's object (MON-4)


@dataclass(frozen=True)
class StatusChanged(DeskEvent):
    old_status: str = ""
    new_status: str = ""
    comment: str | None = None


@dataclass(frozen=True)
class CommentAdded(DeskEvent):
    comment: Comment | None = None
    # Extra request data, e.g. ``pass_to_partner`` for the exchange (EX-5).
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TicketUpdated(DeskEvent):
    # field name -> (old, new); e.g. responsible_id, executor_ids, repair_date, rating
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)


E = TypeVar("E", bound=DeskEvent)
Subscriber = Callable[[AsyncSession, Any], Awaitable[None]]
_subscribers: dict[type[DeskEvent], list[Subscriber]] = {}


_EVENT_MARK = "desk_event_type"


def subscriber(event_type: type[E]) -> Callable[[Callable[[AsyncSession, E], Awaitable[None]]], Any]:
    """Decorator: mark ``fn(session, event)`` as a subscriber to ``event_type`` (subclasses too).

    It only marks: :func:`add_subscriber` (called by ``hub.wiring``) makes it receive events."""

    def mark(fn: Callable[[AsyncSession, E], Awaitable[None]]) -> Any:
        setattr(fn, _EVENT_MARK, event_type)
        return fn

    return mark


def event_type_of(fn: Subscriber) -> type[DeskEvent] | None:
    """The event type ``fn`` was marked for with :func:`subscriber`, if any."""
    event_type = getattr(fn, _EVENT_MARK, None)
    return event_type if isinstance(event_type, type) and issubclass(event_type, DeskEvent) else None


def add_subscriber(fn: Subscriber) -> None:
    """Call ``fn`` for its marked event type, after the subscribers added before it; adding it
    again is a no-op."""
    event_type = event_type_of(fn)
    if event_type is None:
        raise TypeError(f"{fn.__qualname__} is not marked with @subscriber(event_type)")
    subscribers = _subscribers.setdefault(event_type, [])
    if fn not in subscribers:
        subscribers.append(fn)


async def emit(session: AsyncSession, event: DeskEvent) -> None:
    for event_type, subscribers in list(_subscribers.items()):
        if isinstance(event, event_type):
            for subscriber in list(subscribers):
                await subscriber(session, event)
