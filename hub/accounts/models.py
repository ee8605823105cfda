"""Tenancy tables: every other table carries ``account_id`` pointing here."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, Id, PortableId, utcnow

__all__ = [
    "Account",
    "ApiKey",
    "ApiKeyKind",
    "AppUser",
    "Employee",
    "Permission",
    "PermissionGrant",
    "RefreshToken",
    "Role",
]


class Role(enum.StrEnum):
    ADMINISTRATOR = "administrator"
    DISPATCHER = "dispatcher"
    ENGINEER = "engineer"


class Permission(enum.StrEnum):
    """What an administrator grants to roles or to single employees (DESK-12, PAY-7).
    Administrators hold every permission: they are the ones who grant them."""

    REFUNDS = "refunds"


class ApiKeyKind(enum.StrEnum):
    PBX = "pbx"
    MONITORING = "monitoring"
    SCRIPT = "script"


class Account(Id, Base):
    __tablename__ = "accounts"

    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    phone: Mapped[str | None] = mapped_column(String(40))
    default_region: Mapped[str] = mapped_column(String(2), default="RU")
    currency: Mapped[str] = mapped_column(String(3), default="RUB")
    # Digits compared from the end when matching a caller to a client (TEL-1, TEL-3).
    phone_match_digits: Mapped[int] = mapped_column(Integer, default=10)
    # Hours a resolved ticket waits for the client before it closes by itself (DESK-4).
    auto_close_hours: Mapped[int] = mapped_column(Integer, default=72)
    # DESK-12: engineers see every ticket of the account (otherwise only those they take part in).
    engineers_see_all: Mapped[bool] = mapped_column(Boolean, default=False)
    # DESK-12: the first employee to reply publicly to an unassigned ticket becomes responsible.
    first_reply_assigns: Mapped[bool] = mapped_column(Boolean, default=False)
    next_ticket_number: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Employee(Id, Base):
    __tablename__ = "employees"
    __table_args__ = (
        UniqueConstraint("account_id", "email"),
        Index("ix_employees_account_extension", "account_id", "extension"),
    )

    account_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    extension: Mapped[str | None] = mapped_column(String(20))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AppUser(Id, Base):
    """A contact who signs in to the client app (MON-2..7)."""

    __tablename__ = "app_users"
    __table_args__ = (UniqueConstraint("account_id", "login"),)

    account_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    contact_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("contacts.id", ondelete="CASCADE"), unique=True
    )
    login: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Id, Base):
    """An integration key (PBX, monitoring software, scripts). Only a hash of the secret is kept."""

    __tablename__ = "api_keys"

    account_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    # The public part of the key, used to find the row; the secret part is compared by hash.
    prefix: Mapped[str] = mapped_column(String(24), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class RefreshToken(Id, Base):
    """A single-use refresh token; using it issues a new one (rotation)."""

    __tablename__ = "refresh_tokens"

    account_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    subject_kind: Mapped[str] = mapped_column(String(20))
    subject_id: Mapped[int] = mapped_column(PortableId)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PermissionGrant(Id, Base):
    """One grant of a permission to a role or to one employee (exactly one of the two)."""

    __tablename__ = "permission_grants"
    __table_args__ = (Index("ix_permission_grants_account_permission", "account_id", "permission"),)

    account_id: Mapped[int] = mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))
    permission: Mapped[str] = mapped_column(String(40))
    role: Mapped[str | None] = mapped_column(String(20))
    employee_id: Mapped[int | None] = mapped_column(
        PortableId, ForeignKey("employees.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
