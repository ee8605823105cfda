"""Client-app bookkeeping (MON-3). MON-1's repeated requests are told apart by the intake
pipeline (``hub.monitoring.intake``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, Id, PortableId, utcnow

__all__ = ["ActiveAppTicket"]


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
