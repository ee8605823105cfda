"""Notification settings per account, extra contact points and client-app device tokens (DESK-10)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, Id, JSONType, PortableId, utcnow

__all__ = ["ContactPoint", "DeviceToken", "NotificationChannel", "NotificationRule"]


class NotificationChannel(Id, Base):
    """One configured channel of an account: SMTP server, SMS gateway, FCM, Telegram bot, webhook.

    ``config`` holds the connector's settings including its secrets; the API never returns them.
    """

    __tablename__ = "notification_channels"
    __table_args__ = (UniqueConstraint("account_id", "channel"),)

    account_id: Mapped[int] = mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(20))  # email | sms | push | telegram | webhook
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class NotificationRule(Id, Base):
    """A switch: event type x channel. No row means "on" (a configured channel sends everything)."""

    __tablename__ = "notification_rules"
    __table_args__ = (UniqueConstraint("account_id", "event", "channel"),)

    account_id: Mapped[int] = mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(20))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class ContactPoint(Id, Base):
    """An address of an employee or contact beyond their profile: a Telegram chat id, a second
    e-mail or phone for notifications."""

    __tablename__ = "notification_contact_points"
    __table_args__ = (
        UniqueConstraint("account_id", "owner_kind", "owner_id", "channel", "address"),
        Index("ix_notification_contact_points_owner", "account_id", "owner_kind", "owner_id"),
    )

    account_id: Mapped[int] = mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))
    owner_kind: Mapped[str] = mapped_column(String(10))  # employee | contact
    owner_id: Mapped[int] = mapped_column(PortableId)
    channel: Mapped[str] = mapped_column(String(20))  # email | sms | telegram
    address: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeviceToken(Id, Base):
    """A client-app installation's FCM registration token; removed when FCM says it is gone."""

    __tablename__ = "device_tokens"

    account_id: Mapped[int] = mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    token: Mapped[str] = mapped_column(String(512), unique=True)
    platform: Mapped[str] = mapped_column(String(10))  # android | ios | web
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
