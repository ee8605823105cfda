"""Account, employee and API-key Structs: one read Struct and separate create/update Structs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

__all__ = [
    "AccountRead",
    "AccountUpdate",
    "ApiKeyCreate",
    "ApiKeyCreated",
    "ApiKeyRead",
    "EmployeeCreate",
    "EmployeeRead",
    "EmployeeUpdate",
    "GrantCreate",
    "GrantRead",
]

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
Phone = Annotated[str, msgspec.Meta(max_length=40)]
Extension = Annotated[str, msgspec.Meta(min_length=1, max_length=20, pattern=r"^[0-9*#]+$")]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=200)]
RoleName = Literal["administrator", "dispatcher", "engineer"]
Region = Annotated[str, msgspec.Meta(min_length=2, max_length=2, pattern=r"^[A-Za-z]{2}$")]
Currency = Annotated[str, msgspec.Meta(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")]


class AccountRead(msgspec.Struct):
    id: int
    name: str
    slug: str
    phone: str | None
    default_region: str
    currency: str
    phone_match_digits: int
    auto_close_hours: int
    engineers_see_all: bool
    first_reply_assigns: bool
    created_at: datetime


class AccountUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    phone: Phone | msgspec.UnsetType | None = msgspec.UNSET
    default_region: Region | msgspec.UnsetType = msgspec.UNSET
    currency: Currency | msgspec.UnsetType = msgspec.UNSET
    phone_match_digits: Annotated[int, msgspec.Meta(ge=4, le=15)] | msgspec.UnsetType = msgspec.UNSET
    auto_close_hours: Annotated[int, msgspec.Meta(ge=1, le=24 * 365)] | msgspec.UnsetType = msgspec.UNSET
    # DESK-12: engineers see every ticket, not only those they take part in.
    engineers_see_all: bool | msgspec.UnsetType = msgspec.UNSET
    # DESK-12: the first employee to reply publicly to an unassigned ticket becomes responsible.
    first_reply_assigns: bool | msgspec.UnsetType = msgspec.UNSET


class EmployeeRead(msgspec.Struct):
    id: int
    name: str
    email: str
    phone: str | None
    extension: str | None
    role: str
    active: bool
    created_at: datetime


class EmployeeCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    email: Email
    role: RoleName
    password: Password
    phone: Phone | None = None
    extension: Extension | None = None


class EmployeeUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    role: RoleName | msgspec.UnsetType = msgspec.UNSET
    phone: Phone | msgspec.UnsetType | None = msgspec.UNSET
    extension: Extension | msgspec.UnsetType | None = msgspec.UNSET
    password: Password | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET


class ApiKeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    kind: Literal["pbx", "monitoring", "script"]


class ApiKeyRead(msgspec.Struct):
    id: int
    name: str
    kind: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(msgspec.Struct):
    """The key itself appears only in this response; the hub keeps a hash."""

    key: str
    api_key: ApiKeyRead


class GrantRead(msgspec.Struct):
    """A permission granted to a role or to one employee (DESK-12, PAY-7)."""

    id: int
    permission: str
    role: str | None
    employee_id: int | None
    created_at: datetime


class GrantCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Exactly one of ``role`` and ``employee_id``."""

    permission: Literal["refunds"]
    role: Literal["dispatcher", "engineer"] | None = None
    employee_id: Annotated[int, msgspec.Meta(ge=1, le=2**62)] | None = None
