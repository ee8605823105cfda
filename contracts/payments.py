"""Payment-provider callback bodies the hub parses (PAY-6), as msgspec Structs.

Shapes follow each provider's documentation; fields the hub does not use are allowed and ignored
(providers add fields without notice). Amounts are checked against the invoice after parsing.

* YooKassa: ``{"type": "notification", "event": "payment.succeeded", "object": {...payment...}}``
  (no signature: sender network checked, then the object re-read through the API);
* T-Bank: the acquiring notification (``TerminalKey``, ``OrderId``, ``Success``, ``Status``,
  ``PaymentId``, ``ErrorCode``, ``Amount`` in kopecks, ``Token``), answered ``OK``;
* CloudPayments: Check / Pay / Fail / Refund notifications (form-encoded or JSON), ``Content-HMAC``
  signed, answered ``{"code": 0}``;
* Stripe: the Event object (``checkout.session.*``, ``refund.*``), ``Stripe-Signature`` signed;
* Standard Webhooks: :class:`StandardPaymentEvent`, the hub's own payload for gateways speaking
  Standard Webhooks (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``).

The JSON Schema files in ``contracts/schemas/`` are generated from these Structs (a test keeps them
equal; regenerate with ``python -m contracts.payments``).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from contracts._schema import SCHEMA_DIR, json_schema, write_schema_files

__all__ = [
    "SCHEMA_DIR",
    "CloudPaymentsNotification",
    "StandardPaymentData",
    "StandardPaymentEvent",
    "StripeEvent",
    "StripeEventData",
    "TBankNotification",
    "YooKassaAmount",
    "YooKassaNotification",
    "YooKassaObject",
    "schemas",
    "write_schemas",
]


class YooKassaAmount(msgspec.Struct):
    value: str
    currency: str


class YooKassaObject(msgspec.Struct):
    """A payment or a refund object (refunds carry ``payment_id``)."""

    id: str
    status: str
    amount: YooKassaAmount | None = None
    payment_id: str | None = None
    paid: bool | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    created_at: str | None = None


class YooKassaNotification(msgspec.Struct):
    type: Literal["notification"]
    event: str
    object: YooKassaObject


class TBankNotification(msgspec.Struct):
    TerminalKey: str
    OrderId: str
    Success: bool
    Status: str
    PaymentId: int | str
    ErrorCode: str
    Amount: int
    Token: str
    CardId: int | str | None = None
    Pan: str | None = None
    ExpDate: str | None = None
    RebillId: int | str | None = None
    Message: str | None = None
    Details: str | None = None


class CloudPaymentsNotification(msgspec.Struct):
    """Check, Pay, Fail and Refund share these fields (values arrive as form strings)."""

    TransactionId: int
    Amount: str
    OperationType: str | None = None
    Currency: str | None = None
    InvoiceId: str | None = None
    AccountId: str | None = None
    Status: str | None = None
    PaymentTransactionId: int | None = None
    DateTime: str | None = None
    TestMode: str | None = None
    Reason: str | None = None
    ReasonCode: str | None = None


class StripeEventData(msgspec.Struct):
    object: dict[str, Any]


class StripeEvent(msgspec.Struct):
    id: str
    object: Literal["event"]
    type: str
    created: int
    data: StripeEventData
    livemode: bool = False


class StandardPaymentData(msgspec.Struct):
    invoice_ref: str
    amount: str
    currency: str
    payment_id: str | None = None
    refund_id: str | None = None
    refund_ref: str | None = None


class StandardPaymentEvent(msgspec.Struct):
    """``type``: payment.pending | payment.succeeded | payment.canceled | refund.pending |
    refund.succeeded | refund.failed."""

    type: Literal[
        "payment.pending",
        "payment.succeeded",
        "payment.canceled",
        "refund.pending",
        "refund.succeeded",
        "refund.failed",
    ]
    timestamp: str
    data: StandardPaymentData


def schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema files of this contract, by file name."""
    return {
        "payments.yookassa_notification.schema.json": json_schema(YooKassaNotification),
        "payments.tbank_notification.schema.json": json_schema(TBankNotification),
        "payments.cloudpayments_notification.schema.json": json_schema(CloudPaymentsNotification),
        "payments.stripe_event.schema.json": json_schema(StripeEvent),
        "payments.standard_event.schema.json": json_schema(StandardPaymentEvent),
    }


def write_schemas() -> None:
    write_schema_files(schemas())


if __name__ == "__main__":
    write_schemas()
