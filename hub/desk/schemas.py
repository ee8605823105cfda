"""Request and response Structs of the desk (DESK-3..9)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "ActivityRead",
    "CommentCreate",
    "CommentRead",
    "FileRead",
    "HistoryRead",
    "PriorityName",
    "RatingCreate",
    "SourceName",
    "StatusChange",
    "StatusName",
    "TicketCreate",
    "TicketFlags",
    "TicketListItem",
    "TicketRead",
    "TicketUpdate",
    "TypeName",
]

RefId = Annotated[int, msgspec.Meta(ge=1, le=2**62)]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
Text = Annotated[str, msgspec.Meta(max_length=20_000)]
CommentBody = Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]
StatusName = Literal["open", "in_progress", "pending", "resolved", "closed", "cancelled", "reopened"]
TypeName = Literal["service", "incident", "request", "internal"]
PriorityName = Literal["low", "normal", "high", "critical"]
SourceName = Literal[
    "incoming_call",
    "outgoing_call",
    "visit",
    "email",
    "messenger",
    "internal",
    "client_app",
    "monitoring",
    "partner",
    "web",
    "other",
]
Executors = Annotated[list[RefId], msgspec.Meta(max_length=4)]
Observers = Annotated[list[RefId], msgspec.Meta(max_length=50)]
Score = Annotated[int, msgspec.Meta(ge=1, le=5)]


class TicketCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """DESK-3. ``call_id`` binds the ticket to a call (TEL-5); it travels in TicketCreated.context."""

    title: Title
    description: Text = ""
    type: TypeName = "service"
    priority: PriorityName = "normal"
    source: SourceName = "other"
    company_id: RefId | None = None
    contact_id: RefId | None = None
    object_id: RefId | None = None
    responsible_id: RefId | None = None
    executor_ids: Executors = msgspec.field(default_factory=list)
    observer_ids: Observers = msgspec.field(default_factory=list)
    reaction_due_at: datetime | None = None
    resolution_due_at: datetime | None = None
    repair_date: date | None = None
    call_id: RefId | None = None
    operator_name: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class TicketUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """PATCH: only the fields sent change. Base data (type, object, company, contact) may be locked."""

    title: Title | msgspec.UnsetType = msgspec.UNSET
    description: Text | msgspec.UnsetType = msgspec.UNSET
    type: TypeName | msgspec.UnsetType = msgspec.UNSET
    priority: PriorityName | msgspec.UnsetType = msgspec.UNSET
    source: SourceName | msgspec.UnsetType = msgspec.UNSET
    company_id: RefId | msgspec.UnsetType | None = msgspec.UNSET
    contact_id: RefId | msgspec.UnsetType | None = msgspec.UNSET
    object_id: RefId | msgspec.UnsetType | None = msgspec.UNSET
    responsible_id: RefId | msgspec.UnsetType | None = msgspec.UNSET
    executor_ids: Executors | msgspec.UnsetType = msgspec.UNSET
    observer_ids: Observers | msgspec.UnsetType = msgspec.UNSET
    reaction_due_at: datetime | msgspec.UnsetType | None = msgspec.UNSET
    resolution_due_at: datetime | msgspec.UnsetType | None = msgspec.UNSET
    repair_date: date | msgspec.UnsetType | None = msgspec.UNSET


class StatusChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """DESK-4: pending needs ``until`` and a comment; cancelled needs a comment."""

    status: StatusName
    comment: Annotated[str, msgspec.Meta(max_length=20_000)] | None = None
    until: datetime | None = None
    # With ``pending``: staff wait for the client, whose reply returns the ticket (DESK-11).
    waiting_for_client: bool = False


class CommentCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    body: CommentBody
    public: bool = False
    important: bool = False
    # EX-5: the exchange passes the comment on to the partner ticket.
    pass_to_partner: bool = False


class RatingCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    score: Score
    comment: Annotated[str, msgspec.Meta(max_length=5_000)] | None = None


class TicketFlags(msgspec.Struct):
    needs_reply: bool
    important: bool
    sla_reaction_breached: bool
    sla_resolution_breached: bool
    sla_reply_overdue: bool = False  # DESK-5: a client message waits past its reply deadline


class TicketRead(msgspec.Struct):
    id: int
    number: int
    title: str
    description: str
    type: str
    priority: str
    status: str
    source: str
    company_id: int | None
    contact_id: int | None
    object_id: int | None
    responsible_id: int | None
    executor_ids: list[int]
    observer_ids: list[int]
    reaction_due_at: datetime | None
    resolution_due_at: datetime | None
    # DESK-5: the deadline of the earliest client message still waiting for a reply.
    reply_due_at: datetime | None
    repair_date: date | None
    rating_score: int | None
    rating_comment: str | None
    rated_by_kind: str | None
    rated_by_id: int | None
    # MON-7: who rated, by name (a contact or an employee), for the ticket's information.
    rated_by_name: str | None
    created_by_kind: str
    created_by_id: int | None
    operator_name: str | None
    flags: TicketFlags
    ext_flags: dict[str, Any]
    pending_until: datetime | None
    status_before_pending: str | None
    pending_for_client: bool
    pending_seconds: int
    reacted_at: datetime | None
    reaction_seconds: int | None
    resolution_seconds: int | None
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    closed_at: datetime | None


class TicketListItem(msgspec.Struct):
    id: int
    number: int
    title: str
    type: str
    priority: str
    status: str
    source: str
    company_id: int | None
    contact_id: int | None
    object_id: int | None
    responsible_id: int | None
    repair_date: date | None
    rating_score: int | None
    flags: TicketFlags
    ext_flags: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class CommentRead(msgspec.Struct):
    id: int
    ticket_id: int
    body: str
    public: bool
    important: bool
    author_kind: str
    author_id: int | None
    author_name: str | None
    created_at: datetime
    file_ids: list[int] = msgspec.field(default_factory=list)


class FileRead(msgspec.Struct):
    id: int
    ticket_id: int
    comment_id: int | None
    filename: str
    content_type: str
    size: int
    sha256: str
    public: bool
    uploaded_by_kind: str
    created_at: datetime


class HistoryRead(msgspec.Struct):
    id: int
    kind: str
    actor_kind: str
    # Null when the client made the change (DESK-7).
    actor_id: int | None
    actor_name: str | None
    data: dict[str, Any]
    created_at: datetime
    # The current name of every employee the entry names (actor, responsible, executors, observers), by id.
    names: dict[str, str] = msgspec.field(default_factory=dict)


class ActivityRead(msgspec.Struct):
    id: int
    kind: str
    ref_id: int
    summary: str
    data: dict[str, Any]
    created_at: datetime
    ticket_id: int | None = None  # the ticket the entry belongs to (a ticket, rating, invoice, refund)
