"""T-Bank (Tinkoff) internet acquiring API v2 (https://developer.tbank.ru/eacq).

Every request and every notification carries ``Token``: SHA-256 (hex) of the values of the
ROOT-level fields (nested objects such as ``Receipt``/``DATA`` and ``Token`` itself left out) plus
``Password``, sorted by field name and concatenated; booleans as ``true``/``false``. Methods used:
``Init`` (payment link), ``GetState``, ``Cancel`` (cancels an unpaid payment; full or partial
refund of a confirmed one). A notification is answered with the plain text ``OK``.

T-Bank gives a refund no id of its own. Each of our refunds is sent with ``ExternalRequestId`` =
our refund reference, which makes a repeated ``Cancel`` return the first one's result instead of
refunding again; the refund is named ``{PaymentId}:{ExternalRequestId}``. That same idempotent
call is how a refund is looked up (GetState only tells the payment's overall status, which says
"refunded" after the first partial refund already).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import httpx
import msgspec
from litestar import Response

from contracts.payments import TBankNotification
from hub.connectors.payments.base import (
    CallbackRejected,
    CreatedPayment,
    PaymentRequest,
    ProviderError,
    ProviderEvent,
    RefundRequest,
    decode_json,
    equal,
    json_of,
    pa_credential,
    problem,
    send,
)
from hub.payments.money import from_minor, to_minor

__all__ = [
    "API",
    "PROVIDER",
    "cancel_payment",
    "create_payment",
    "error_response",
    "get_payment",
    "get_refund",
    "ok_response",
    "parse",
    "refund",
    "token",
    "token_string",
    "verify",
]

PROVIDER = "tbank"
API = "https://securepay.tinkoff.ru/v2"
_PAYMENT_STATES = {
    "CONFIRMED": "succeeded",
    "REJECTED": "canceled",
    "CANCELED": "canceled",
    "REVERSED": "canceled",
    "DEADLINE_EXPIRED": "canceled",
    "AUTH_FAIL": "canceled",
}
_REFUND_STATES = {"REFUNDED": "succeeded", "PARTIAL_REFUNDED": "succeeded"}
# A payment in these states has taken no money yet: Cancel only voids it.
_UNPAID = {"NEW", "FORM_SHOWED", "AUTHORIZING", "3DS_CHECKING", "3DS_CHECKED", "AUTHORIZED"}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def token_string(fields: Mapping[str, Any], password: str) -> str:
    """The concatenation that gets hashed (exposed for the documented test vector)."""
    root = {
        k: v for k, v in fields.items() if k != "Token" and not isinstance(v, (dict, list)) and v is not None
    }
    root["Password"] = password
    return "".join(_text(root[key]) for key in sorted(root))


def token(fields: Mapping[str, Any], password: str) -> str:
    return hashlib.sha256(token_string(fields, password).encode("utf-8")).hexdigest()


def verify(account: Any, body: bytes, headers: Mapping[str, str], remote: str | None, now: float) -> None:
    data = decode_json(body)
    presented = data.get("Token")
    if not isinstance(presented, str) or not presented:
        raise CallbackRejected(401, "bad_signature", "Token missing")
    expected = token(data, pa_credential(account, "password"))
    if not equal(expected, presented.lower()):
        raise CallbackRejected(401, "bad_signature", "Token does not match")
    if not equal(str(data.get("TerminalKey", "")), pa_credential(account, "terminal_key")):
        raise CallbackRejected(401, "bad_signature", "Notification is for another terminal")
    return None


def _event(data: dict[str, Any], event_type: str, amount_minor: int | None, currency: str) -> ProviderEvent:
    status = str(data.get("Status", ""))
    payment_id = str(data.get("PaymentId", ""))
    amount = from_minor(amount_minor, currency) if amount_minor is not None else None
    if status in _REFUND_STATES:
        ours = data.get("ExternalRequestId")
        return ProviderEvent(
            "refund",
            _REFUND_STATES[status],
            event_type,
            payment_ref=data.get("OrderId"),
            provider_payment_id=payment_id,
            provider_refund_id=f"{payment_id}:{ours}" if ours else None,
            refund_ref=str(ours) if ours else None,
            amount=amount,
            currency=None,
            raw=data,
            # Without our reference (a notification) the status and amounts name the fact.
            subject=f"{payment_id}:{status}:{amount_minor}:{data.get('NewAmount', '')}",
        )
    return ProviderEvent(
        "payment",
        _PAYMENT_STATES.get(status, "pending"),
        event_type,
        payment_ref=data.get("OrderId"),
        provider_payment_id=payment_id,
        capture_id=payment_id,
        amount=amount,
        currency=None,  # T-Bank amounts are in the terminal's currency (kopecks)
        raw=data,
    )


def parse(body: bytes, headers: Mapping[str, str], kind: str | None = None) -> ProviderEvent:
    try:
        note = msgspec.json.decode(body, type=TBankNotification)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CallbackRejected(400, "malformed_callback", f"Not a T-Bank notification: {exc}") from exc
    data = msgspec.json.decode(body)
    return _event(data, f"notification.{note.Status}", note.Amount, "RUB")


def _signed(account: Any, fields: dict[str, Any]) -> dict[str, Any]:
    fields = {"TerminalKey": pa_credential(account, "terminal_key"), **fields}
    fields["Token"] = token(fields, pa_credential(account, "password"))
    return fields


async def _call(http: httpx.AsyncClient, account: Any, method: str, fields: dict[str, Any]) -> dict[str, Any]:
    response = await send(http, "POST", f"{API}/{method}", json=_signed(account, fields))
    data = json_of(response)
    if not data.get("Success") or str(data.get("ErrorCode", "0")) != "0":
        raise ProviderError(
            f"T-Bank {method}: {data.get('ErrorCode')} {data.get('Message')} {data.get('Details')}",
            transient=False,
        )
    return data


async def create_payment(http: httpx.AsyncClient, account: Any, request: PaymentRequest) -> CreatedPayment:
    fields: dict[str, Any] = {
        "Amount": to_minor(request.amount, request.currency),
        "OrderId": request.payment_ref,  # unique per payment attempt: T-Bank's idempotency handle
        "Description": request.description[:140],
        "NotificationURL": request.notification_url,
    }
    if request.return_url:
        fields["SuccessURL"] = request.return_url
    data = await _call(http, account, "Init", fields)
    return CreatedPayment(str(data["PaymentId"]), data.get("PaymentURL"), str(data.get("Status")))


async def get_payment(
    http: httpx.AsyncClient, account: Any, provider_payment_id: str, payment_ref: str | None
) -> ProviderEvent:
    data = await _call(http, account, "GetState", {"PaymentId": provider_payment_id})
    amount = data.get("Amount")
    return _event(data, "api.GetState", int(amount) if amount is not None else None, "RUB")


async def refund(http: httpx.AsyncClient, account: Any, request: RefundRequest) -> ProviderEvent:
    """``Cancel`` with ``Amount`` and ``ExternalRequestId`` = our refund reference."""
    amount = to_minor(request.amount, request.currency)
    data = await _call(
        http,
        account,
        "Cancel",
        {
            "PaymentId": request.provider_payment_id,
            "Amount": amount,
            "ExternalRequestId": request.refund_ref,  # makes a repeated Cancel a no-op at T-Bank
        },
    )
    data = {
        **data,
        "Status": data.get("Status") or "PARTIAL_REFUNDED",
        "ExternalRequestId": request.refund_ref,
    }
    event = _event(data, "api.Cancel", amount, request.currency)
    if event.kind != "refund":
        raise ProviderError(f"T-Bank Cancel answered status {data.get('Status')}", transient=True)
    return event


async def get_refund(http: httpx.AsyncClient, account: Any, request: RefundRequest) -> ProviderEvent:
    """The same ``Cancel`` again: with our ``ExternalRequestId`` T-Bank answers the earlier
    refund's result (and makes it, if the first call never arrived)."""
    return await refund(http, account, request)


async def cancel_payment(http: httpx.AsyncClient, account: Any, provider_payment_id: str) -> None:
    """A withdrawn invoice's payment is voided while unpaid; a CONFIRMED one is left alone (Cancel
    would refund it): its late success reaches staff through the callback instead."""
    state = await _call(http, account, "GetState", {"PaymentId": provider_payment_id})
    if str(state.get("Status")) in _UNPAID:
        await _call(http, account, "Cancel", {"PaymentId": provider_payment_id})


def ok_response(outcome: str) -> Response[Any]:
    return Response("OK", status_code=200, media_type="text/plain")


def error_response(rejection: CallbackRejected) -> Response[Any]:
    return problem(rejection)  # type: ignore[no-any-return]
