"""MON-8 tables: panels' account numbers on objects, every event received, the open alarm ticket
of each object, an account's event rules and the account numbers nobody knows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, Id, JSONType, PortableId, utcnow

__all__ = ["AlarmAccount", "AlarmEvent", "AlarmRule", "AlarmTicket", "UnknownAlarmAccount"]


class AlarmAccount(Id, Base):
    """A panel's account number on a service object. ``receiver``/``line`` empty: any prefix.

    The number is unique across the hub for one receiver/line prefix: the receiver listens for
    every company at once, so two companies' panels with one number need different prefixes."""

    __tablename__ = "alarm_accounts"
    __table_args__ = (UniqueConstraint("number", "receiver", "line"),)

    account_id: Mapped[int] = mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))
    object_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("service_objects.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[str] = mapped_column(String(16))
    receiver: Mapped[str] = mapped_column(String(6), default="")
    line: Mapped[str] = mapped_column(String(6), default="")
    key_hex: Mapped[str | None] = mapped_column(String(64))  # AES key; set: the panel must encrypt
    # When the last open trouble of its ticket is restored, the ticket is resolved by itself.
    resolve_on_restore: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AlarmEvent(Id, Base):
    """Every event a panel sent and the hub acknowledged, with what it did."""

    __tablename__ = "alarm_events"
    __table_args__ = (Index("ix_alarm_events_object", "account_id", "object_id", "id"),)

    account_id: Mapped[int] = mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))
    object_id: Mapped[int] = mapped_column(PortableId, ForeignKey("service_objects.id", ondelete="CASCADE"))
    alarm_account_id: Mapped[int | None] = mapped_column(
        PortableId, ForeignKey("alarm_accounts.id", ondelete="SET NULL")
    )
    intake_event_id: Mapped[int | None] = mapped_column(PortableId)
    panel_account: Mapped[str] = mapped_column(String(16))
    protocol: Mapped[str] = mapped_column(String(3))  # cid | sia
    code: Mapped[str] = mapped_column(String(8))  # the rule's code (a SIA restore: the trouble's)
    sent_code: Mapped[str] = mapped_column(String(8))
    restore: Mapped[bool] = mapped_column(Boolean, default=False)
    kind: Mapped[str] = mapped_column(String(20))  # trouble | alarm | opening_closing | test | other
    label: Mapped[str] = mapped_column(String(120))
    zone: Mapped[str] = mapped_column(String(8), default="")
    partition: Mapped[str] = mapped_column(String(8), default="")
    sent_at: Mapped[datetime | None]  # the panel's timestamp
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    raw: Mapped[str] = mapped_column(Text)
    ticket_id: Mapped[int | None] = mapped_column(PortableId, ForeignKey("tickets.id", ondelete="SET NULL"))
    # opened | folded | restored | resolved | logged (no ticket)
    outcome: Mapped[str] = mapped_column(String(20))


class AlarmTicket(Id, Base):
    """The alarm ticket of an object. One row per object: the unique constraint is what makes
    two concurrent troubles of one object open one ticket. ``troubles``: the ticket's troubles by
    key (protocol:code:zone) with count, first and last time and whether still open."""

    __tablename__ = "alarm_tickets"
    __table_args__ = (UniqueConstraint("object_id"),)

    account_id: Mapped[int] = mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))
    object_id: Mapped[int] = mapped_column(PortableId, ForeignKey("service_objects.id", ondelete="CASCADE"))
    ticket_id: Mapped[int] = mapped_column(PortableId, ForeignKey("tickets.id", ondelete="CASCADE"))
    troubles: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AlarmRule(Id, Base):
    """An account's own word on one code: whether it opens a service ticket (else the default)."""

    __tablename__ = "alarm_rules"
    __table_args__ = (UniqueConstraint("account_id", "protocol", "code"),)

    account_id: Mapped[int] = mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))
    protocol: Mapped[str] = mapped_column(String(3))
    code: Mapped[str] = mapped_column(String(8))
    opens_ticket: Mapped[bool] = mapped_column(Boolean)


class UnknownAlarmAccount(Id, Base):
    """A panel account number the receiver was sent but nobody has set up (answered DUH)."""

    __tablename__ = "alarm_unknown_accounts"
    __table_args__ = (UniqueConstraint("number", "receiver", "line"),)

    number: Mapped[str] = mapped_column(String(16))
    receiver: Mapped[str] = mapped_column(String(6))
    line: Mapped[str] = mapped_column(String(6))
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    count: Mapped[int] = mapped_column(Integer, default=1)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    last_frame: Mapped[str] = mapped_column(Text, default="")
