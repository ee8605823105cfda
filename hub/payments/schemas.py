"""Price list, payment account, invoice and refund Structs (PAY-1..9). Money is a decimal string."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "CallbackAttemptRead",
    "InvoiceCreate",
    "InvoiceLineCreate",
    "InvoiceLineRead",
    "InvoiceLineUpdate",
    "InvoiceRead",
    "MarkPaid",
    "PaymentAccountCreate",
    "PaymentAccountRead",
    "PaymentAccountUpdate",
    "PriceItemCreate",
    "PriceItemRead",
    "PriceItemUpdate",
    "RefundCreate",
    "RefundDecision",
    "RefundLineIn",
    "RefundRead",
]

Section = Literal["service", "work", "product"]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^\S(.*\S)?$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
Unit = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
RefId = Annotated[int, msgspec.Meta(ge=1, le=2**62)]
Provider = Literal["yookassa", "tbank", "cloudpayments", "stripe", "standard"]


class PriceItemCreate(msgspec.Struct):
    section: Section
    code: Code
    name: Name
    unit: Unit
    price: Decimal
    vat_rate: Decimal | None = None
    refundable: bool = False


class PriceItemUpdate(msgspec.Struct):
    section: Section | msgspec.UnsetType = msgspec.UNSET
    code: Code | msgspec.UnsetType = msgspec.UNSET
    name: Name | msgspec.UnsetType = msgspec.UNSET
    unit: Unit | msgspec.UnsetType = msgspec.UNSET
    price: Decimal | msgspec.UnsetType = msgspec.UNSET
    vat_rate: Decimal | msgspec.UnsetType | None = msgspec.UNSET
    refundable: bool | msgspec.UnsetType = msgspec.UNSET
    archived: bool | msgspec.UnsetType = msgspec.UNSET


class PriceItemRead(msgspec.Struct):
    id: int
    section: str
    code: str
    name: str
    unit: str
    price: Decimal
    vat_rate: Decimal | None
    refundable: bool
    archived: bool


class PaymentAccountCreate(msgspec.Struct):
    """``credentials`` per provider: yookassa ``shop_id``, ``secret_key``; tbank ``terminal_key``,
    ``password``; cloudpayments ``public_id``, ``api_secret``; stripe ``secret_key``,
    ``webhook_secret``; standard ``webhook_secret`` (whsec_...), ``checkout_url`` template."""

    provider: Provider
    name: Name
    credentials: dict[str, str]
    is_default: bool = True
    allowed_networks: list[str] | None = None
    return_url: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    reconcile_after_seconds: Annotated[int, msgspec.Meta(ge=30, le=7 * 24 * 3600)] = 900


class PaymentAccountUpdate(msgspec.Struct):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    credentials: dict[str, str] | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET
    is_default: bool | msgspec.UnsetType = msgspec.UNSET
    allowed_networks: list[str] | msgspec.UnsetType = msgspec.UNSET
    return_url: str | msgspec.UnsetType | None = msgspec.UNSET
    reconcile_after_seconds: Annotated[int, msgspec.Meta(ge=30, le=7 * 24 * 3600)] | msgspec.UnsetType = (
        msgspec.UNSET
    )


class PaymentAccountRead(msgspec.Struct):
    id: int
    provider: str
    name: str
    active: bool
    is_default: bool
    credential_names: list[str]
    allowed_networks: list[str]
    return_url: str | None
    reconcile_after_seconds: int
    webhook_url: str


class InvoiceLineCreate(msgspec.Struct):
    """A line from the price list (its name, unit and price are copied) or free text."""

    price_item_id: RefId | None = None
    name: Name | None = None
    unit: Unit | None = None
    unit_price: Decimal | None = None
    quantity: Decimal = Decimal(1)
    discount_percent: Decimal = Decimal(0)


class InvoiceLineUpdate(msgspec.Struct):
    unit_price: Decimal | msgspec.UnsetType = msgspec.UNSET
    quantity: Decimal | msgspec.UnsetType = msgspec.UNSET
    discount_percent: Decimal | msgspec.UnsetType = msgspec.UNSET


class InvoiceLineRead(msgspec.Struct):
    id: int
    price_item_id: int | None
    code: str
    name: str
    unit: str
    unit_price: Decimal
    quantity: Decimal
    discount_percent: Decimal
    vat_rate: Decimal | None
    refundable: bool
    amount: Decimal
    refunded_amount: Decimal


class InvoiceCreate(msgspec.Struct):
    ticket_id: RefId
    lines: list[InvoiceLineCreate] = msgspec.field(default_factory=list)
    payment_account_id: RefId | None = None


class MarkPaid(msgspec.Struct):
    note: Annotated[str, msgspec.Meta(max_length=500)] | None = None


class InvoiceRead(msgspec.Struct):
    id: int
    ticket_id: int
    contact_id: int | None
    status: str
    currency: str
    total: Decimal
    paid_amount: Decimal
    refunded_amount: Decimal
    refundable_amount: Decimal
    provider: str | None
    payment_account_id: int | None
    payment_ref: str | None
    provider_payment_id: str | None
    provider_status: str | None
    payment_url: str | None
    issued_at: datetime | None
    paid_at: datetime | None
    created_at: datetime
    lines: list[InvoiceLineRead]


class RefundLineIn(msgspec.Struct):
    line_id: RefId
    amount: Decimal | None = None  # the line's whole remaining amount when left out


class RefundCreate(msgspec.Struct):
    """Full refund (``full: true``, lines ignored) or partial by ``lines``; ``reason`` required."""

    reason: Reason
    full: bool = False
    lines: list[RefundLineIn] = msgspec.field(default_factory=list)


class RefundDecision(msgspec.Struct):
    reason: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class RefundRead(msgspec.Struct):
    id: int
    invoice_id: int
    ticket_id: int
    status: str
    full: bool
    amount: Decimal
    currency: str
    lines: list[dict[str, Any]]
    reason: str
    decision_reason: str | None
    requested_by_kind: str
    requested_by_id: int | None
    decided_by: int | None
    provider_refund_id: str | None
    provider_status: str | None
    failure: str | None
    created_at: datetime
    decided_at: datetime | None
    completed_at: datetime | None


class CallbackAttemptRead(msgspec.Struct):
    id: int
    provider: str
    payment_account_id: int | None
    source: str
    outcome: str  # applied | duplicate | ignored | rejected | review (kept for staff)
    code: str | None
    apply_key: str | None
    detail: str | None
    event_id: str | None
    event_type: str | None
    invoice_id: int | None
    refund_id: int | None
    remote_addr: str | None
    headers: dict[str, Any]
    body: str
    received_at: datetime
