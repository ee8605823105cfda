"""What the client app sends and sees (MON-2..7)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import msgspec

__all__ = [
    "AppObjectRead",
    "AppTicketCreate",
    "AppTicketList",
    "AppTicketRead",
    "ObjectHeader",
    "RatingCreate",
]


class AppObjectRead(msgspec.Struct):
    id: int
    number: str
    name: str
    address: str | None
    role: str  # admin | user: the app user's role on the object


class ObjectHeader(msgspec.Struct):
    """The security company's name and phone and the object number (MON-2), present only when
    the company has set its name and phone."""

    company_name: str
    company_phone: str
    object_number: str


class AppTicketRead(msgspec.Struct):
    id: int
    number: int
    # MON-4: a dispatcher's or the monitoring centre's title never reaches the app: its type instead.
    title: str
    status: str
    # What the app shows: "processing" until a dispatcher takes it (seed 000: «Обрабатывается»).
    status_label: str
    source: str
    created_at: datetime
    engineer: str | None
    repair_date: date | None
    rating_score: int | None
    # MON-4: null when this user may not see it.
    description: str | None
    mine: bool
    can_rate: bool
    # DESK-11: what this user may do from the ticket (see /api/app/tickets/{id}/...).
    can_reply: bool = False
    can_confirm: bool = False
    can_cancel: bool = False


class AppTicketList(msgspec.Struct):
    object_id: int
    header: ObjectHeader | None
    tickets: list[AppTicketRead]


class AppTicketCreate(msgspec.Struct, forbid_unknown_fields=True):
    description: Annotated[str, msgspec.Meta(min_length=1, max_length=5000)]


class RatingCreate(msgspec.Struct, forbid_unknown_fields=True):
    score: Annotated[int, msgspec.Meta(ge=1, le=5)]
    comment: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
