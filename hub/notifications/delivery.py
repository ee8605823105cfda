"""Outbox handlers: one per channel. Each reads the channel's settings in a short session, closes
it, and only then talks to the far side (no session is held across network I/O)."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog

from hub.cache import TTLCache
from hub.connectors.email import SmtpTarget, send_email
from hub.connectors.fcm import FcmAccount, TokenGone, send_push
from hub.connectors.sms import send_sms
from hub.connectors.telegram import send_telegram
from hub.connectors.webhook import send_webhook
from hub.db import utcnow
from hub.notifications.schemas import EmailConfig, PushConfig, SmsConfig, TelegramConfig, WebhookConfig
from hub.notifications.service import TOPIC_PREFIX, channel_config, remove_device_token
from hub.outbox import DeliveryContext, MessageView, PermanentDeliveryError, outbox_handler

__all__ = [
    "CONFIG_TTL_SECONDS",
    "deliver_email",
    "deliver_push",
    "deliver_sms",
    "deliver_telegram",
    "deliver_webhook",
    "forget_config",
]

log = structlog.get_logger("hub.notifications")


# Channel settings per (database, account, channel), kept briefly: a burst of notifications reads
# them once instead of once per message. A change made in this process clears it at once
# (``forget_config``); other processes see it within CONFIG_TTL_SECONDS.
CONFIG_TTL_SECONDS = 10.0
_CONFIGS: TTLCache[tuple[int, int | None, str], Any] = TTLCache(ttl=CONFIG_TTL_SECONDS)


def forget_config() -> None:
    _CONFIGS.forget()


async def _read_config(ctx: DeliveryContext, account_id: int | None, channel: str) -> Any:
    async with ctx.db.sessionmaker() as session:
        return await channel_config(session, account_id, channel)


async def _config(ctx: DeliveryContext, message: MessageView, channel: str) -> Any:
    # One read per expiry, not one per message of the batch delivered at that moment.
    key = (id(ctx.db), message.account_id, channel)
    config = await _CONFIGS.get(key, lambda: _read_config(ctx, message.account_id, channel))
    if config is None:
        raise PermanentDeliveryError(f"the {channel} channel is not configured or switched off")
    return config


@outbox_handler(TOPIC_PREFIX + "email")
async def deliver_email(ctx: DeliveryContext, message: MessageView) -> None:
    config: EmailConfig = await _config(ctx, message, "email")
    target = SmtpTarget(
        config.host,
        config.port,
        security=config.security,
        username=config.username,
        password=config.password,
        timeout=config.timeout_seconds,
    )
    payload = message.payload
    await send_email(
        target,
        sender=config.sender,
        to=payload["to"],
        subject=payload["subject"],
        text=payload["text"] + _link_line(payload),
        message_key=message.idempotency_key,
    )


def _link_line(payload: dict[str, Any]) -> str:
    link = (payload.get("data") or {}).get("link")
    return f"\n\n{link}" if link else ""


@outbox_handler(TOPIC_PREFIX + "sms")
async def deliver_sms(ctx: DeliveryContext, message: MessageView) -> None:
    config: SmsConfig = await _config(ctx, message, "sms")
    await send_sms(
        ctx.http,
        base_url=config.base_url,
        api_id=config.api_id,
        to=message.payload["to"],
        text=message.payload["text"],
        sender=config.sender,
        test=config.test,
    )


@outbox_handler(TOPIC_PREFIX + "telegram")
async def deliver_telegram(ctx: DeliveryContext, message: MessageView) -> None:
    config: TelegramConfig = await _config(ctx, message, "telegram")
    payload = message.payload
    await send_telegram(
        ctx.http,
        base_url=config.base_url,
        bot_token=config.bot_token,
        chat_id=payload["to"],
        text=payload["text"] + _link_line(payload),
    )


@outbox_handler(TOPIC_PREFIX + "push")
async def deliver_push(ctx: DeliveryContext, message: MessageView) -> None:
    config: PushConfig = await _config(ctx, message, "push")
    sa = config.service_account
    account = FcmAccount(
        sa.project_id, sa.client_email, sa.private_key, sa.private_key_id, sa.token_uri, config.base_url
    )
    payload = message.payload
    data = {
        k: str(v)
        for k, v in {
            "event": payload["event"],
            "ticket_id": payload.get("ticket_id"),
            "object_id": payload.get("object_id"),
            "link": (payload.get("data") or {}).get("link"),
        }.items()
        if v is not None
    }
    try:
        await send_push(
            ctx.http,
            account,
            device_token=payload["to"],
            title=payload["subject"],
            body=payload["text"],
            data=data,
        )
    except TokenGone as gone:
        # The app is gone from that phone: forget the token. The push never arrived, so the
        # message ends dead-lettered with the reason, not "delivered".
        async with ctx.db.sessionmaker() as session, session.begin():
            removed = await remove_device_token(session, message.account_id, payload["to"])
        log.info("push_token_removed", message_id=message.id, removed=removed)
        raise PermanentDeliveryError(f"device token removed, FCM says it is gone ({gone})") from gone


@outbox_handler(TOPIC_PREFIX + "webhook")
async def deliver_webhook(ctx: DeliveryContext, message: MessageView) -> None:
    config: WebhookConfig = await _config(ctx, message, "webhook")
    payload = dict(message.payload)
    webhook_id = payload.pop("webhook_id", f"msg_{message.id}")
    body = msgspec.json.encode(
        {"type": f"ticket.{payload['event']}", "timestamp": utcnow().isoformat(), "data": payload}
    )
    await send_webhook(ctx.http, url=config.url, secret=config.secret, webhook_id=webhook_id, body=body)
