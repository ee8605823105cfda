"""Payment-provider connectors (PAY-5, PAY-6): one module per provider, same shape.

Each module exposes ``PROVIDER`` plus:

* ``verify(account, body, headers, remote, now) -> replay_key | None`` — the provider's own
  authentication scheme (raises :class:`CallbackRejected`);
* ``parse(body, headers, kind) -> ProviderEvent`` — the callback body as a normalised event;
* ``ok_response(outcome)`` / ``error_response(rejection)`` — the answer that provider expects;
* ``create_payment``, ``get_payment``, ``cancel_payment``, ``refund``, ``get_refund`` — its HTTP API
  (httpx, timeouts, idempotency keys, short tenacity retries on transport errors). ``refund``
  returns the provider's answer as an event, or None when the answer names no refund yet;
  ``get_refund`` looks a refund up by the provider's id or by our ``refund_ref``.
"""

from __future__ import annotations

from types import ModuleType

from hub.connectors.payments.base import (
    REFUND_NOT_FOUND,
    CallbackRejected,
    CreatedPayment,
    PaymentRequest,
    ProviderError,
    ProviderEvent,
    RefundRequest,
)

__all__ = [
    "PROVIDERS",
    "REFUND_NOT_FOUND",
    "CallbackRejected",
    "CreatedPayment",
    "PaymentRequest",
    "ProviderError",
    "ProviderEvent",
    "RefundRequest",
    "connector",
]

PROVIDERS = ("yookassa", "tbank", "cloudpayments", "stripe", "standard")


def connector(provider: str) -> ModuleType:
    from hub.connectors.payments import cloudpayments, standard, stripe, tbank, yookassa

    modules = {
        "yookassa": yookassa,
        "tbank": tbank,
        "cloudpayments": cloudpayments,
        "stripe": stripe,
        "standard": standard,
    }
    return modules[provider]
