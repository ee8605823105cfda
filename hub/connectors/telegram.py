"""Telegram Bot API ``sendMessage`` (https://core.telegram.org/bots/api#sendmessage).

``POST {base}/bot<token>/sendMessage`` with ``chat_id`` and ``text``; the answer is
``{"ok": true, "result": {...}}`` or ``{"ok": false, "error_code": 403, "description": ...}``.
429 carries ``parameters.retry_after``: retried later by the outbox, like 5xx and timeouts;
400/403 (chat not found, bot blocked by the user) will not change by retrying.
"""

from __future__ import annotations

import httpx

from hub.connectors._http import TIMEOUT, classify, transport_error
from hub.outbox import PermanentDeliveryError

__all__ = ["send_telegram"]


async def send_telegram(
    http: httpx.AsyncClient, *, base_url: str, bot_token: str, chat_id: str, text: str
) -> int | None:
    """Send ``text`` to ``chat_id``; returns Telegram's message id."""
    url = f"{base_url.rstrip('/')}/bot{bot_token}/sendMessage"
    try:
        response = await http.post(
            url, json={"chat_id": chat_id, "text": text, "disable_web_page_preview": True}, timeout=TIMEOUT
        )
    except httpx.TransportError as exc:
        raise transport_error("Telegram", exc) from exc
    classify("Telegram", response)
    body = response.json()
    if not body.get("ok"):
        raise PermanentDeliveryError(f"Telegram refused: {body.get('description')}")
    result = body.get("result") or {}
    return result.get("message_id")
