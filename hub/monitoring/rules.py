"""Seed 000's question-and-answer rules in one place (MON-4, MON-6, MON-7).

* Who sees a ticket: all users of its object.
* Who sees the description: of an app-created ticket, its author and the object's admins; of a
  ticket from a dispatcher or the monitoring centre, nobody in the app.
* Who may rate: an app-created ticket only its author; any other only an object admin, once,
  first come first served.
* Who gets the rating push: the author of an app-created ticket; otherwise the object's admins.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.people.models import ObjectUser, ObjectUserRole

__all__ = [
    "app_author",
    "app_raters",
    "can_rate",
    "description_visible",
    "object_admins",
    "rating_push_recipients",
    "rating_requested",
]

RATEABLE = ("resolved", "closed")


def app_author(ticket: Any) -> int | None:
    """The contact who created the ticket in the app, or None for other sources."""
    if ticket.source == "client_app" and ticket.created_by_kind == "contact":
        return int(ticket.created_by_id) if ticket.created_by_id is not None else None
    return None


def description_visible(ticket: Any, contact_id: int, is_admin: bool) -> bool:
    author = app_author(ticket)
    if author is None:
        return False  # dispatcher / monitoring tickets: nobody, for safety
    return author == contact_id or is_admin


def can_rate(ticket: Any, contact_id: int, is_admin: bool) -> bool:
    if ticket.rating_score is not None or ticket.status not in RATEABLE:
        return False
    author = app_author(ticket)
    return author == contact_id if author is not None else is_admin


async def object_admins(session: AsyncSession, account_id: int, object_id: int) -> list[int]:
    rows = await session.scalars(
        select(ObjectUser.contact_id)
        .where(
            ObjectUser.account_id == account_id,
            ObjectUser.object_id == object_id,
            ObjectUser.role == ObjectUserRole.ADMIN,
        )
        .order_by(ObjectUser.contact_id)
    )
    return list(rows)


async def app_raters(session: AsyncSession, ticket: Any) -> list[int]:
    """The app users whom the rating belongs to: the author of an app-created ticket, otherwise
    the admins of its object. Empty when nobody in the app may rate it (staff may then record it)."""
    author = app_author(ticket)
    if author is not None:
        return [author]
    if ticket.object_id is not None:
        return await object_admins(session, ticket.account_id, ticket.object_id)
    return []


def rating_requested(ticket: Any, new_status: str) -> bool:
    """Whether this status change sends the rating request (MON-6)."""
    return new_status == "resolved" and ticket.rating_score is None and ticket.type != "internal"


async def rating_push_recipients(session: AsyncSession, ticket: Any) -> list[int]:
    if app_author(ticket) is None and ticket.object_id is None:
        return [ticket.contact_id] if ticket.contact_id else []
    return await app_raters(session, ticket)
