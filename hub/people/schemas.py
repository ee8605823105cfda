"""Company, contact, service-object, object-user and client-app login Structs (DESK-2)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

__all__ = [
    "AppUserCreate",
    "AppUserRead",
    "AppUserUpdate",
    "CompanyCreate",
    "CompanyRead",
    "CompanyUpdate",
    "ContactCreate",
    "ContactRead",
    "ContactUpdate",
    "ObjectCreate",
    "ObjectRead",
    "ObjectUpdate",
    "ObjectUserCreate",
    "ObjectUserRead",
    "ObjectUserUpdate",
]

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
Domain = Annotated[
    str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
]
# Written as people write them: spaces, dashes, brackets, a leading + or a trunk prefix.
Phone = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=40,
        pattern=r"^[0-9+()\-. /]*[0-9][0-9+()\-. /]*$",
        examples=["+7 (495) 123-45-67", "8 495 123 45 67"],
    ),
]
Category = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
ObjectNumber = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Address = Annotated[str, msgspec.Meta(max_length=2000)]
RefId = Annotated[int, msgspec.Meta(ge=1, le=2**62)]
ObjectRole = Literal["admin", "user"]
Login = Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^\S+$")]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=200)]


class CompanyRead(msgspec.Struct):
    id: int
    name: str
    phones: list[str]
    email: str | None
    email_domain: str | None
    category: str | None
    manager_id: int | None
    created_at: datetime


class CompanyCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    phones: Annotated[list[Phone], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)
    email: Email | None = None
    email_domain: Domain | None = None
    category: Category | None = None
    manager_id: RefId | None = msgspec.field(default=None)


class CompanyUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    phones: Annotated[list[Phone], msgspec.Meta(max_length=20)] | msgspec.UnsetType = msgspec.UNSET
    email: Email | msgspec.UnsetType | None = msgspec.UNSET
    email_domain: Domain | msgspec.UnsetType | None = msgspec.UNSET
    category: Category | msgspec.UnsetType | None = msgspec.UNSET
    manager_id: RefId | msgspec.UnsetType | None = msgspec.UNSET


class ContactRead(msgspec.Struct):
    id: int
    company_id: int | None
    name: str
    phone: str | None
    mobile: str | None
    email: str | None
    default_responsible_id: int | None
    created_at: datetime


class ContactCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    company_id: RefId | None = None
    phone: Phone | None = None
    mobile: Phone | None = None
    email: Email | None = None
    # DESK-12: responsible for new tickets of this client / object when none is named.
    default_responsible_id: RefId | None = None


class ContactUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    company_id: RefId | msgspec.UnsetType | None = msgspec.UNSET
    phone: Phone | msgspec.UnsetType | None = msgspec.UNSET
    mobile: Phone | msgspec.UnsetType | None = msgspec.UNSET
    email: Email | msgspec.UnsetType | None = msgspec.UNSET
    default_responsible_id: RefId | msgspec.UnsetType | None = msgspec.UNSET


class ObjectRead(msgspec.Struct):
    id: int
    number: str
    name: str
    address: str | None
    company_id: int | None
    default_responsible_id: int | None
    created_at: datetime


class ObjectCreate(msgspec.Struct, forbid_unknown_fields=True):
    number: ObjectNumber
    name: Name
    address: Address | None = None
    company_id: RefId | None = None
    # DESK-12: responsible for new tickets of this client / object when none is named.
    default_responsible_id: RefId | None = None


class ObjectUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    number: ObjectNumber | msgspec.UnsetType = msgspec.UNSET
    name: Name | msgspec.UnsetType = msgspec.UNSET
    address: Address | msgspec.UnsetType | None = msgspec.UNSET
    company_id: RefId | msgspec.UnsetType | None = msgspec.UNSET
    default_responsible_id: RefId | msgspec.UnsetType | None = msgspec.UNSET


class ObjectUserRead(msgspec.Struct):
    id: int
    object_id: int
    contact_id: int
    role: str


class ObjectUserCreate(msgspec.Struct, forbid_unknown_fields=True):
    contact_id: RefId
    role: ObjectRole = "user"


class ObjectUserUpdate(msgspec.Struct, forbid_unknown_fields=True):
    role: ObjectRole


class AppUserRead(msgspec.Struct):
    id: int
    contact_id: int
    login: str
    active: bool
    created_at: datetime


class AppUserCreate(msgspec.Struct, forbid_unknown_fields=True):
    login: Login
    password: Password


class AppUserUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    password: Password | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET
