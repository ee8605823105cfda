"""Standard Webhooks (https://www.standardwebhooks.com) for gateways that speak it.

Headers ``webhook-id``, ``webhook-timestamp`` (unix seconds) and ``webhook-signature``: a
space-separated list of ``v1,<base64>`` where the signature is HMAC-SHA256, keyed with the
base64-decoded part of the ``whsec_`` secret, over ``"{id}.{timestamp}.{raw body}"``. The body is
:class:`contracts.payments.StandardPaymentEvent`. Such a gateway has no API the hub can call: the
payment link comes from the account's ``checkout_url`` template.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, get_args, get_type_hints
from urllib.parse import quote

import httpx
import msgspec
from litestar import Response

from contracts.payments import StandardPaymentEvent
from hub.connectors.payments.base import (
    CallbackRejected,
    CreatedPayment,
    PaymentRequest,
    ProviderError,
    ProviderEvent,
    RefundRequest,
    equal,
    header,
    pa_credential,
    problem,
)
from hub.payments.money import parse_amount, quantize

__all__ = [
    "PROVIDER",
    "TOLERANCE",
    "cancel_payment",
    "create_payment",
    "error_response",
    "get_payment",
    "get_refund",
    "ok_response",
    "parse",
    "refund",
    "sign",
    "verify",
]

PROVIDER = "standard"
TOLERANCE = 300


def _key(secret: str) -> bytes:
    raw = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return raw.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64>`` exactly as the reference libraries produce it."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(_key(secret), content, hashlib.sha256).digest()).decode()


def verify(account: Any, body: bytes, headers: Mapping[str, str], remote: str | None, now: float) -> str:
    msg_id = header(headers, "webhook-id")
    raw_ts = header(headers, "webhook-timestamp")
    raw_sig = header(headers, "webhook-signature")
    if not msg_id or not raw_ts or not raw_sig:
        raise CallbackRejected(
            400, "bad_signature", "webhook-id, webhook-timestamp and webhook-signature are required"
        )
    if not raw_ts.isdigit():
        raise CallbackRejected(400, "bad_signature", "webhook-timestamp is not a number")
    timestamp = int(raw_ts)
    expected = sign(pa_credential(account, "webhook_secret"), msg_id, timestamp, body)
    candidates = [part for part in raw_sig.split(" ") if part.startswith("v1,")]
    if not any([equal(expected, candidate) for candidate in candidates]):
        raise CallbackRejected(400, "bad_signature", "No v1 signature matches")
    if abs(now - timestamp) > TOLERANCE:
        raise CallbackRejected(400, "stale_callback", "Timestamp outside the 300 s tolerance")
    return hashlib.sha256(f"{msg_id}.{raw_ts}.{raw_sig}".encode()).hexdigest()


class _Envelope(msgspec.Struct):
    type: str


_KNOWN_TYPES = frozenset(get_args(get_type_hints(StandardPaymentEvent)["type"]))


def parse(body: bytes, headers: Mapping[str, str], kind: str | None = None) -> ProviderEvent:
    try:
        event_type = msgspec.json.decode(body, type=_Envelope).type
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CallbackRejected(400, "malformed_callback", f"Not a Standard Webhooks event: {exc}") from exc
    if event_type not in _KNOWN_TYPES:
        # A type this hub does not handle (the gateway added one, or sends everything): accepted
        # and recorded as ignored, as Stripe's and YooKassa's other types are. A 4xx would make
        # the gateway retry it for days.
        return ProviderEvent("ignored", "ignored", event_type, event_id=header(headers, "webhook-id"))
    try:
        event = msgspec.json.decode(body, type=StandardPaymentEvent)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CallbackRejected(400, "malformed_callback", f"Not a payment event: {exc}") from exc
    amount = parse_amount(event.data.amount)
    if amount is None:
        raise CallbackRejected(400, "malformed_callback", "amount is not a number")
    subject, _, state = event.type.partition(".")
    return ProviderEvent(
        subject,
        state,
        event.type,
        payment_ref=event.data.invoice_ref,
        provider_payment_id=event.data.payment_id,
        capture_id=event.data.payment_id,
        provider_refund_id=event.data.refund_id,
        refund_ref=event.data.refund_ref,
        amount=amount,
        currency=event.data.currency,
        event_id=header(headers, "webhook-id"),
        raw=msgspec.to_builtins(event),
    )


async def create_payment(http: httpx.AsyncClient, account: Any, request: PaymentRequest) -> CreatedPayment:
    template = pa_credential(account, "checkout_url")
    amount = f"{quantize(request.amount, request.currency):f}"
    url = template.format(ref=quote(request.payment_ref), amount=amount, currency=request.currency)
    return CreatedPayment(request.payment_ref, url, "created")


async def get_payment(
    http: httpx.AsyncClient, account: Any, provider_payment_id: str, payment_ref: str | None
) -> ProviderEvent:
    raise ProviderError("a Standard Webhooks gateway has no status API", transient=False)


async def refund(http: httpx.AsyncClient, account: Any, request: RefundRequest) -> ProviderEvent | None:
    """No API to call: the gateway refunds on its own side and tells the hub with a refund.*
    webhook carrying our ``refund_ref``. So there is no answer to apply."""
    return None


async def get_refund(http: httpx.AsyncClient, account: Any, request: RefundRequest) -> ProviderEvent | None:
    return None


async def cancel_payment(http: httpx.AsyncClient, account: Any, provider_payment_id: str) -> None:
    """No API: the gateway's link stops mattering, a late payment webhook reaches staff."""


def ok_response(outcome: str) -> Response[Any]:
    return Response(None, status_code=204)


def error_response(rejection: CallbackRejected) -> Response[Any]:
    return problem(rejection)  # type: ignore[no-any-return]
