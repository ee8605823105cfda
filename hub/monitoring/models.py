"""Client-app and monitoring-centre bookkeeping (MON-1, MON-3)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, Id, PortableId, utcnow

__all__ = ["ActiveAppTicket", "MonitoringRequest"]


class ActiveAppTicket(Id, Base):
    """The one active app ticket of a user on an object (MON-3).

    The unique constraint is the lock: of two concurrent creates only one row can exist, on both
    engines, with no read-then-write race. The row goes away when its ticket is resolved,
    closed or cancelled, and comes back if it is reopened.
    """

    __tablename__ = "app_active_tickets"
    __table_args__ = (UniqueConstraint("account_id", "object_id", "contact_id"),)

    account_id: Mapped[int] = mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))
    object_id: Mapped[int] = mapped_column(PortableId, ForeignKey("service_objects.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(PortableId, ForeignKey("contacts.id", ondelete="CASCADE"))
    ticket_id: Mapped[int | None] = mapped_column(
        PortableId, ForeignKey("tickets.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MonitoringRequest(Id, Base):
    """An Idempotency-Key seen from the monitoring software, and the ticket it created (MON-1)."""

    __tablename__ = "monitoring_requests"
    __table_args__ = (UniqueConstraint("account_id", "idempotency_key"),)

    account_id: Mapped[int] = mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    body_hash: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[int | None] = mapped_column(PortableId, ForeignKey("tickets.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
