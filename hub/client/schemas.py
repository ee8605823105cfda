"""What the client app sends and reads in a ticket's conversation (DESK-11)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

__all__ = ["ClientCommentRead", "ClientFileRead", "ClientReply", "ClientStatusNote"]

Body = Annotated[str, msgspec.Meta(min_length=1, max_length=5000)]


class ClientReply(msgspec.Struct, forbid_unknown_fields=True):
    body: Body


class ClientStatusNote(msgspec.Struct, forbid_unknown_fields=True):
    """Why the client reopens or cancels (optional; a reopening's note becomes a public reply)."""

    comment: Body | None = None


class ClientFileRead(msgspec.Struct):
    id: int
    comment_id: int | None
    filename: str
    content_type: str
    size: int
    mine: bool
    created_at: datetime


class ClientCommentRead(msgspec.Struct):
    id: int
    body: str
    # "staff" (the company's employees), "client" (this or another client), "partner", "system".
    author: str
    # Staff names only: other clients' and partners' names stay out of the app.
    author_name: str | None
    mine: bool
    created_at: datetime
    files: list[ClientFileRead] = msgspec.field(default_factory=list)
