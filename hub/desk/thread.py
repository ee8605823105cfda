"""The comment thread also shows what was said with a status change (issue 12).

A status change may carry a comment (a pending reason, why a ticket is reopened). It is kept in the
history entry and added to the thread as a comment: public when the client said it, an internal
note when staff did (the status change's own notifications already carry it, so no second
``CommentAdded`` is emitted for it).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from hub.desk.actors import Actor
from hub.desk.models import Comment, Ticket

__all__ = ["add_status_comment"]


def add_status_comment(
    session: AsyncSession, ticket: Ticket, actor: Actor, comment: str, now: datetime
) -> None:
    session.add(
        Comment(
            account_id=ticket.account_id,
            ticket_id=ticket.id,
            body=comment,
            public=actor.is_client,
            important=False,
            author_kind=actor.kind,
            author_id=actor.id,
            author_name=actor.name,
            created_at=now,
        )
    )
