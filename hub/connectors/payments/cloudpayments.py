"""CloudPayments API (https://developers.cloudpayments.ru).

Requests: HTTP Basic ``PublicId:ApiSecret``, JSON, ``X-Request-ID`` as the idempotency key.
``POST /orders/create`` makes a payment link (``Model.Url``), ``POST /orders/cancel`` withdraws an
unpaid one, ``POST /v2/payments/find`` looks a payment up by ``InvoiceId``, ``POST /payments/refund``
refunds (``TransactionId``, ``Amount``). Payments are one-stage (``RequireConfirmation: false``), so
there is never an authorised-only transaction for ``/payments/void``.
Notifications (Check, Pay, Fail, Refund) arrive form-encoded (or JSON) and are signed in
``Content-HMAC`` (and ``X-Content-HMAC``): base64 of HMAC-SHA256 of the raw body (as received,
before any decoding) with the API secret. The answer is always HTTP 200 with ``{"code": N}``: 0
accepts; refusals use the documented codes (10 unknown invoice, 11 wrong AccountId, 12 wrong
amount, 13 payment cannot be accepted, 20 payment expired). CloudPayments reads the code, and takes
any other HTTP status for a failed delivery that it repeats.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import httpx
import msgspec
from litestar import Response

from contracts.payments import CloudPaymentsNotification
from hub.connectors.payments.base import (
    CallbackRejected,
    CreatedPayment,
    PaymentRequest,
    ProviderError,
    ProviderEvent,
    RefundRequest,
    equal,
    header,
    json_of,
    pa_credential,
    send,
)
from hub.payments.money import parse_amount, quantize

__all__ = [
    "API",
    "CODES",
    "PROVIDER",
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

PROVIDER = "cloudpayments"
API = "https://api.cloudpayments.ru"
# The hub's rejection codes -> CloudPayments' documented answer codes.
CODES = {
    "unknown_invoice": 10,
    "unknown_payment": 10,
    "wrong_account": 11,
    "amount_mismatch": 12,
    "currency_mismatch": 12,
    "refund_exceeds_paid": 13,
    "invoice_not_payable": 13,
    "bad_signature": 13,
    "malformed_callback": 13,
    "payload_too_large": 13,
    "replayed_callback": 13,
    "invoice_expired": 20,
}
KINDS = ("check", "pay", "fail", "refund")


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify(account: Any, body: bytes, headers: Mapping[str, str], remote: str | None, now: float) -> None:
    presented = header(headers, "content-hmac") or header(headers, "x-content-hmac")
    if not presented:
        raise CallbackRejected(401, "bad_signature", "Content-HMAC missing")
    if not equal(sign(body, pa_credential(account, "api_secret")), presented.strip()):
        raise CallbackRejected(401, "bad_signature", "Content-HMAC does not match")
    return None


def _fields(body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    content_type = (header(headers, "content-type") or "").lower()
    try:
        if "json" in content_type:
            data = msgspec.json.decode(body)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            return data
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body)))
    except (ValueError, UnicodeDecodeError, msgspec.DecodeError) as exc:
        raise CallbackRejected(400, "malformed_callback", f"Unreadable notification: {exc}") from exc


def parse(body: bytes, headers: Mapping[str, str], kind: str | None = None) -> ProviderEvent:
    data = _fields(body, headers)
    try:
        note = msgspec.convert(data, CloudPaymentsNotification, strict=False)
    except msgspec.ValidationError as exc:
        raise CallbackRejected(400, "malformed_callback", f"Not a CloudPayments notification: {exc}") from exc
    amount = parse_amount(note.Amount)
    if amount is None:
        raise CallbackRejected(400, "malformed_callback", "Amount is not a number")
    kind = (kind or ("refund" if note.OperationType == "Refund" else "pay")).lower()
    if kind == "refund":
        return ProviderEvent(
            "refund",
            "succeeded",
            "Refund",
            payment_ref=note.InvoiceId,
            provider_payment_id=None,
            capture_id=str(note.PaymentTransactionId) if note.PaymentTransactionId else None,
            provider_refund_id=str(note.TransactionId),
            amount=amount,
            currency=note.Currency,
            event_id=str(note.TransactionId),
            raw=data,
        )
    if kind == "check":
        state = "check"
    elif kind == "fail":
        state = "failed_attempt"  # one card attempt failed; the order stays payable
    else:
        state = "succeeded" if (note.Status or "Completed") == "Completed" else "pending"
    return ProviderEvent(
        "payment" if kind != "check" else "check",
        state,
        kind.title(),
        payment_ref=note.InvoiceId,
        provider_payment_id=None,
        capture_id=str(note.TransactionId),
        amount=amount,
        currency=note.Currency,
        event_id=str(note.TransactionId),
        raw=data,
    )


def _auth(account: Any) -> httpx.BasicAuth:
    return httpx.BasicAuth(pa_credential(account, "public_id"), pa_credential(account, "api_secret"))


async def _call(
    http: httpx.AsyncClient, account: Any, path: str, body: dict[str, Any], key: str | None
) -> Any:
    headers = {"X-Request-ID": key} if key else {}
    response = await send(http, "POST", f"{API}{path}", json=body, auth=_auth(account), headers=headers)
    data = json_of(response)
    if not data.get("Success"):
        raise ProviderError(f"CloudPayments {path}: {data.get('Message')}", transient=False)
    return data.get("Model")


async def create_payment(http: httpx.AsyncClient, account: Any, request: PaymentRequest) -> CreatedPayment:
    body = {
        "Amount": float(quantize(request.amount, request.currency)),
        "Currency": request.currency,
        "Description": request.description,
        "InvoiceId": request.payment_ref,
        "RequireConfirmation": False,
        "SendEmail": False,
        "SuccessRedirectUrl": request.return_url,
    }
    model = await _call(http, account, "/orders/create", body, request.payment_ref)
    return CreatedPayment(str(model["Id"]), model.get("Url"), "created")


async def get_payment(
    http: httpx.AsyncClient, account: Any, provider_payment_id: str, payment_ref: str | None
) -> ProviderEvent:
    try:
        model = await _call(http, account, "/v2/payments/find", {"InvoiceId": payment_ref}, None)
    except ProviderError as exc:
        if exc.transient:
            raise
        return ProviderEvent("payment", "pending", "api.find", payment_ref=payment_ref)
    status = str(model.get("Status", ""))
    state = {"Completed": "succeeded", "Declined": "canceled", "Cancelled": "canceled"}.get(status, "pending")
    return ProviderEvent(
        "payment",
        state,
        "api.find",
        payment_ref=model.get("InvoiceId") or payment_ref,
        capture_id=str(model.get("TransactionId")),
        amount=parse_amount(model.get("Amount")),
        currency=model.get("Currency"),
        event_id=str(model.get("TransactionId")),
        raw=model,
    )


async def refund(http: httpx.AsyncClient, account: Any, request: RefundRequest) -> ProviderEvent:
    if not request.capture_id:
        raise ProviderError("no TransactionId to refund", transient=False)
    body = {
        "TransactionId": int(request.capture_id),
        "Amount": float(quantize(request.amount, request.currency)),
    }
    model = await _call(http, account, "/payments/refund", body, request.refund_ref)
    # CloudPayments refunds at once; the Refund notification that follows tells the same fact.
    return ProviderEvent(
        "refund",
        "succeeded",
        "api.refund",
        capture_id=request.capture_id,
        provider_refund_id=str(model["TransactionId"]),
        refund_ref=request.refund_ref,
        amount=request.amount,
        currency=request.currency,
        raw=model,
    )


async def get_refund(http: httpx.AsyncClient, account: Any, request: RefundRequest) -> ProviderEvent | None:
    """Refunds are synchronous at CloudPayments and a Refund notification follows each: there is
    no lookup by our reference, so an unanswered one waits for that notification (or staff)."""
    return None


async def cancel_payment(http: httpx.AsyncClient, account: Any, provider_payment_id: str) -> None:
    """``POST /orders/cancel`` with the order's ``Id``: the payment link stops taking money."""
    await _call(http, account, "/orders/cancel", {"Id": provider_payment_id}, f"cancel-{provider_payment_id}")


def ok_response(outcome: str) -> Response[Any]:
    return Response({"code": 0}, status_code=200)


def error_response(rejection: CallbackRejected) -> Response[Any]:
    """HTTP 200 with the refusal code, as documented (the hub's own code in ``X-Hub-Problem``)."""
    code = rejection.provider_code or CODES.get(rejection.code, 13)
    return Response({"code": code}, status_code=200, headers={"X-Hub-Problem": rejection.code})
