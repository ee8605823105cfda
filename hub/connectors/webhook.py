"""A generic webhook signed per Standard Webhooks (https://www.standardwebhooks.com/).

Headers ``webhook-id`` (stable across retries: the receiver deduplicates on it),
``webhook-timestamp`` (Unix seconds) and ``webhook-signature`` = ``v1,<base64 HMAC-SHA256>`` of
``"{id}.{timestamp}.{body}"`` keyed with the base64-decoded part of the ``whsec_`` secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import httpx

from hub.connectors._http import TIMEOUT, classify, transport_error

__all__ = ["send_webhook", "sign"]


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


async def send_webhook(
    http: httpx.AsyncClient, *, url: str, secret: str, webhook_id: str, body: bytes, now: float | None = None
) -> None:
    timestamp = int(now if now is not None else time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, webhook_id, timestamp, body),
    }
    try:
        response = await http.post(url, content=body, headers=headers, timeout=TIMEOUT)
    except httpx.TransportError as exc:
        raise transport_error("webhook", exc) from exc
    classify("webhook", response)
