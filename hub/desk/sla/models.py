"""SLA settings, rules, holidays, per-message reply clocks and deadline overrides (DESK-5)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, Id, JSONType, PortableId, utcnow

__all__ = ["DEFAULT_REPLY_MINUTES", "SlaHoliday", "SlaOverride", "SlaReplyClock", "SlaRule", "SlaSettings"]

# "The reply deadline is 3 days by default" (seed 001).
DEFAULT_REPLY_MINUTES = 3 * 24 * 60


def _account_fk(**kw: Any) -> Any:
    return mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"), **kw)


class SlaSettings(Base):
    """An account's working hours and its default targets (used when no rule matches)."""

    __tablename__ = "sla_settings"

    account_id: Mapped[int] = _account_fk(primary_key=True)
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    # {"mon": [["09:00", "18:00"]], ...}; NULL: round the clock.
    week: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    reaction_minutes: Mapped[int | None] = mapped_column(Integer)
    resolution_minutes: Mapped[int | None] = mapped_column(Integer)
    reply_minutes: Mapped[int | None] = mapped_column(Integer, default=DEFAULT_REPLY_MINUTES)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SlaRule(Id, Base):
    """Targets for the tickets it matches; a condition left NULL matches anything. The first
    matching rule in (position, id) order wins."""

    __tablename__ = "sla_rules"
    __table_args__ = (Index("ix_sla_rules_account_position", "account_id", "position", "id"),)

    account_id: Mapped[int] = _account_fk()
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    ticket_type: Mapped[str | None] = mapped_column(String(20))
    priority: Mapped[str | None] = mapped_column(String(10))
    client_category: Mapped[str | None] = mapped_column(String(100))
    # A rule about a company or object goes with it (SET NULL would widen it to everyone).
    company_id: Mapped[int | None] = mapped_column(PortableId, ForeignKey("companies.id", ondelete="CASCADE"))
    object_id: Mapped[int | None] = mapped_column(
        PortableId, ForeignKey("service_objects.id", ondelete="CASCADE")
    )
    reaction_minutes: Mapped[int | None] = mapped_column(Integer)
    resolution_minutes: Mapped[int | None] = mapped_column(Integer)
    reply_minutes: Mapped[int | None] = mapped_column(Integer)
    # False: the targets run round the clock (holidays and working hours ignored).
    working_hours: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SlaHoliday(Id, Base):
    """A non-working date in the account's time zone."""

    __tablename__ = "sla_holidays"
    __table_args__ = (UniqueConstraint("account_id", "day"),)

    account_id: Mapped[int] = _account_fk()
    day: Mapped[date] = mapped_column(Date)
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SlaReplyClock(Id, Base):
    """The reply deadline of one client message; answered by the next public staff reply."""

    __tablename__ = "sla_reply_clocks"
    __table_args__ = (
        # The sweeper walks unanswered clocks in deadline order.
        Index("ix_sla_reply_clocks_due", "due_at", "id"),
        Index("ix_sla_reply_clocks_ticket", "ticket_id", "id"),
    )

    account_id: Mapped[int] = _account_fk()
    ticket_id: Mapped[int] = mapped_column(PortableId, ForeignKey("tickets.id", ondelete="CASCADE"))
    comment_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("ticket_comments.id", ondelete="CASCADE"), index=True
    )
    due_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]
    breached: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SlaOverride(Base):
    """Which of a ticket's deadlines staff set by hand: recomputation leaves those alone."""

    __tablename__ = "sla_overrides"

    ticket_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[int] = _account_fk(index=True)
    reaction: Mapped[bool] = mapped_column(Boolean, default=False)
    resolution: Mapped[bool] = mapped_column(Boolean, default=False)
