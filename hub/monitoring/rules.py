"""Seed 000's question-and-answer rules in one place (MON-4, MON-6, MON-7).

* Who sees a ticket: all users of its object.
* Who sees the description: of an app-created ticket, its author and the object's admins; of a
  ticket from a dispatcher or the monitoring centre, nobody in the app, nor its title: the app
  shows a neutral label (its type) instead.
* Who takes part in the conversation (public comments and files, replies, confirm / reopen,
  DESK-11): the app author, the ticket's contact and the object's admins; plain users of the
  object see the ticket in the list, not what was said about it.
* Who may rate: an app-created ticket only its author; any other only an object admin, once,
  first come first served. Staff record the rating when none of those has the app (issue 12).
* Who gets the rating push: the author of an app-created ticket; otherwise the object's admins.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts.models import AppUser
from hub.people.models import ObjectUser, ObjectUserRole

__all__ = [
    "app_author",
    "app_raters",
    "can_cancel",
    "can_confirm",
    "can_rate",
    "can_reply",
    "client_author",
    "comment_author",
    "description_visible",
    "in_conversation",
    "neutral_title",
    "object_admins",
    "rating_push_recipients",
    "rating_requested",
]

RATEABLE = ("resolved", "closed")
FINAL = ("closed", "cancelled")


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


# MON-4: what the app shows instead of a staff or monitoring title ("Zone 3 sensor disabled,
# back window broken, code 1234" must not reach a phone).
_NEUTRAL_TITLES = {"service": "Service visit", "incident": "Incident", "request": "Request"}


def neutral_title(ticket: Any) -> str:
    """The title as the app shows it: an app ticket's own (fixed) title, else its type."""
    if app_author(ticket) is not None:
        return str(ticket.title)
    return _NEUTRAL_TITLES.get(str(ticket.type), "Service visit")


def comment_author(author_kind: str, author_name: str | None) -> tuple[str, str | None]:
    """Who wrote a comment, as the app shows it: "staff" with the employee's name; "client",
    "partner" or "system" without one (other clients' names stay out of the app)."""
    if author_kind in ("employee", "monitoring"):
        return "staff", author_name
    return ("client" if author_kind == "contact" else author_kind), None


def in_conversation(ticket: Any, contact_id: int, is_admin: bool) -> bool:
    """DESK-11: who reads and writes the ticket's public thread (see the module's rules)."""
    return is_admin or contact_id in (client_author(ticket), ticket.contact_id)


def can_reply(ticket: Any, contact_id: int, is_admin: bool) -> bool:
    return ticket.status not in FINAL and in_conversation(ticket, contact_id, is_admin)


def can_confirm(ticket: Any, contact_id: int, is_admin: bool) -> bool:
    """Confirm (close) or reopen a resolved ticket (DESK-4, DESK-11)."""
    return ticket.status == "resolved" and in_conversation(ticket, contact_id, is_admin)


def client_author(ticket: Any) -> int | None:
    """The contact who created the ticket (in the app or another client channel), if one did."""
    return int(ticket.created_by_id) if ticket.created_by_kind == "contact" and ticket.created_by_id else None


def can_cancel(ticket: Any, contact_id: int) -> bool:
    """DESK-11, seed 002 §16: the author cancels a new ticket nobody has taken yet."""
    return ticket.status == "open" and ticket.responsible_id is None and client_author(ticket) == contact_id


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
    the admins of its object who have an active app login. Empty when nobody in the app may rate
    it: staff may then record it (issue 12: admins without the app left it unclosable)."""
    author = app_author(ticket)
    if author is not None:
        return [author]
    if ticket.object_id is None:
        return []
    admins = await object_admins(session, ticket.account_id, ticket.object_id)
    if not admins:
        return []
    with_app = await session.scalars(
        select(AppUser.contact_id).where(
            AppUser.account_id == ticket.account_id, AppUser.contact_id.in_(admins), AppUser.active.is_(True)
        )
    )
    return sorted(with_app)


def rating_requested(ticket: Any, new_status: str) -> bool:
    """Whether this status change sends the rating request (MON-6)."""
    return new_status == "resolved" and ticket.rating_score is None and ticket.type != "internal"


async def rating_push_recipients(session: AsyncSession, ticket: Any) -> list[int]:
    if app_author(ticket) is None and ticket.object_id is None:
        return [ticket.contact_id] if ticket.contact_id else []
    if app_author(ticket) is None:
        # Every admin is asked, on whatever channel reaches them (e-mail too, without the app).
        return await object_admins(session, ticket.account_id, ticket.object_id)
    return await app_raters(session, ticket)
