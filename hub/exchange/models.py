"""Partner exchange tables: pairing keys, connections, shared-ticket links, received messages."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, Id, JSONType, PortableId, utcnow

__all__ = [
    "Connection",
    "ConnectionState",
    "InboundMessage",
    "PairingKeyRecord",
    "PassedComment",
    "SharedTicket",
]


class ConnectionState(enum.StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


class PairingKeyRecord(Id, Base):
    """EX-1. The secret is never stored: only the public half of the Ed25519 key derived from it,
    which verifies the acceptor's proof of possession and cannot be turned back into the key."""

    __tablename__ = "exchange_pairing_keys"

    account_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    verifier: Mapped[str] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(200))
    created_by_id: Mapped[int | None] = mapped_column(PortableId)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    connection_id: Mapped[int | None] = mapped_column(PortableId)


class Connection(Id, Base):
    """EX-2/EX-3. One row per side: on one hub, a pair of accounts has two rows sharing ``uuid``."""

    __tablename__ = "exchange_connections"
    __table_args__ = (UniqueConstraint("uuid", "side"),)

    account_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    uuid: Mapped[str] = mapped_column(String(36))
    side: Mapped[str] = mapped_column(String(10))  # issuer | acceptor: which end of the handshake we were
    partner_name: Mapped[str] = mapped_column(String(200))
    partner_hub_url: Mapped[str] = mapped_column(String(500))
    partner_public_key: Mapped[str] = mapped_column(String(64))
    # Our Ed25519 private key for this connection (raw 32 bytes, base64url).
    private_key: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(10), default=ConnectionState.ACTIVE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    ended_by: Mapped[str | None] = mapped_column(String(10))  # us | partner
    # The protocol version chosen at the handshake; every envelope of the connection carries it.
    protocol_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    @property
    def partner_side(self) -> str:
        return "acceptor" if self.side == "issuer" else "issuer"

    @property
    def ordering_prefix(self) -> str:
        """Prefix of this connection's outbox ordering keys (the per-connection delivery status)."""
        return f"exchange:conn:{self.id}:"

    def ordering_key(self, shared_uuid: str | None) -> str:
        """Messages of one shared ticket are delivered one at a time, in order; different tickets of
        a connection flow side by side (the receiver still orders per ticket by ``seq``)."""
        return self.ordering_prefix + (shared_uuid or "connection")


class SharedTicket(Id, Base):
    """A local ticket shared over a connection. ``direction`` ``outgoing``: ours is the original and
    the partner works on a copy; ``incoming``: ours is the partner ticket made by a transfer."""

    __tablename__ = "exchange_shared_tickets"
    __table_args__ = (
        UniqueConstraint("connection_id", "uuid"),
        Index("ix_exchange_shared_tickets_ticket", "account_id", "ticket_id"),
    )

    account_id: Mapped[int] = mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))
    connection_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("exchange_connections.id", ondelete="CASCADE")
    )
    # No foreign key: the exchange's schema does not depend on the desk's migrations, and tickets
    # are never deleted (closed and cancelled are final states).
    ticket_id: Mapped[int] = mapped_column(PortableId)
    uuid: Mapped[str] = mapped_column(String(36))
    direction: Mapped[str] = mapped_column(String(10))  # outgoing | incoming
    include_client: Mapped[bool] = mapped_column(Boolean, default=False)
    # The end client's details as the original passed them (incoming, EX-4); None when withheld.
    client: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # The other side's ticket (EX-7): filled from its status updates.
    partner_number: Mapped[int | None] = mapped_column(Integer)
    partner_status: Mapped[str | None] = mapped_column(String(20))
    partner_responsible: Mapped[str | None] = mapped_column(String(200))
    partner_updated_at: Mapped[datetime | None]
    # Per-ticket sequence numbers (EX-10): last one we sent, last one we applied.
    out_seq: Mapped[int] = mapped_column(Integer, default=0)
    in_seq: Mapped[int] = mapped_column(Integer, default=0)
    # Outgoing: our rating or send-back is on its way and the partner has not moved on from
    # ``resolved`` yet (EX-8): a second decision is refused meanwhile.
    decision_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Files of the ticket up to this id were considered for mirroring to the original (EX-6).
    files_upto: Mapped[int] = mapped_column(PortableId, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InboundMessage(Id, Base):
    """Every message accepted from a partner, by id: applied exactly once, held until its turn."""

    __tablename__ = "exchange_inbound_messages"
    __table_args__ = (
        UniqueConstraint("connection_id", "message_id"),
        # One message per number of a shared ticket, by construction: a second message with a used
        # number is a protocol error (seq_already_used), never "already received".
        UniqueConstraint("connection_id", "ticket_uuid", "seq"),
        Index("ix_exchange_inbound_status", "connection_id", "status"),
    )

    account_id: Mapped[int] = mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))
    connection_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("exchange_connections.id", ondelete="CASCADE")
    )
    message_id: Mapped[str] = mapped_column(String(36))
    ticket_uuid: Mapped[str | None] = mapped_column(String(36))
    seq: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(10))  # applied | held
    # SHA-256 of the message without its sent_at: a re-delivery has the same, another message not.
    digest: Mapped[str | None] = mapped_column(String(64))
    envelope: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # kept only while held
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    applied_at: Mapped[datetime | None]


class PassedComment(Id, Base):
    """A comment of an original ticket passed to the partner (EX-5): files later attached to it
    follow it to the partner ticket."""

    __tablename__ = "exchange_passed_comments"
    __table_args__ = (UniqueConstraint("link_id", "comment_id"),)

    account_id: Mapped[int] = mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))
    link_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("exchange_shared_tickets.id", ondelete="CASCADE")
    )
    comment_id: Mapped[int] = mapped_column(PortableId)  # no foreign key: see SharedTicket.ticket_id
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
