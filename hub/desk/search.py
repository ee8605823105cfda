"""DESK-9 text search and the ticket list's orders.

Text is looked for in the composed search text (number, title, client, company, object), in the
description and in public comments. Each is one trigram-indexed ILIKE on PostgreSQL (desk_0006_search);
their ticket ids are united first so each branch uses its own index.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import case, select, union

from hub.desk.models import Comment, Ticket
from hub.paging import Key, Order

__all__ = ["TICKET_ORDERS", "TicketSort", "text_condition"]

_PRIORITY_RANK = {"low": 0, "normal": 1, "high": 2, "critical": 3}
_priority_rank = case(_PRIORITY_RANK, value=Ticket.priority, else_=1)
_important_rank = case((Ticket.important.is_(True), 1), else_=0)


def _like(text: str) -> str:
    escaped = text.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{escaped}%"


def text_condition(account_id: int, text: str) -> Any:
    """Tickets of the account whose search text, description or a public comment contains ``text``."""
    pattern = _like(text.lower())
    in_search_text = select(Ticket.id).where(
        Ticket.account_id == account_id, Ticket.search_text.like(pattern, escape="/")
    )
    in_description = select(Ticket.id).where(
        Ticket.account_id == account_id, Ticket.description.ilike(pattern, escape="/")
    )
    in_comments = select(Comment.ticket_id).where(
        Comment.account_id == account_id, Comment.public.is_(True), Comment.body.ilike(pattern, escape="/")
    )
    return Ticket.id.in_(union(in_search_text, in_description, in_comments))


def _ticket_id(ticket: Ticket) -> int:
    return ticket.id


def _orders() -> dict[str, Order]:
    by_id = Key(Ticket.id, _ticket_id)
    id_desc = Key(Ticket.id, _ticket_id, descending=True)
    orders = {
        # Ids are given in creation order: newest first is by id, on the list's own indexes.
        "created_at": (by_id,),
        "-created_at": (id_desc,),
        "updated_at": (Key(Ticket.updated_at, lambda t: t.updated_at, is_time=True), by_id),
        "-updated_at": (
            Key(Ticket.updated_at, lambda t: t.updated_at, descending=True, is_time=True),
            id_desc,
        ),
        "number": (Key(Ticket.number, lambda t: t.number), by_id),
        "-number": (Key(Ticket.number, lambda t: t.number, descending=True), id_desc),
        "priority": (Key(_priority_rank, lambda t: _PRIORITY_RANK.get(t.priority, 1)), by_id),
        "-priority": (
            Key(_priority_rank, lambda t: _PRIORITY_RANK.get(t.priority, 1), descending=True),
            id_desc,
        ),
        # DESK-6/9: tickets with an unseen important comment on top, newest first within.
        # (as 1/0: a cursor carries numbers and strings, and both databases compare integers alike)
        "important_first": (Key(_important_rank, lambda t: int(bool(t.important)), descending=True), id_desc),
    }
    return {name: Order(name, keys) for name, keys in orders.items()}


TICKET_ORDERS = _orders()
# The ticket list's ``sort`` values; ``-`` is descending. Default ``-created_at`` (newest first).
TicketSort = Literal[
    "-created_at", "created_at", "-updated_at", "updated_at", "-number", "number", "-priority", "priority"
]
