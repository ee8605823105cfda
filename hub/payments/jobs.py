"""Outbox deliveries to the providers (create payment, refund, cancel) and the reconciliation job
(PAY-9). No session is held while a provider is being called."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import msgspec
import structlog
from sqlalchemy import select, update

from hub.connectors.payments import (
    REFUND_NOT_FOUND,
    CallbackRejected,
    PaymentRequest,
    ProviderError,
    ProviderEvent,
    RefundRequest,
    connector,
)
from hub.db import Database, utcnow
from hub.desk.actors import Actor
from hub.jobs import JobContext, periodic_job
from hub.outbox import (
    DeliveryContext,
    MessageView,
    PermanentDeliveryError,
    TransientDeliveryError,
    outbox_handler,
)
from hub.payments.apply import RawCallback, receive_event
from hub.payments.models import Invoice, PaymentAccount, Refund
from hub.payments.service import (
    CANCEL_PAYMENT_TOPIC,
    CREATE_PAYMENT_TOPIC,
    REFUND_TOPIC,
    fail_refund,
    lock_invoice,
)
from hub.settings import Settings

__all__ = ["RECONCILE_JOB", "reconcile", "reconcile_job", "webhook_url"]

log = structlog.get_logger("hub.payments.jobs")
RECONCILE_JOB = "payments.reconcile"
RECONCILE_BATCH = 50
# A marked-paid invoice is still asked about: the client may also have paid the link, and the
# provider's payment then wins (marked_paid -> paid) until the provider says the link expired.
RECONCILED_INVOICES = ("issued", "marked_paid")


def webhook_url(settings: Settings, pa: PaymentAccount) -> str:
    return f"{settings.server.public_url}/api/webhooks/payments/{pa.provider}/{pa.webhook_key}"


def _detached(row: Any) -> Any:
    """A plain copy of a row's columns, usable after its session is closed."""
    from types import SimpleNamespace

    return SimpleNamespace(**{c.key: getattr(row, c.key) for c in row.__table__.columns})


async def _load(db: Database, invoice_id: int) -> tuple[Any, Any] | None:
    async with db.sessionmaker() as session:
        invoice = await session.get(Invoice, invoice_id)
        if invoice is None or invoice.payment_account_id is None:
            return None
        pa = await session.get(PaymentAccount, invoice.payment_account_id)
        return (_detached(invoice), _detached(pa)) if pa is not None else None


def _raise(exc: ProviderError) -> None:
    if exc.transient:
        raise TransientDeliveryError(str(exc)) from exc
    raise PermanentDeliveryError(str(exc)) from exc


@outbox_handler(CREATE_PAYMENT_TOPIC)
async def create_payment(ctx: DeliveryContext, message: MessageView) -> None:
    """PAY-5: the payment at the provider and the client's payment link."""
    loaded = await _load(ctx.db, int(message.payload["invoice_id"]))
    if loaded is None:
        return
    invoice, pa = loaded
    if invoice.status != "issued" or invoice.payment_ref != message.payload["payment_ref"]:
        return  # withdrawn or re-issued meanwhile: this payment is no longer wanted
    request = PaymentRequest(
        payment_ref=invoice.payment_ref,
        amount=invoice.total,
        currency=invoice.currency,
        description=f"Invoice {invoice.id}, ticket {invoice.ticket_id}",
        notification_url=webhook_url(ctx.settings, pa),
        return_url=pa.return_url,
    )
    try:
        created = await connector(pa.provider).create_payment(ctx.http, pa, request)
    except ProviderError as exc:
        _raise(exc)
        return
    async with ctx.db.sessionmaker() as session, session.begin():
        await session.execute(
            update(Invoice)
            .where(Invoice.id == invoice.id, Invoice.payment_ref == request.payment_ref)
            .values(
                provider_payment_id=created.provider_payment_id,
                payment_url=created.payment_url,
                updated_at=utcnow(),
            )
        )


@outbox_handler(CANCEL_PAYMENT_TOPIC)
async def cancel_payment(ctx: DeliveryContext, message: MessageView) -> None:
    """A withdrawn invoice's old payment is cancelled at the provider so its link stops taking
    money. A provider that refuses (the payment is already paid, or cannot be cancelled) leaves a
    late success possible: that one reaches staff through the callback (apply.py)."""
    async with ctx.db.sessionmaker() as session:
        pa = await session.get(PaymentAccount, int(message.payload["payment_account_id"]))
        pa = _detached(pa) if pa is not None else None
    if pa is None:
        return
    payment_id = str(message.payload["provider_payment_id"])
    try:
        await connector(pa.provider).cancel_payment(ctx.http, pa, payment_id)
    except ProviderError as exc:
        if exc.transient:
            raise TransientDeliveryError(str(exc)) from exc
        log.warning("payment_cancel_refused", provider=pa.provider, payment_id=payment_id, error=str(exc))


@outbox_handler(REFUND_TOPIC)
async def refund(ctx: DeliveryContext, message: MessageView) -> None:
    """PAY-7: an approved refund asked of the provider; its answer goes the callbacks' way.

    A refusal fails the refund (the amount is free again). A transient error on the last attempt
    does NOT: the provider may have refunded before the answer was lost, so the refund stays
    approved (its amount reserved) with ``provider_status = "unknown"`` until reconciliation asks
    the provider by our reference.
    """
    loaded = await _load_refund(ctx.db, int(message.payload["refund_id"]))
    if loaded is None:
        return
    row, invoice, pa = loaded
    if row.provider_status == "unknown":
        return  # given up on; reconciliation settles it
    try:
        event = await connector(pa.provider).refund(ctx.http, pa, _refund_request(row, invoice))
    except ProviderError as exc:
        if not exc.transient:
            await _refund_failed(ctx.db, row.account_id, row.id, str(exc))
        elif message.attempts >= (message.max_attempts or ctx.settings.outbox.max_attempts):
            await _refund_unknown(ctx.db, row.id, str(exc))
        _raise(exc)
        return
    await _apply_answer(ctx.db, pa, invoice, row, event, "api")


async def _load_refund(db: Database, refund_id: int) -> tuple[Any, Any, Any] | None:
    """The approved refund with its invoice and payment account (detached), or None."""
    async with db.sessionmaker() as session:
        row = await session.get(Refund, refund_id)
        if row is None or row.status != "approved":
            return None
        invoice = await session.get(Invoice, row.invoice_id)
        if invoice is None or invoice.payment_account_id is None:
            return None
        pa = await session.get(PaymentAccount, invoice.payment_account_id)
        if pa is None:
            return None
        return _detached(row), _detached(invoice), _detached(pa)


def _refund_request(row: Any, invoice: Any) -> RefundRequest:
    return RefundRequest(
        refund_ref=f"ref{row.id}",
        provider_payment_id=invoice.provider_payment_id or "",
        capture_id=invoice.provider_capture_id,
        amount=row.amount,
        currency=row.currency,
        reason=row.reason,
        provider_refund_id=row.provider_refund_id,
    )


async def _apply_answer(
    db: Database, pa: Any, invoice: Any, row: Any, event: ProviderEvent | None, source: str
) -> None:
    """The provider's answer about one of our refunds, applied like its callback. An answer that
    names no refund (a gateway without an API) is not a callback and is not applied."""
    if event is None or not event.provider_refund_id:
        return
    event = replace(event, refund_ref=f"ref{row.id}", payment_ref=event.payment_ref or invoice.payment_ref)
    async with db.sessionmaker() as session, session.begin():
        await session.execute(
            update(Refund)
            .where(Refund.id == row.id, Refund.provider_refund_id.is_(None))
            .values(provider_refund_id=event.provider_refund_id, provider_status=event.state)
        )
    await _apply_quietly(db, pa, event, source)


async def _refund_failed(db: Database, account_id: int, refund_id: int, why: str) -> None:
    async with db.sessionmaker() as session, session.begin():
        row = await session.get(Refund, refund_id)
        if row is None or row.status != "approved":
            return
        invoice = await lock_invoice(session, account_id, row.invoice_id)
        await session.refresh(row)
        if row.status == "approved":
            await fail_refund(session, invoice, row, Actor.system("payments"), why)


async def _refund_unknown(db: Database, refund_id: int, why: str) -> None:
    """Outcome unknown: keep the amount reserved and let reconciliation ask soon."""
    async with db.sessionmaker() as session, session.begin():
        await session.execute(
            update(Refund)
            .where(Refund.id == refund_id, Refund.status == "approved")
            .values(provider_status="unknown", failure=why[:500], reconcile_due_at=utcnow())
        )


async def _apply_quietly(db: Database, pa: Any, event: ProviderEvent, source: str) -> None:
    raw = RawCallback(
        body=msgspec.json.encode(event.raw).decode()[:20000],
        headers={},
        remote_addr=None,
        source=source,
    )
    try:
        await receive_event(db, pa, event, raw)
    except CallbackRejected as exc:  # recorded for administrators; nothing applied
        log.warning("provider_answer_rejected", code=exc.code, detail=exc.detail, source=source)


# --- reconciliation (PAY-9) ----------------------------------------------------------------------


async def _claim(db: Database, model: Any, statuses: tuple[str, ...], now: Any) -> list[int]:
    """Rows due for a check, each claimed by pushing its due time forward with a conditional update
    (so several workers never ask the provider about the same row at once)."""
    async with db.sessionmaker() as session, session.begin():
        due = list(
            await session.scalars(
                select(model.id)
                .where(
                    model.status.in_(statuses),
                    model.reconcile_due_at.is_not(None),
                    model.reconcile_due_at <= now,
                )
                .order_by(model.reconcile_due_at)
                .limit(RECONCILE_BATCH)
            )
        )
        claimed: list[int] = []
        for row_id in due:
            result = await session.execute(
                update(model)
                .where(model.id == row_id, model.reconcile_due_at <= now)
                .values(reconcile_due_at=now + timedelta(minutes=10))
            )
            if result.rowcount:  # type: ignore[attr-defined]
                claimed.append(row_id)
        return claimed


async def _reconcile_invoice(ctx: JobContext, invoice_id: int) -> None:
    loaded = await _load(ctx.db, invoice_id)
    if loaded is None:
        return
    invoice, pa = loaded
    if invoice.status not in RECONCILED_INVOICES or not invoice.payment_ref:
        return
    if not invoice.provider_payment_id and pa.provider != "cloudpayments":
        return  # the payment was never created (its outbox message is still retrying)
    try:
        event = await connector(pa.provider).get_payment(
            ctx.http, pa, invoice.provider_payment_id or "", invoice.payment_ref
        )
    except ProviderError as exc:
        log.warning("reconcile_failed", invoice_id=invoice_id, error=str(exc))
        return
    if not event.payment_ref and not event.provider_payment_id:
        return
    event = ProviderEvent(**{**event.__dict__, "payment_ref": event.payment_ref or invoice.payment_ref})
    if event.state == "pending":
        await _push_due(ctx.db, Invoice, invoice_id, pa.reconcile_after_seconds)
        return
    await _apply_quietly(ctx.db, pa, event, "reconciliation")


async def _reconcile_refund(ctx: JobContext, refund_id: int) -> None:
    """PAY-9: an approved refund silent too long is looked up by the provider's id or, when the
    provider never told us one, by our own reference."""
    loaded = await _load_refund(ctx.db, refund_id)
    if loaded is None:
        return
    row, invoice, pa = loaded
    try:
        event = await connector(pa.provider).get_refund(ctx.http, pa, _refund_request(row, invoice))
    except ProviderError as exc:
        log.warning("reconcile_failed", refund_id=refund_id, error=str(exc))
        await _push_due(ctx.db, Refund, refund_id, pa.reconcile_after_seconds)
        return
    if event is not None and event.state == REFUND_NOT_FOUND and row.provider_status == "unknown":
        # The outbox gave up and the provider, asked by our reference, has no such refund.
        await _refund_failed(ctx.db, row.account_id, row.id, "The provider never received the refund")
        return
    if event is None or event.state in ("pending", REFUND_NOT_FOUND):
        await _push_due(ctx.db, Refund, refund_id, pa.reconcile_after_seconds)
        return
    await _apply_answer(ctx.db, pa, invoice, row, event, "reconciliation")


async def _push_due(db: Database, model: Any, row_id: int, seconds: int) -> None:
    async with db.sessionmaker() as session, session.begin():
        await session.execute(
            update(model)
            .where(model.id == row_id)
            .values(reconcile_due_at=utcnow() + timedelta(seconds=seconds))
        )


@periodic_job(RECONCILE_JOB, interval=lambda s: 60.0)
async def reconcile_job(ctx: JobContext) -> None:
    await reconcile(ctx)


async def reconcile(ctx: JobContext, *, now: Any = None) -> int:
    """Ask the provider about issued (and marked-paid) invoices and approved refunds silent for
    too long."""
    now = now or utcnow()
    invoices = await _claim(ctx.db, Invoice, RECONCILED_INVOICES, now)
    for invoice_id in invoices:
        await _reconcile_invoice(ctx, invoice_id)
    refunds = await _claim(ctx.db, Refund, ("approved",), now)
    for refund_id in refunds:
        await _reconcile_refund(ctx, refund_id)
    return len(invoices) + len(refunds)
