"""Tickets, their executors and observers, comments, files, history and the client activity feed.

DESK-3 (ticket fields), DESK-5 (SLA clock columns), DESK-6 (comments, files), DESK-7 (history,
``ticket_events``) and DESK-8 (``activity_entries``).
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, Id, JSONType, PortableId, utcnow

__all__ = [
    "ActivityEntry",
    "Comment",
    "Priority",
    "Source",
    "Status",
    "Ticket",
    "TicketEvent",
    "TicketExecutor",
    "TicketFile",
    "TicketObserver",
    "TicketType",
]


class Status(enum.StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    PENDING = "pending"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    REOPENED = "reopened"


class TicketType(enum.StrEnum):
    SERVICE = "service"
    INCIDENT = "incident"
    REQUEST = "request"
    INTERNAL = "internal"  # never shown to clients (DESK-3)


class Priority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"


class Source(enum.StrEnum):
    INCOMING_CALL = "incoming_call"
    OUTGOING_CALL = "outgoing_call"
    VISIT = "visit"
    EMAIL = "email"
    MESSENGER = "messenger"
    INTERNAL = "internal"
    CLIENT_APP = "client_app"
    MONITORING = "monitoring"
    PARTNER = "partner"
    WEB = "web"
    OTHER = "other"


def _account_fk() -> Any:
    return mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))


class Ticket(Id, Base):
    __tablename__ = "tickets"
    __table_args__ = (
        # Number lookups (search by number, partner references) are one index probe.
        UniqueConstraint("account_id", "number"),
        # The last 20 tickets of an object (client app MON-2, telephony pop-ups).
        Index("ix_tickets_account_object_created", "account_id", "object_id", "created_at"),
        Index("ix_tickets_account_contact_created", "account_id", "contact_id", "created_at"),
        Index("ix_tickets_account_company_created", "account_id", "company_id", "created_at"),
        # The list (DESK-9) pages by id descending inside an account, usually filtered by status.
        Index("ix_tickets_account_status_id", "account_id", "status", "id"),
        Index("ix_tickets_account_responsible_id", "account_id", "responsible_id", "id"),
        # The sweeper's scans: pending past until, resolved past auto-close, open SLA clocks.
        Index("ix_tickets_status_pending_until", "status", "pending_until"),
        Index("ix_tickets_status_resolved_at", "status", "resolved_at"),
        # SLA flagging walks the running clocks in deadline order (desk_0002).
        Index("ix_tickets_reaction_due_at", "reaction_due_at", "id"),
        Index("ix_tickets_resolution_due_at", "resolution_due_at", "id"),
        # Text search: a trigram GIN index on PostgreSQL (see the desk migration), plain elsewhere.
        Index(
            "ix_tickets_search_text",
            "search_text",
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        ),
        # Text search in descriptions (desk_0006_search); the list sorted by last change.
        Index(
            "ix_tickets_description_trgm",
            "description",
            postgresql_using="gin",
            postgresql_ops={"description": "gin_trgm_ops"},
        ),
        Index("ix_tickets_account_updated_id", "account_id", "updated_at", "id"),
    )

    account_id: Mapped[int] = _account_fk()
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    type: Mapped[str] = mapped_column(String(20), default=TicketType.SERVICE)
    priority: Mapped[str] = mapped_column(String(10), default=Priority.NORMAL)
    status: Mapped[str] = mapped_column(String(20), default=Status.OPEN)
    source: Mapped[str] = mapped_column(String(20), default=Source.OTHER)

    company_id: Mapped[int | None] = mapped_column(
        PortableId, ForeignKey("companies.id", ondelete="SET NULL")
    )
    contact_id: Mapped[int | None] = mapped_column(PortableId, ForeignKey("contacts.id", ondelete="SET NULL"))
    object_id: Mapped[int | None] = mapped_column(
        PortableId, ForeignKey("service_objects.id", ondelete="SET NULL")
    )
    responsible_id: Mapped[int | None] = mapped_column(
        PortableId, ForeignKey("employees.id", ondelete="SET NULL")
    )

    reaction_due_at: Mapped[datetime | None]
    resolution_due_at: Mapped[datetime | None]
    repair_date: Mapped[date | None] = mapped_column(Date)

    rating_score: Mapped[int | None] = mapped_column(Integer)
    rating_comment: Mapped[str | None] = mapped_column(Text)
    rated_by_kind: Mapped[str | None] = mapped_column(String(20))
    rated_by_id: Mapped[int | None] = mapped_column(PortableId)
    rated_at: Mapped[datetime | None]

    created_by_kind: Mapped[str] = mapped_column(String(20), default="system")
    created_by_id: Mapped[int | None] = mapped_column(PortableId)
    created_by_name: Mapped[str | None] = mapped_column(String(200))
    # The monitoring-centre operator who created the ticket (MON-1).
    operator_name: Mapped[str | None] = mapped_column(String(200))

    # List flags (DESK-6, DESK-5, DESK-9).
    needs_reply: Mapped[bool] = mapped_column(Boolean, default=False)
    important: Mapped[bool] = mapped_column(Boolean, default=False)
    sla_reaction_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    sla_resolution_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    # DESK-5 reply clocks (hub/desk/sla): the earliest unanswered client message's deadline, and
    # whether a reply is overdue.
    reply_due_at: Mapped[datetime | None]
    sla_reply_overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    # Flags other domains own (payment: invoice/refund state; partner: partner ticket status).
    ext_flags: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    # DESK-4 pending bookkeeping and DESK-5 clocks.
    status_before_pending: Mapped[str | None] = mapped_column(String(20))
    # Pending because staff wait for the client: the client's reply ends it (DESK-11).
    pending_for_client: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    pending_until: Mapped[datetime | None]
    pending_since: Mapped[datetime | None]
    pending_seconds: Mapped[int] = mapped_column(Integer, default=0)
    reacted_at: Mapped[datetime | None]
    reaction_seconds: Mapped[int | None] = mapped_column(Integer)
    resolution_seconds: Mapped[int | None] = mapped_column(Integer)

    # Lower-cased number, title, client names, object number and address (DESK-9 search).
    search_text: Mapped[str] = mapped_column(String(600), default="")

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]


class TicketExecutor(Base):
    """Up to four executors per ticket besides the responsible (DESK-3)."""

    __tablename__ = "ticket_executors"

    ticket_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    employee_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("employees.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class TicketObserver(Base):
    __tablename__ = "ticket_observers"

    ticket_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    employee_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("employees.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Comment(Id, Base):
    __tablename__ = "ticket_comments"
    __table_args__ = (
        Index("ix_ticket_comments_ticket_id_id", "ticket_id", "id"),
        # Text search finds a ticket by its public comments (desk_0006_search).
        Index(
            "ix_ticket_comments_body_trgm",
            "body",
            postgresql_using="gin",
            postgresql_ops={"body": "gin_trgm_ops"},
        ),
    )

    account_id: Mapped[int] = _account_fk()
    ticket_id: Mapped[int] = mapped_column(PortableId, ForeignKey("tickets.id", ondelete="CASCADE"))
    body: Mapped[str] = mapped_column(Text)
    public: Mapped[bool] = mapped_column(Boolean)
    important: Mapped[bool] = mapped_column(Boolean, default=False)
    author_kind: Mapped[str] = mapped_column(String(20))  # employee | contact | partner | system | monitoring
    author_id: Mapped[int | None] = mapped_column(PortableId)
    author_name: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TicketFile(Id, Base):
    """A file on a ticket or on one of its comments; bytes live under settings.files_dir."""

    __tablename__ = "ticket_files"
    __table_args__ = (Index("ix_ticket_files_ticket_id_id", "ticket_id", "id"),)

    account_id: Mapped[int] = _account_fk()
    ticket_id: Mapped[int] = mapped_column(PortableId, ForeignKey("tickets.id", ondelete="CASCADE"))
    comment_id: Mapped[int | None] = mapped_column(
        PortableId, ForeignKey("ticket_comments.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    # Relative to settings.files_dir: "<account_id>/<ticket_id>/<uuid>".
    storage_path: Mapped[str] = mapped_column(String(300))
    public: Mapped[bool] = mapped_column(Boolean, default=True)
    uploaded_by_kind: Mapped[str] = mapped_column(String(20))
    uploaded_by_id: Mapped[int | None] = mapped_column(PortableId)
    uploaded_by_name: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TicketEvent(Id, Base):
    """One line of a ticket's history (DESK-7)."""

    __tablename__ = "ticket_events"
    __table_args__ = (Index("ix_ticket_events_ticket_id_id", "ticket_id", "id"),)

    account_id: Mapped[int] = _account_fk()
    ticket_id: Mapped[int] = mapped_column(PortableId, ForeignKey("tickets.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(50))
    actor_kind: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[int | None] = mapped_column(PortableId)
    actor_name: Mapped[str | None] = mapped_column(String(300))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ActivityEntry(Id, Base):
    """One line of a contact's activity feed (DESK-8): tickets, ratings, calls, payments, refunds."""

    __tablename__ = "activity_entries"
    __table_args__ = (
        Index("ix_activity_entries_contact_created", "account_id", "contact_id", "created_at", "id"),
    )

    account_id: Mapped[int] = _account_fk()
    contact_id: Mapped[int] = mapped_column(PortableId, ForeignKey("contacts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(30))
    ref_id: Mapped[int] = mapped_column(PortableId)
    # The ticket the entry belongs to (a ticket, its rating, invoice or refund), so the feed shows
    # an engineer only the entries of tickets they may see (DESK-12).
    ticket_id: Mapped[int | None] = mapped_column(PortableId)
    summary: Mapped[str] = mapped_column(String(500))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
