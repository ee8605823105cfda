"""Telephony API Structs: settings, calls, bindings, click-to-call."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from hub.people.matching import PhoneMatchRead

__all__ = [
    "BindTicket",
    "CallRead",
    "MatchRead",
    "OriginateRequest",
    "TelephonySettingsRead",
    "TelephonySettingsUpdate",
    "TicketRef",
    "TokenIssued",
]

Url = Annotated[str, msgspec.Meta(max_length=2000, pattern=r"^https?://")]
Region = Annotated[str, msgspec.Meta(min_length=2, max_length=2, pattern=r"^[A-Za-z]{2}$")]
Number = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
RefId = Annotated[int, msgspec.Meta(ge=1, le=2**62)]


class TelephonySettingsRead(msgspec.Struct):
    enabled: bool
    token_set: bool
    token_hint: str | None  # the first characters of the token, to tell tokens apart
    originate_url: str | None
    originate_auth: str
    originate_username: str | None
    originate_secret_set: bool
    match_digits: int
    region: str
    stale_call_minutes: int
    # Where the PBX posts (the token goes in place of {token}, or in the X-PBX-Token header).
    event_url: str
    cti_url: str


class TelephonySettingsUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    originate_url: Url | msgspec.UnsetType | None = msgspec.UNSET
    originate_auth: Literal["none", "basic", "bearer"] | msgspec.UnsetType = msgspec.UNSET
    originate_username: Annotated[str, msgspec.Meta(max_length=200)] | msgspec.UnsetType | None = (
        msgspec.UNSET
    )
    originate_secret: Annotated[str, msgspec.Meta(max_length=500)] | msgspec.UnsetType | None = msgspec.UNSET
    match_digits: Annotated[int, msgspec.Meta(ge=4, le=15)] | msgspec.UnsetType = msgspec.UNSET
    region: Region | msgspec.UnsetType = msgspec.UNSET
    stale_call_minutes: Annotated[int, msgspec.Meta(ge=5, le=7 * 24 * 60)] | msgspec.UnsetType = msgspec.UNSET


class TokenIssued(msgspec.Struct):
    """Shown once: the PBX token and the URLs with it filled in."""

    token: str
    event_url: str
    cti_url: str


# The one phone-match answer of the API (hub/people/matching.py).
MatchRead = PhoneMatchRead


class TicketRef(msgspec.Struct):
    id: int
    number: int | None = None
    title: str | None = None
    status: str | None = None
    automatic: bool = False


class CallRead(msgspec.Struct):
    """A row of the call list (TEL-6)."""

    id: int
    external_id: str
    direction: str
    status: str
    from_number: str | None
    to_number: str | None
    client_number: str | None
    client: MatchRead | None
    matches: list[MatchRead]
    employee_id: int | None
    employee_name: str | None
    answered: bool
    missed: bool
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    duration_seconds: int | None
    cause: str | None
    recording_url: str | None
    ringing_extensions: list[str]
    answered_extension: str | None
    closed_by_sweeper: bool
    originate_state: str | None
    tickets: list[TicketRef]


class BindTicket(msgspec.Struct, forbid_unknown_fields=True):
    """The ticket to bind: by the hub's id, or by the number people see on it (``#123``)."""

    ticket_id: RefId | None = None
    ticket_number: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)] | None = None


class OriginateRequest(msgspec.Struct, forbid_unknown_fields=True):
    """TEL-7: call this number (editable; prefilled from the contact or company)."""

    number: Number
    contact_id: RefId | None = None
    company_id: RefId | None = None


def jsonable(value: Any) -> Any:
    """Plain JSON types (datetimes as ISO strings) for live events and JSON columns."""
    return msgspec.to_builtins(value)
