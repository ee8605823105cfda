"""YooKassa API v3 (https://yookassa.ru/developers/api).

Requests: HTTP Basic ``shopId:secretKey``; ``POST /v3/payments``, ``POST /v3/payments/{id}/cancel``
and ``POST /v3/refunds`` carry an ``Idempotence-Key``; ``GET /v3/payments/{id}``,
``GET /v3/refunds/{id}``, ``GET /v3/refunds?payment_id=...`` (a refund found by our metadata).
Notifications are ``{"type": "notification", "event": "payment.succeeded", "object": {...}}`` and
are NOT signed: the sender's address must be in YooKassa's published networks, and the object is
re-read through the API before anything is applied (the body is trusted for nothing but the object
id). Answer: 200.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import httpx
import msgspec
from litestar import Response

from contracts.payments import YooKassaNotification
from hub.connectors.payments.base import (
    CallbackRejected,
    CreatedPayment,
    PaymentRequest,
    ProviderError,
    ProviderEvent,
    RefundRequest,
    json_of,
    pa_credential,
    problem,
    refund_by_ref,
    send,
)
from hub.payments.money import parse_amount, quantize

__all__ = [
    "API",
    "NETWORKS",
    "PROVIDER",
    "cancel_payment",
    "create_payment",
    "enrich",
    "error_response",
    "get_payment",
    "get_refund",
    "ok_response",
    "parse",
    "refund",
    "verify",
]

PROVIDER = "yookassa"
API = "https://api.yookassa.ru/v3"
# Published at https://yookassa.ru/developers/using-api/webhooks (configurable per account).
NETWORKS = (
    "185.71.76.0/27",
    "185.71.77.0/27",
    "77.75.153.0/25",
    "77.75.156.11/32",
    "77.75.156.35/32",
    "77.75.154.128/25",
    "2a02:5180::/32",
)
_PAYMENT_STATES = {
    "pending": "pending",
    "waiting_for_capture": "pending",
    "succeeded": "succeeded",
    "canceled": "canceled",
}
_REFUND_STATES = {"pending": "pending", "succeeded": "succeeded", "canceled": "failed"}


def _auth(account: Any) -> httpx.BasicAuth:
    return httpx.BasicAuth(pa_credential(account, "shop_id"), pa_credential(account, "secret_key"))


def verify(account: Any, body: bytes, headers: Mapping[str, str], remote: str | None, now: float) -> None:
    """No signature exists: the sender must be inside the account's allowed networks."""
    networks = account.allowed_networks or list(NETWORKS)
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        raise CallbackRejected(403, "sender_not_allowed", "Sender address unknown") from None
    for raw in networks:
        try:
            if address in ipaddress.ip_network(raw, strict=False):
                return None
        except ValueError:
            continue
    raise CallbackRejected(403, "sender_not_allowed", f"{address} is not a YooKassa network")


def parse(body: bytes, headers: Mapping[str, str], kind: str | None = None) -> ProviderEvent:
    try:
        note = msgspec.json.decode(body, type=YooKassaNotification)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CallbackRejected(400, "malformed_callback", f"Not a YooKassa notification: {exc}") from exc
    obj = msgspec.to_builtins(note.object)
    if note.event.startswith("refund."):
        return _refund_event(obj, note.event)
    if note.event.startswith("payment."):
        return _payment_event(obj, note.event)
    return ProviderEvent("ignored", "ignored", note.event, raw=obj)


def _amount(obj: dict[str, Any]) -> tuple[Decimal | None, str | None]:
    amount = obj.get("amount") or {}
    if not isinstance(amount, dict):
        return None, None
    return parse_amount(amount.get("value")), amount.get("currency")


def _payment_event(obj: dict[str, Any], event_type: str) -> ProviderEvent:
    value, currency = _amount(obj)
    metadata = obj.get("metadata") or {}
    return ProviderEvent(
        "payment",
        _PAYMENT_STATES.get(str(obj.get("status")), "pending"),
        event_type,
        payment_ref=metadata.get("invoice_ref") if isinstance(metadata, dict) else None,
        provider_payment_id=str(obj["id"]),
        capture_id=str(obj["id"]),
        amount=value,
        currency=currency,
        raw=obj,
    )


def _refund_event(obj: dict[str, Any], event_type: str) -> ProviderEvent:
    value, currency = _amount(obj)
    metadata = obj.get("metadata") or {}
    return ProviderEvent(
        "refund",
        _REFUND_STATES.get(str(obj.get("status")), "pending"),
        event_type,
        provider_payment_id=str(obj.get("payment_id") or "") or None,
        provider_refund_id=str(obj["id"]),
        refund_ref=metadata.get("refund_ref") if isinstance(metadata, dict) else None,
        amount=value,
        currency=currency,
        raw=obj,
    )


async def enrich(http: httpx.AsyncClient, account: Any, event: ProviderEvent) -> ProviderEvent:
    """Trust nothing in the body: re-read the object from the API and use that state instead."""
    if event.kind == "refund" and event.provider_refund_id:
        confirmed = await _read_refund(http, account, event.provider_refund_id)
    elif event.kind == "payment" and event.provider_payment_id:
        confirmed = await get_payment(http, account, event.provider_payment_id, event.payment_ref)
    else:
        return event
    return ProviderEvent(**{**confirmed.__dict__, "event_type": event.event_type})


def _money(value: Decimal, currency: str) -> dict[str, str]:
    return {"value": f"{quantize(value, currency):f}", "currency": currency}


async def create_payment(http: httpx.AsyncClient, account: Any, request: PaymentRequest) -> CreatedPayment:
    body: dict[str, Any] = {
        "amount": _money(request.amount, request.currency),
        "capture": True,
        "confirmation": {"type": "redirect", "return_url": request.return_url or request.notification_url},
        "description": request.description[:128],
        "metadata": {"invoice_ref": request.payment_ref},
    }
    response = await send(
        http,
        "POST",
        f"{API}/payments",
        json=body,
        auth=_auth(account),
        headers={"Idempotence-Key": request.payment_ref},
    )
    data = json_of(response)
    confirmation = data.get("confirmation") or {}
    return CreatedPayment(str(data["id"]), confirmation.get("confirmation_url"), str(data.get("status")))


async def get_payment(
    http: httpx.AsyncClient, account: Any, provider_payment_id: str, payment_ref: str | None
) -> ProviderEvent:
    response = await send(http, "GET", f"{API}/payments/{provider_payment_id}", auth=_auth(account))
    data = json_of(response)
    return _payment_event(data, "api.payment")


async def refund(http: httpx.AsyncClient, account: Any, request: RefundRequest) -> ProviderEvent:
    body = {
        "payment_id": request.provider_payment_id,
        "amount": _money(request.amount, request.currency),
        "description": request.reason[:250],
        "metadata": {"refund_ref": request.refund_ref},
    }
    response = await send(
        http,
        "POST",
        f"{API}/refunds",
        json=body,
        auth=_auth(account),
        headers={"Idempotence-Key": request.refund_ref},
    )
    data = json_of(response)
    if "id" not in data:
        raise ProviderError("refund answer without id", transient=True)
    return _refund_event(data, "api.refund")


async def _read_refund(http: httpx.AsyncClient, account: Any, provider_refund_id: str) -> ProviderEvent:
    response = await send(http, "GET", f"{API}/refunds/{provider_refund_id}", auth=_auth(account))
    return _refund_event(json_of(response), "api.refund")


async def get_refund(http: httpx.AsyncClient, account: Any, request: RefundRequest) -> ProviderEvent:
    """By YooKassa's id when known, else among the payment's refunds by our ``refund_ref``."""
    if request.provider_refund_id:
        return await _read_refund(http, account, request.provider_refund_id)
    response = await send(
        http,
        "GET",
        f"{API}/refunds",
        params={"payment_id": request.provider_payment_id, "limit": 100},
        auth=_auth(account),
    )
    return refund_by_ref(
        json_of(response).get("items"), request, lambda item: _refund_event(item, "api.refund")
    )


async def cancel_payment(http: httpx.AsyncClient, account: Any, provider_payment_id: str) -> None:
    """``POST /payments/{id}/cancel``: YooKassa cancels a payment that is ``waiting_for_capture``;
    a ``pending`` one cannot be cancelled (it expires on its own), which YooKassa answers with
    400 — a non-transient ProviderError the caller records."""
    await send(
        http,
        "POST",
        f"{API}/payments/{provider_payment_id}/cancel",
        json={},
        auth=_auth(account),
        headers={"Idempotence-Key": f"cancel-{provider_payment_id}"},
    )


def ok_response(outcome: str) -> Response[Any]:
    return Response({}, status_code=200)


def error_response(rejection: CallbackRejected) -> Response[Any]:
    return problem(rejection)  # type: ignore[no-any-return]
