"""API shapes of the partner exchange (the hub-to-hub wire format is in contracts/exchange.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

__all__ = [
    "ConnectByKey",
    "ConnectionRead",
    "DeliveryStatus",
    "PairingKeyCreate",
    "PairingKeyIssued",
    "PairingKeyRead",
    "PartnerFiles",
    "PartnerLinkRead",
    "PartnerRate",
    "PartnerSendBack",
    "TransferCreate",
]

Id = Annotated[int, msgspec.Meta(ge=1, le=2**62)]


class PairingKeyCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    label: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    # 72 hours unless asked otherwise (EX-1); at most 30 days.
    expires_in_hours: Annotated[float, msgspec.Meta(gt=0, le=720)] = 72.0


class PairingKeyRead(msgspec.Struct, kw_only=True):
    id: int
    kid: str
    label: str | None
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None
    connection_id: int | None
    state: str  # usable | used | expired | revoked


class PairingKeyIssued(msgspec.Struct, kw_only=True):
    """The key itself is in this answer only: it is not stored and cannot be shown again."""

    key: str
    hub_url: str
    pairing_key: PairingKeyRead


class ConnectByKey(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    key: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class DeliveryStatus(msgspec.Struct, kw_only=True):
    """How messages to this partner are getting through (EX-10)."""

    last_success_at: datetime | None
    backlog: int  # queued or being delivered
    dead: int  # dead-lettered: see GET /api/outbox?status=dead
    last_error: str | None
    # Received from the partner and waiting for an earlier message of their ticket (EX-10); a
    # number that never comes is skipped with POST /api/exchange/connections/{id}/skip-gaps.
    held: int = 0


class ConnectionRead(msgspec.Struct, kw_only=True):
    id: int
    uuid: str
    partner_name: str
    partner_hub_url: str
    side: str
    state: str  # active | ended
    since: datetime
    ended_at: datetime | None
    ended_by: str | None  # us | partner
    delivery: DeliveryStatus


class TransferCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    connection_id: Id
    # EX-4: pass the end client's details; without it the partner sees none of them.
    include_client: bool = False
    file_ids: Annotated[list[Id], msgspec.Meta(max_length=15)] = []


class PartnerLinkRead(msgspec.Struct, kw_only=True):
    """A ticket's link to a partner: the partner ticket's number, status and responsible (EX-7)."""

    id: int
    connection_id: int
    partner_name: str
    connection_state: str
    direction: str  # outgoing: transferred by us; incoming: received from the partner
    shared_uuid: str
    partner_number: int | None
    partner_status: str | None
    partner_responsible: str | None
    partner_updated_at: datetime | None
    client: dict[str, Any] | None  # incoming only, when the partner passed it
    can_rate: bool  # outgoing and the partner ticket is resolved (EX-8)
    created_at: datetime


class PartnerRate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    score: Annotated[int, msgspec.Meta(ge=1, le=5)]
    comment: Annotated[str, msgspec.Meta(max_length=20_000)] | None = None
    connection_id: Id | None = None  # which partner, when the ticket went to several


class PartnerSendBack(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    comment: Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]
    connection_id: Id | None = None


class PartnerFiles(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    file_ids: Annotated[list[Id], msgspec.Meta(min_length=1, max_length=15)]
    connection_id: Id | None = None
