"""Payment tables: price list, provider accounts, invoices with lines, refunds, received callbacks."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from hub.db import Base, Id, JSONType, PortableId, utcnow
from hub.payments.money import plain

__all__ = [
    "CallbackAttempt",
    "Invoice",
    "InvoiceLine",
    "Money",
    "PaymentAccount",
    "PriceItem",
    "Refund",
]


class Money(TypeDecorator[Decimal]):
    """Exact decimals on both engines: NUMERIC on PostgreSQL, text on SQLite (whose NUMERIC is a float)."""

    impl = Numeric(18, 4)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(18, 4))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return str(Decimal(value)) if dialect.name == "sqlite" else Decimal(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        # Read models show money in the currency's minor units (money.in_units); quantities and
        # percents as plain numbers. Never normalize() alone: that is exponent form (2.26E+3).
        return plain(value if isinstance(value, Decimal) else Decimal(str(value)))


class PriceItem(Id, Base):
    """PAY-1: one line of the account's price list."""

    __tablename__ = "price_items"
    __table_args__ = (UniqueConstraint("account_id", "code"),)

    account_id: Mapped[int] = mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))
    section: Mapped[str] = mapped_column(String(10))  # service | work | product
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(300))
    unit: Mapped[str] = mapped_column(String(40))
    price: Mapped[Decimal] = mapped_column(Money())
    vat_rate: Mapped[Decimal | None] = mapped_column(Money())  # percent; None = without VAT
    # Seed 002 §24: "возможность возврата" — the client may ask for a refund of this service.
    refundable: Mapped[bool] = mapped_column(Boolean, default=False)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PaymentAccount(Id, Base):
    """PAY-5: the account's connection to one payment provider (credentials kept per account)."""

    __tablename__ = "payment_accounts"

    account_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    provider: Mapped[str] = mapped_column(String(20))  # yookassa | tbank | cloudpayments | stripe | standard
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    # Provider credentials (shop id + secret key, terminal key + password, ...). Never returned.
    credentials: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # The unguessable part of this account's callback URL: /api/webhooks/payments/{provider}/{key}.
    webhook_key: Mapped[str] = mapped_column(String(64), unique=True)
    # YooKassa signs nothing: callbacks are accepted only from these networks (CIDR list).
    allowed_networks: Mapped[list[str]] = mapped_column(JSONType, default=list)
    return_url: Mapped[str | None] = mapped_column(String(2000))
    # PAY-9: after this long without a callback the provider is asked directly.
    reconcile_after_seconds: Mapped[int] = mapped_column(Integer, default=900)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Invoice(Id, Base):
    """PAY-2/PAY-3: an invoice on a ticket. ``status`` only changes through the transition table."""

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("payment_account_id", "payment_ref"),
        # A provider's callback names the payment by its own id (or a capture's): one index lookup each.
        Index("ix_invoices_provider_payment", "payment_account_id", "provider_payment_id"),
        Index("ix_invoices_provider_capture", "payment_account_id", "provider_capture_id"),
        Index("ix_invoices_account_ticket", "account_id", "ticket_id"),
        Index("ix_invoices_reconcile", "status", "reconcile_due_at"),
    )

    account_id: Mapped[int] = mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))
    ticket_id: Mapped[int] = mapped_column(PortableId)
    contact_id: Mapped[int | None] = mapped_column(PortableId)  # the payer (the ticket's client)
    status: Mapped[str] = mapped_column(String(12), default="draft")
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    paid_amount: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    refunded_amount: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    # Refunds requested or approved but not finished: reserved against what was paid.
    reserved_amount: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    payment_account_id: Mapped[int | None] = mapped_column(
        PortableId, ForeignKey("payment_accounts.id", ondelete="SET NULL")
    )
    provider: Mapped[str | None] = mapped_column(String(20))
    # Our reference for the current payment attempt (OrderId / InvoiceId / metadata); new per issue.
    payment_ref: Mapped[str | None] = mapped_column(String(64))
    issue_count: Mapped[int] = mapped_column(Integer, default=0)
    provider_payment_id: Mapped[str | None] = mapped_column(String(128))
    # What refunds are made against: CloudPayments TransactionId, Stripe payment_intent, ...
    provider_capture_id: Mapped[str | None] = mapped_column(String(128))
    provider_status: Mapped[str | None] = mapped_column(String(40))
    payment_url: Mapped[str | None] = mapped_column(String(2000))
    issued_at: Mapped[datetime | None]
    paid_at: Mapped[datetime | None]
    marked_paid_by: Mapped[int | None] = mapped_column(PortableId)
    marked_paid_note: Mapped[str | None] = mapped_column(String(500))
    last_event_at: Mapped[datetime | None]
    # PAY-9: when the reconciliation job should ask the provider (None = nothing to ask).
    reconcile_due_at: Mapped[datetime | None]
    created_by: Mapped[int | None] = mapped_column(PortableId)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class InvoiceLine(Id, Base):
    __tablename__ = "invoice_lines"

    invoice_id: Mapped[int] = mapped_column(
        PortableId, ForeignKey("invoices.id", ondelete="CASCADE"), index=True
    )
    account_id: Mapped[int] = mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))
    price_item_id: Mapped[int | None] = mapped_column(
        PortableId, ForeignKey("price_items.id", ondelete="SET NULL")
    )
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(300))
    unit: Mapped[str] = mapped_column(String(40))
    unit_price: Mapped[Decimal] = mapped_column(Money())
    quantity: Mapped[Decimal] = mapped_column(Money())
    discount_percent: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    vat_rate: Mapped[Decimal | None] = mapped_column(Money())
    refundable: Mapped[bool] = mapped_column(Boolean, default=False)
    amount: Mapped[Decimal] = mapped_column(Money())
    refunded_amount: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    position: Mapped[int] = mapped_column(Integer, default=0)


class Refund(Id, Base):
    """PAY-7: requested -> approved -> refunded, or rejected, or failed."""

    __tablename__ = "refunds"
    __table_args__ = (
        Index("ix_refunds_account_invoice", "account_id", "invoice_id"),
        Index("ix_refunds_reconcile", "status", "reconcile_due_at"),
        UniqueConstraint("invoice_id", "provider_refund_id"),
    )

    account_id: Mapped[int] = mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))
    invoice_id: Mapped[int] = mapped_column(PortableId, ForeignKey("invoices.id", ondelete="CASCADE"))
    ticket_id: Mapped[int] = mapped_column(PortableId)
    status: Mapped[str] = mapped_column(String(10), default="requested")
    full: Mapped[bool] = mapped_column(Boolean, default=False)
    amount: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(3))
    # [{"line_id": 1, "amount": "10.00"}]
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    reason: Mapped[str] = mapped_column(Text)
    decision_reason: Mapped[str | None] = mapped_column(Text)
    requested_by_kind: Mapped[str] = mapped_column(String(10))  # contact | employee | provider
    requested_by_id: Mapped[int | None] = mapped_column(PortableId)
    decided_by: Mapped[int | None] = mapped_column(PortableId)
    provider_refund_id: Mapped[str | None] = mapped_column(String(128))
    provider_status: Mapped[str | None] = mapped_column(String(40))
    failure: Mapped[str | None] = mapped_column(String(500))
    reconcile_due_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]


class CallbackAttempt(Id, Base):
    """PAY-6: every callback received (and every reconciliation answer), raw, with its outcome.

    ``apply_key`` is unique: the row that applied an event holds it, so a second delivery of the
    same event (even a concurrent one) cannot apply it again. ``replay_key`` is unique too: the exact
    same signed request presented twice is a replay, not a provider retry (retries are re-signed).
    """

    __tablename__ = "payment_callbacks"
    __table_args__ = (
        UniqueConstraint("payment_account_id", "apply_key"),
        UniqueConstraint("payment_account_id", "replay_key"),
        Index("ix_payment_callbacks_account_received", "account_id", "received_at"),
    )

    account_id: Mapped[int | None] = mapped_column(PortableId, ForeignKey("accounts.id", ondelete="CASCADE"))
    payment_account_id: Mapped[int | None] = mapped_column(
        PortableId, ForeignKey("payment_accounts.id", ondelete="CASCADE")
    )
    provider: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(14), default="callback")  # callback | reconciliation | api
    apply_key: Mapped[str | None] = mapped_column(String(300))
    replay_key: Mapped[str | None] = mapped_column(String(64))
    event_id: Mapped[str | None] = mapped_column(String(200))
    event_type: Mapped[str | None] = mapped_column(String(80))
    outcome: Mapped[str] = mapped_column(String(12))  # applied | duplicate | ignored | rejected
    code: Mapped[str | None] = mapped_column(String(60))
    detail: Mapped[str | None] = mapped_column(String(500))
    invoice_id: Mapped[int | None] = mapped_column(PortableId)
    refund_id: Mapped[int | None] = mapped_column(PortableId)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    headers: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    body: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
