"""Channel settings (one Struct per connector), switches, contact points and device tokens."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "CHANNELS",
    "CHANNEL_CONFIGS",
    "EVENTS",
    "SECRET_FIELDS",
    "ChannelRead",
    "ChannelWrite",
    "ContactPointCreate",
    "ContactPointRead",
    "DeviceRead",
    "DeviceRegister",
    "EmailConfig",
    "PushConfig",
    "RulesRead",
    "ServiceAccount",
    "SmsConfig",
    "TelegramConfig",
    "WebhookConfig",
]

EVENTS = (
    "new_ticket",
    "ticket_registered",
    "responsible_changed",
    "status_changed",
    "public_comment",
    "rating_request",
    "partner_decision",
    "partner_protocol_error",
    "refund_requested",
    "refund_changed",
)
CHANNELS = ("email", "sms", "push", "telegram", "webhook")

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Url = Annotated[str, msgspec.Meta(min_length=8, max_length=500, pattern=r"^https?://")]


class EmailConfig(msgspec.Struct, forbid_unknown_fields=True):
    """SMTP submission: STARTTLS on 587 by default, implicit TLS (465) or none (local relays)."""

    host: Text
    sender: Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=120)] = 20.0


class SmsConfig(msgspec.Struct, forbid_unknown_fields=True):
    """SMS.ru HTTP API (https://sms.ru/api/send): ``api_id`` authenticates, ``sender`` must be
    approved by SMS.ru; ``test`` sends nothing and costs nothing (their test mode)."""

    api_id: Text
    sender: str | None = None
    base_url: Url = "https://sms.ru"
    test: bool = False


class ServiceAccount(msgspec.Struct):
    """The fields of a Google service-account JSON key that FCM HTTP v1 needs."""

    project_id: Text
    client_email: Text
    private_key: Annotated[str, msgspec.Meta(min_length=100, max_length=10_000)]
    private_key_id: str | None = None
    token_uri: Url = "https://oauth2.googleapis.com/token"


class PushConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Firebase Cloud Messaging HTTP v1 with a service account (JWT bearer assertion)."""

    service_account: ServiceAccount
    base_url: Url = "https://fcm.googleapis.com"
    # The app's deep-link scheme: a rating request opens ``<scheme>://objects/<id>/tickets?first=<id>``.
    link_scheme: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9+.-]{1,30}$")] = "hubapp"


class TelegramConfig(msgspec.Struct, forbid_unknown_fields=True):
    bot_token: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{3,20}:[A-Za-z0-9_-]{20,100}$")]
    base_url: Url = "https://api.telegram.org"


class WebhookConfig(msgspec.Struct, forbid_unknown_fields=True):
    """A generic endpoint signed with Standard Webhooks headers; ``secret`` is ``whsec_<base64>``."""

    url: Url
    secret: Annotated[str, msgspec.Meta(pattern=r"^whsec_[A-Za-z0-9+/=]{16,200}$")]


CHANNEL_CONFIGS: dict[str, type[msgspec.Struct]] = {
    "email": EmailConfig,
    "sms": SmsConfig,
    "push": PushConfig,
    "telegram": TelegramConfig,
    "webhook": WebhookConfig,
}
SECRET_FIELDS = {"password", "api_id", "service_account", "bot_token", "secret"}


class ChannelWrite(msgspec.Struct, forbid_unknown_fields=True):
    channel: Literal["email", "sms", "push", "telegram", "webhook"]
    config: dict[str, Any]
    enabled: bool = True


class ChannelRead(msgspec.Struct):
    channel: str
    enabled: bool
    configured: bool
    # The settings without their secrets; which secrets are set is listed by name.
    settings: dict[str, Any]
    secrets_set: list[str]


class RulesRead(msgspec.Struct):
    """event -> channel -> on/off for every event and channel."""

    rules: dict[str, dict[str, bool]]


class ContactPointCreate(msgspec.Struct, forbid_unknown_fields=True):
    owner_kind: Literal["employee", "contact"]
    owner_id: Annotated[int, msgspec.Meta(ge=1, le=2**62)]
    channel: Literal["email", "sms", "telegram"]
    address: Annotated[str, msgspec.Meta(min_length=1, max_length=254)]


class ContactPointRead(msgspec.Struct):
    id: int
    owner_kind: str
    owner_id: int
    channel: str
    address: str


class DeviceRegister(msgspec.Struct, forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(min_length=10, max_length=512, pattern=r"^[A-Za-z0-9_:.\-]+$")]
    platform: Literal["android", "ios", "web"] = "android"


class DeviceRead(msgspec.Struct):
    id: int
    platform: str
