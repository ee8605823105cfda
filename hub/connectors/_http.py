"""Shared HTTP classification for the notification connectors."""

from __future__ import annotations

import httpx

from hub.outbox import PermanentDeliveryError, TransientDeliveryError

__all__ = ["TIMEOUT", "classify", "transport_error"]

TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def transport_error(name: str, exc: Exception) -> TransientDeliveryError:
    return TransientDeliveryError(f"{name} unreachable: {exc!r}")


def classify(name: str, response: httpx.Response) -> None:
    """5xx, 429 and 408 may pass later; other 4xx never will."""
    status = response.status_code
    if status < 400:
        return
    detail = f"{name} answered HTTP {status}: {response.text[:300]}"
    if status >= 500 or status in (408, 429):
        raise TransientDeliveryError(detail)
    raise PermanentDeliveryError(detail)
