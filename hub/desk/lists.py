"""The ticket's own lists as pages (comments, files, history) and a contact's activity feed.

Comments, files and history read oldest first (a conversation), the activity feed newest first by
time. History entries name the employees they mention next to their ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts.models import Employee
from hub.desk.models import ActivityEntry, Comment, TicketEvent, TicketFile
from hub.desk.service import get_ticket
from hub.errors import NotFound
from hub.paging import Key, Order, by_id, fetch_page
from hub.people.models import Contact

__all__ = [
    "activity_page",
    "comments_page",
    "employee_names",
    "file_ids_of",
    "files_page",
    "history_page",
    "mentioned_employees",
]

COMMENT_ORDER = by_id(Comment.id)
FILE_ORDER = by_id(TicketFile.id)
HISTORY_ORDER = by_id(TicketEvent.id)
# Entries may carry an earlier time than their id suggests (a call logged when it ends).
ACTIVITY_ORDER = Order(
    "-created_at",
    (
        Key(ActivityEntry.created_at, lambda e: e.created_at, descending=True, is_time=True),
        Key(ActivityEntry.id, lambda e: e.id, descending=True),
    ),
)
# History data keys that hold employee ids (one id, or a list of ids).
_EMPLOYEE_KEYS = ("responsible_id", "executor_ids", "observer_ids")

Rows = tuple[list[Any], str | None]


async def comments_page(
    session: AsyncSession, account_id: int, ticket_id: int, *, cursor: str | None, limit: int
) -> Rows:
    await get_ticket(session, account_id, ticket_id)
    query = select(Comment).where(Comment.account_id == account_id, Comment.ticket_id == ticket_id)
    return await fetch_page(session, query, COMMENT_ORDER, cursor=cursor, limit=limit)


async def files_page(
    session: AsyncSession, account_id: int, ticket_id: int, *, cursor: str | None, limit: int
) -> Rows:
    await get_ticket(session, account_id, ticket_id)
    query = select(TicketFile).where(TicketFile.account_id == account_id, TicketFile.ticket_id == ticket_id)
    return await fetch_page(session, query, FILE_ORDER, cursor=cursor, limit=limit)


async def history_page(
    session: AsyncSession, account_id: int, ticket_id: int, *, cursor: str | None, limit: int
) -> Rows:
    await get_ticket(session, account_id, ticket_id)
    query = select(TicketEvent).where(
        TicketEvent.account_id == account_id, TicketEvent.ticket_id == ticket_id
    )
    return await fetch_page(session, query, HISTORY_ORDER, cursor=cursor, limit=limit)


async def activity_page(
    session: AsyncSession,
    account_id: int,
    contact_id: int,
    *,
    cursor: str | None,
    limit: int,
    visible: Any = None,
) -> Rows:
    """``visible``: the caller's condition on the entries' tickets (DESK-12)."""
    contact = await session.get(Contact, contact_id)
    if contact is None or contact.account_id != account_id:
        raise NotFound("No such contact", code="contact_not_found")
    query = select(ActivityEntry).where(
        ActivityEntry.account_id == account_id, ActivityEntry.contact_id == contact_id
    )
    if visible is not None:
        query = query.where(visible)
    return await fetch_page(session, query, ACTIVITY_ORDER, cursor=cursor, limit=limit)


async def file_ids_of(session: AsyncSession, account_id: int, comment_ids: list[int]) -> dict[int, list[int]]:
    """The files attached to each of these comments, by comment id."""
    if not comment_ids:
        return {}
    rows = await session.execute(
        select(TicketFile.comment_id, TicketFile.id)
        .where(TicketFile.account_id == account_id, TicketFile.comment_id.in_(comment_ids))
        .order_by(TicketFile.id)
    )
    by_comment: dict[int, list[int]] = {}
    for comment_id, file_id in rows:
        if comment_id is not None:
            by_comment.setdefault(comment_id, []).append(file_id)
    return by_comment


def mentioned_employees(event: TicketEvent) -> set[int]:
    """The employee ids a history entry names: its actor and any assignment it records."""
    ids: set[int] = set()
    if event.actor_kind == "employee" and event.actor_id is not None:
        ids.add(event.actor_id)
    for key in _EMPLOYEE_KEYS:
        ids.update(_ints((event.data or {}).get(key)))
    return ids


def _ints(value: Any) -> list[int]:
    """The ids in a history value: one id, a list of ids, or a [before, after] pair of either."""
    if isinstance(value, list):
        return [i for item in value for i in _ints(item)]
    return [value] if isinstance(value, int) and not isinstance(value, bool) else []


async def employee_names(session: AsyncSession, account_id: int, ids: Iterable[int]) -> dict[int, str]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await session.execute(
        select(Employee.id, Employee.name).where(Employee.account_id == account_id, Employee.id.in_(wanted))
    )
    return {row.id: row.name for row in rows}
