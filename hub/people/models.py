"""Client companies, contacts, service objects, object users and the phone suffix index."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, Id, JSONType, PortableId, digits_text, utcnow

__all__ = ["Company", "Contact", "ObjectUser", "ObjectUserRole", "PhoneIndex", "ServiceObject"]


class ObjectUserRole(enum.StrEnum):
    ADMIN = "admin"
    USER = "user"


class Company(Id, Base):
    __tablename__ = "companies"

    account_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(300))
    phones: Mapped[list[str]] = mapped_column(JSONType, default=list)
    email: Mapped[str | None] = mapped_column(String(254))
    email_domain: Mapped[str | None] = mapped_column(String(254))
    category: Mapped[str | None] = mapped_column(String(100))
    manager_id: Mapped[int | None] = mapped_column(
        PortableId, ForeignKey("employees.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Contact(Id, Base):
    __tablename__ = "contacts"

    account_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    company_id: Mapped[int | None] = mapped_column(
        PortableId, ForeignKey("companies.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(String(300))
    phone: Mapped[str | None] = mapped_column(String(40))
    mobile: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(254))
    # DESK-12: who becomes responsible for a new ticket of this contact when none is named.
    default_responsible_id: Mapped[int | None] = mapped_column(
        PortableId, ForeignKey("employees.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ServiceObject(Id, Base):
    """A place the account serves (a guarded object, a building, an installation)."""

    __tablename__ = "service_objects"
    __table_args__ = (UniqueConstraint("account_id", "number"),)

    account_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(300))
    address: Mapped[str | None] = mapped_column(Text)
    company_id: Mapped[int | None] = mapped_column(
        PortableId, ForeignKey("companies.id", ondelete="SET NULL"), index=True
    )
    # DESK-12: who becomes responsible for a new ticket of this object when none is named.
    default_responsible_id: Mapped[int | None] = mapped_column(
        PortableId, ForeignKey("employees.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ObjectUser(Id, Base):
    """A contact attached to an object with role ``admin`` or ``user`` (seed 000)."""

    __tablename__ = "object_users"
    __table_args__ = (UniqueConstraint("object_id", "contact_id"),)

    account_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    object_id: Mapped[int] = mapped_column(PortableId, ForeignKey("service_objects.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(10))


class PhoneIndex(Id, Base):
    """One row per stored phone number, keyed by its digits reversed.

    Matching "the last N digits" becomes a prefix range on ``reversed_digits``: an index scan on
    both engines (the column compares byte-wise on PostgreSQL).
    """

    __tablename__ = "phone_index"
    __table_args__ = (
        Index("ix_phone_index_lookup", "account_id", "reversed_digits"),
        Index("ix_phone_index_owner", "owner_kind", "owner_id"),
    )

    account_id: Mapped[int] = mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))
    reversed_digits: Mapped[str] = mapped_column(digits_text(32))
    e164: Mapped[str] = mapped_column(String(32))
    owner_kind: Mapped[str] = mapped_column(String(10))  # company | contact
    owner_id: Mapped[int] = mapped_column(PortableId)
    field: Mapped[str] = mapped_column(String(10))  # phone | mobile
