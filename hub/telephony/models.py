"""Telephony tables: per-account PBX settings, calls, their raw events and ticket bindings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, Id, JSONType, PortableId, utcnow

__all__ = ["Call", "CallEventLog", "CallTicket", "TelephonySettings"]


class TelephonySettings(Id, Base):
    """TEL-1: one row per account that connected a PBX."""

    __tablename__ = "telephony_settings"

    account_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("accounts.id", ondelete="CASCADE"), unique=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # The PBX token is shown once when generated; only its hash is kept (it is looked up by hash).
    token_hash: Mapped[str | None] = mapped_column(String(128), unique=True)
    token_hint: Mapped[str | None] = mapped_column(String(12))
    # Click-to-call (TEL-7): where and how the hub asks the PBX to originate a call.
    originate_url: Mapped[str | None] = mapped_column(String(2000))
    originate_auth: Mapped[str] = mapped_column(String(10), default="none")  # none | basic | bearer
    originate_username: Mapped[str | None] = mapped_column(String(200))
    # Needed in clear to call the PBX; never returned by the API.
    originate_secret: Mapped[str | None] = mapped_column(String(500))
    match_digits: Mapped[int] = mapped_column(Integer, default=10)
    region: Mapped[str] = mapped_column(String(2), default="RU")
    # A call with no hangup after this long is closed by the sweeper.
    stale_call_minutes: Mapped[int] = mapped_column(Integer, default=240)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Call(Id, Base):
    """One call, built from its events whatever order they came in (TEL-2, TEL-6)."""

    __tablename__ = "calls"
    __table_args__ = (
        # A PBX that restarts its call-id counter sends an id again for a new call: the id's next
        # generation (hub.telephony.service.CALL_ID_REUSE_AFTER).
        UniqueConstraint("account_id", "external_id", "generation"),
        Index("ix_calls_account_started", "account_id", "started_at"),
        Index("ix_calls_open", "status", "started_at"),
    )

    account_id: Mapped[int] = mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(250))
    generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    status: Mapped[str] = mapped_column(String(10))  # requested | ringing | answered | ended
    from_number: Mapped[str | None] = mapped_column(String(64))
    to_number: Mapped[str | None] = mapped_column(String(64))
    # The outside party's number (from for incoming, to for outgoing), as E.164 where possible.
    client_number: Mapped[str | None] = mapped_column(String(64))
    ringing_extensions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    answered_extension: Mapped[str | None] = mapped_column(String(20))
    # The answering employee (incoming) or the calling one (outgoing).
    employee_id: Mapped[int | None] = mapped_column(
        PortableId, ForeignKey("employees.id", ondelete="SET NULL"), index=True
    )
    # TEL-3: every company / contact whose number matched, and the first of each kind.
    matches: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    contact_id: Mapped[int | None] = mapped_column(
        PortableId, ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    company_id: Mapped[int | None] = mapped_column(
        PortableId, ForeignKey("companies.id", ondelete="SET NULL"), index=True
    )
    answered: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    cause: Mapped[str | None] = mapped_column(String(40))
    recording_url: Mapped[str | None] = mapped_column(Text)
    queue: Mapped[str | None] = mapped_column(String(100))
    closed_by_sweeper: Mapped[bool] = mapped_column(Boolean, default=False)
    # Click-to-call delivery: None for PBX-reported calls; pending | sent | failed.
    originate_state: Mapped[str | None] = mapped_column(String(10))
    originate_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CallEventLog(Id, Base):
    """Every accepted PBX event as received; the unique key makes intake idempotent (TEL-2)."""

    __tablename__ = "call_events"
    # One row per event of a call; a hunt group rings its extensions one after another with one
    # ``ringing`` each, told apart by the party rung.
    __table_args__ = (UniqueConstraint("call_id", "event", "party"),)

    account_id: Mapped[int] = mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))
    call_id: Mapped[int] = mapped_column(PortableId, ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    external_call_id: Mapped[str] = mapped_column(String(250))
    event: Mapped[str] = mapped_column(String(10))  # ringing | answered | hangup | outgoing
    party: Mapped[str] = mapped_column(String(100), default="", server_default="")
    dialect: Mapped[str] = mapped_column(String(10))  # hub | cti
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    outcome: Mapped[str] = mapped_column(String(10))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class CallTicket(Id, Base):
    """A call bound to a ticket (TEL-5): automatically from a pop-up, or by hand from the call list."""

    __tablename__ = "call_tickets"
    __table_args__ = (UniqueConstraint("call_id", "ticket_id"),)

    account_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    call_id: Mapped[int] = mapped_column(PortableId, ForeignKey("calls.id", ondelete="CASCADE"))
    ticket_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("tickets.id", ondelete="CASCADE"), index=True
    )
    bound_by_kind: Mapped[str] = mapped_column(String(10))
    bound_by_id: Mapped[int | None] = mapped_column(PortableId)
    automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
