"""A test handler that delivers to an HTTP far side, used in-process and by a worker subprocess."""

from __future__ import annotations

import httpx

from hub.outbox import (
    DeliveryContext,
    MessageView,
    PermanentDeliveryError,
    TransientDeliveryError,
    outbox_handler,
)

TOPIC = "test.http_post"


@outbox_handler(TOPIC)
async def post_to_far_side(ctx: DeliveryContext, message: MessageView) -> None:
    try:
        response = await ctx.http.post(
            message.payload["url"],
            json=message.payload["body"],
            headers={"Idempotency-Key": message.idempotency_key},
            timeout=message.payload.get("timeout", 5.0),
        )
    except httpx.TransportError as exc:
        raise TransientDeliveryError(repr(exc)) from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise TransientDeliveryError(f"HTTP {response.status_code}")
    if response.status_code >= 400:
        raise PermanentDeliveryError(f"HTTP {response.status_code}")
