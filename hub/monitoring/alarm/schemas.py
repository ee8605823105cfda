"""What administrators send and see about alarm panels (MON-8)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

__all__ = [
    "AlarmAccountCreate",
    "AlarmAccountRead",
    "AlarmAccountUpdate",
    "AlarmEventRead",
    "AlarmRuleRead",
    "AlarmRuleSet",
    "UnknownAlarmAccountRead",
]

Number = Annotated[str, msgspec.Meta(pattern="^[0-9A-Fa-f]{3,16}$", description="The panel's account number")]
Prefix = Annotated[str, msgspec.Meta(pattern="^[0-9A-Fa-f]{0,6}$", description="Empty: any")]
Key = Annotated[
    str,
    msgspec.Meta(
        pattern="^([0-9A-Fa-f]{32}|[0-9A-Fa-f]{48}|[0-9A-Fa-f]{64})$",
        description="AES-128/192/256 key in hex: the panel must then encrypt every message",
    ),
]
AlarmProtocol = Literal["cid", "sia"]


class AlarmAccountCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    number: Number
    receiver: Prefix = ""
    line: Prefix = ""
    key: Key | None = None
    resolve_on_restore: bool = False


class AlarmAccountUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    key: Key | msgspec.UnsetType | None = msgspec.UNSET
    resolve_on_restore: bool | msgspec.UnsetType = msgspec.UNSET


class AlarmAccountRead(msgspec.Struct):
    id: int
    object_id: int
    number: str
    receiver: str
    line: str
    encrypted: bool  # a key is set (the key itself is never shown)
    resolve_on_restore: bool
    created_at: datetime


class AlarmEventRead(msgspec.Struct):
    id: int
    object_id: int
    panel_account: str
    protocol: str
    code: str
    sent_code: str
    restore: bool
    kind: str
    label: str
    zone: str
    partition: str
    sent_at: datetime | None
    received_at: datetime
    raw: str
    ticket_id: int | None
    outcome: str


class AlarmRuleRead(msgspec.Struct):
    protocol: str
    code: str
    label: str
    kind: str
    opens_ticket: bool
    default: bool
    overridden: bool


class AlarmRuleSet(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    protocol: AlarmProtocol
    code: Annotated[str, msgspec.Meta(min_length=2, max_length=3, description="Contact ID event or SIA code")]
    opens_ticket: bool | None  # null: back to the default


class UnknownAlarmAccountRead(msgspec.Struct):
    number: str
    receiver: str
    line: str
    first_seen: datetime
    last_seen: datetime
    count: int
    remote_addr: str | None
    last_frame: str
