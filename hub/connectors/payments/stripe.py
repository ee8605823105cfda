"""Stripe API (https://docs.stripe.com/api): Checkout Sessions, Refunds, signed webhook Events.

A withdrawn invoice's Checkout Session is expired (``POST /v1/checkout/sessions/{id}/expire``); a
refund is looked up by its id, or by our ``refund_ref`` metadata among the payment intent's refunds
(``GET /v1/refunds?payment_intent=...``).

Requests are form-encoded with ``Authorization: Bearer sk_...`` and an ``Idempotency-Key``.
Events are signed in ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]``: HMAC-SHA256 with the
endpoint secret over ``"{t}.{raw body}"``; any ``v1`` may match; ``t`` must be within 300 s.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import httpx
import msgspec
from litestar import Response

from contracts.payments import StripeEvent
from hub.connectors.payments.base import (
    CallbackRejected,
    CreatedPayment,
    PaymentRequest,
    ProviderEvent,
    RefundRequest,
    equal,
    header,
    json_of,
    pa_credential,
    problem,
    refund_by_ref,
    send,
)
from hub.payments.money import from_minor, to_minor

__all__ = [
    "API",
    "PROVIDER",
    "TOLERANCE",
    "cancel_payment",
    "create_payment",
    "enrich",
    "error_response",
    "get_payment",
    "get_refund",
    "ok_response",
    "parse",
    "refund",
    "sign",
    "verify",
]

PROVIDER = "stripe"
API = "https://api.stripe.com/v1"
TOLERANCE = 300
_REFUND_STATES = {"succeeded": "succeeded", "pending": "pending", "failed": "failed", "canceled": "failed"}


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """A ``Stripe-Signature`` header exactly as Stripe builds it."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(account: Any, body: bytes, headers: Mapping[str, str], remote: str | None, now: float) -> str:
    raw = header(headers, "stripe-signature")
    if not raw:
        raise CallbackRejected(400, "bad_signature", "Stripe-Signature missing")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in raw.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise CallbackRejected(400, "bad_signature", "Stripe-Signature has no t or v1")
    secret = pa_credential(account, "webhook_secret")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    # Compare with every candidate (no early exit) so timing says nothing about which matched.
    matched = [equal(expected, candidate) for candidate in signatures]
    if not any(matched):
        raise CallbackRejected(400, "bad_signature", "No v1 signature matches")
    if abs(now - timestamp) > TOLERANCE:
        raise CallbackRejected(400, "stale_callback", "Timestamp outside the 300 s tolerance")
    return hashlib.sha256(raw.encode()).hexdigest()


def _session_event(session: dict[str, Any], event_type: str) -> ProviderEvent:
    if event_type in ("checkout.session.expired", "checkout.session.async_payment_failed"):
        state = "canceled"
    elif session.get("payment_status") in ("paid", "no_payment_required"):
        state = "succeeded"
    elif session.get("status") == "expired":
        state = "canceled"
    else:
        state = "pending"
    currency = str(session.get("currency") or "").upper() or None
    total = session.get("amount_total")
    metadata = session.get("metadata") or {}
    return ProviderEvent(
        "payment",
        state,
        event_type,
        payment_ref=session.get("client_reference_id") or metadata.get("invoice_ref"),
        provider_payment_id=str(session["id"]),
        capture_id=session.get("payment_intent") if isinstance(session.get("payment_intent"), str) else None,
        amount=from_minor(int(total), currency) if isinstance(total, int) and currency else None,
        currency=currency,
        raw=session,
    )


def _refund_event(obj: dict[str, Any], event_type: str) -> ProviderEvent:
    currency = str(obj.get("currency") or "").upper() or None
    amount = obj.get("amount")
    metadata = obj.get("metadata") or {}
    return ProviderEvent(
        "refund",
        _REFUND_STATES.get(str(obj.get("status")), "pending"),
        event_type,
        capture_id=obj.get("payment_intent") if isinstance(obj.get("payment_intent"), str) else None,
        provider_refund_id=str(obj["id"]),
        refund_ref=metadata.get("refund_ref") if isinstance(metadata, dict) else None,
        amount=from_minor(int(amount), currency) if isinstance(amount, int) and currency else None,
        currency=currency,
        raw=obj,
    )


def parse(body: bytes, headers: Mapping[str, str], kind: str | None = None) -> ProviderEvent:
    try:
        event = msgspec.json.decode(body, type=StripeEvent)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CallbackRejected(400, "malformed_callback", f"Not a Stripe event: {exc}") from exc
    obj = event.data.object
    try:
        if event.type.startswith("checkout.session.") and obj.get("object") == "checkout.session":
            parsed = _session_event(obj, event.type)
        elif event.type.startswith("refund.") and obj.get("object") == "refund":
            parsed = _refund_event(obj, event.type)
        else:
            return ProviderEvent("ignored", "ignored", event.type, event_id=event.id)
    except (KeyError, TypeError, ValueError) as exc:
        raise CallbackRejected(400, "malformed_callback", f"Event object incomplete: {exc}") from exc
    return ProviderEvent(**{**parsed.__dict__, "event_id": event.id})


def _auth(account: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {pa_credential(account, 'secret_key')}"}


async def enrich(http: httpx.AsyncClient, account: Any, event: ProviderEvent) -> ProviderEvent:
    """A refund event names only its payment_intent: read the intent's metadata for the invoice
    (set at checkout), so a refund told before the session's own event still finds its invoice."""
    if event.kind != "refund" or event.payment_ref or not event.capture_id:
        return event
    response = await send(http, "GET", f"{API}/payment_intents/{event.capture_id}", headers=_auth(account))
    metadata = json_of(response).get("metadata") or {}
    ref = metadata.get("invoice_ref") if isinstance(metadata, dict) else None
    return ProviderEvent(**{**event.__dict__, "payment_ref": ref}) if ref else event


async def create_payment(http: httpx.AsyncClient, account: Any, request: PaymentRequest) -> CreatedPayment:
    form = {
        "mode": "payment",
        "client_reference_id": request.payment_ref,
        "metadata[invoice_ref]": request.payment_ref,
        "payment_intent_data[metadata][invoice_ref]": request.payment_ref,
        "line_items[0][quantity]": "1",
        "line_items[0][price_data][currency]": request.currency.lower(),
        "line_items[0][price_data][unit_amount]": str(to_minor(request.amount, request.currency)),
        "line_items[0][price_data][product_data][name]": request.description[:250],
        "success_url": request.return_url or request.notification_url,
    }
    response = await send(
        http,
        "POST",
        f"{API}/checkout/sessions",
        data=form,
        headers={**_auth(account), "Idempotency-Key": request.payment_ref},
    )
    data = json_of(response)
    return CreatedPayment(str(data["id"]), data.get("url"), str(data.get("status")))


async def get_payment(
    http: httpx.AsyncClient, account: Any, provider_payment_id: str, payment_ref: str | None
) -> ProviderEvent:
    response = await send(
        http, "GET", f"{API}/checkout/sessions/{provider_payment_id}", headers=_auth(account)
    )
    return _session_event(json_of(response), "api.checkout.session")


async def refund(http: httpx.AsyncClient, account: Any, request: RefundRequest) -> ProviderEvent:
    form = {
        "payment_intent": request.capture_id or "",
        "amount": str(to_minor(request.amount, request.currency)),
        "metadata[refund_ref]": request.refund_ref,
        "metadata[reason]": request.reason[:500],
    }
    response = await send(
        http,
        "POST",
        f"{API}/refunds",
        data=form,
        headers={**_auth(account), "Idempotency-Key": request.refund_ref},
    )
    return _refund_event(json_of(response), "api.refund")


async def get_refund(http: httpx.AsyncClient, account: Any, request: RefundRequest) -> ProviderEvent:
    if request.provider_refund_id:
        response = await send(
            http, "GET", f"{API}/refunds/{request.provider_refund_id}", headers=_auth(account)
        )
        return _refund_event(json_of(response), "api.refund")
    response = await send(
        http,
        "GET",
        f"{API}/refunds",
        params={"payment_intent": request.capture_id or "", "limit": 100},
        headers=_auth(account),
    )
    return refund_by_ref(
        json_of(response).get("data"), request, lambda item: _refund_event(item, "api.refund")
    )


async def cancel_payment(http: httpx.AsyncClient, account: Any, provider_payment_id: str) -> None:
    """Expire the open Checkout Session: its page stops taking money (a completed session is
    refused by Stripe with 400, a non-transient ProviderError)."""
    await send(
        http,
        "POST",
        f"{API}/checkout/sessions/{provider_payment_id}/expire",
        headers={**_auth(account), "Idempotency-Key": f"expire-{provider_payment_id}"},
    )


def ok_response(outcome: str) -> Response[Any]:
    return Response({"received": True}, status_code=200)


def error_response(rejection: CallbackRejected) -> Response[Any]:
    return problem(rejection)  # type: ignore[no-any-return]
