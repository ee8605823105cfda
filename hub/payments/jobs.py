"""Outbox deliveries to the providers (create payment, refund, cancel) and the reconciliation job
(PAY-9). No session is held while a provider is being called."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
import structlog
from sqlalchemy import select, update

from hub.connectors.payments import (
    CallbackRejected,
    PaymentRequest,
    ProviderError,
    ProviderEvent,
    RefundRequest,
    connector,
)
from hub.db import Database, utcnow
from hub.desk.actors import Actor
from hub.jobs import JobContext, register_job
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
    """Best effort: a withdrawn invoice's old link should stop taking money where the API allows."""
    async with ctx.db.sessionmaker() as session:
        pa = await session.get(PaymentAccount, int(message.payload["payment_account_id"]))
        pa = _detached(pa) if pa is not None else None
    if pa is None:
        return
    cancel = getattr(connector(pa.provider), "cancel_payment", None)
    if cancel is None:
        return
    try:
        await cancel(ctx.http, pa, str(message.payload["provider_payment_id"]))
    except ProviderError as exc:
        _raise(exc)


@outbox_handler(REFUND_TOPIC)
async def refund(ctx: DeliveryContext, message: MessageView) -> None:
    """PAY-7: an approved refund asked of the provider; its answer goes the callbacks' way."""
    refund_id = int(message.payload["refund_id"])
    async with ctx.db.sessionmaker() as session:
        row = await session.get(Refund, refund_id)
        if row is None or row.status != "approved":
            return
        invoice = await session.get(Invoice, row.invoice_id)
        pa = (
            await session.get(PaymentAccount, invoice.payment_account_id)
            if invoice and invoice.payment_account_id
            else None
        )
        if invoice is None or pa is None:
            return
        refund_row, invoice, pa = _detached(row), _detached(invoice), _detached(pa)
    request = RefundRequest(
        refund_ref=f"ref{refund_row.id}",
        provider_payment_id=invoice.provider_payment_id or "",
        capture_id=invoice.provider_capture_id,
        amount=refund_row.amount,
        currency=refund_row.currency,
        reason=refund_row.reason,
    )
    try:
        event = await connector(pa.provider).refund(ctx.http, pa, request)
    except ProviderError as exc:
        if not exc.transient or message.attempts >= (
            message.max_attempts or ctx.settings.outbox.max_attempts
        ):
            await _refund_failed(ctx.db, refund_row.account_id, refund_row.id, str(exc))
        _raise(exc)
        return
    event = ProviderEvent(**{**event.__dict__, "refund_ref": request.refund_ref})
    if event.provider_refund_id:
        async with ctx.db.sessionmaker() as session, session.begin():
            await session.execute(
                update(Refund)
                .where(Refund.id == refund_row.id, Refund.provider_refund_id.is_(None))
                .values(provider_refund_id=event.provider_refund_id, provider_status=event.state)
            )
    await _apply_quietly(ctx.db, pa, event, "api")


async def _refund_failed(db: Database, account_id: int, refund_id: int, why: str) -> None:
    async with db.sessionmaker() as session, session.begin():
        row = await session.get(Refund, refund_id)
        if row is None or row.status != "approved":
            return
        invoice = await lock_invoice(session, account_id, row.invoice_id)
        await session.refresh(row)
        if row.status == "approved":
            await fail_refund(session, invoice, row, Actor.system("payments"), why)


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


async def _claim(db: Database, model: Any, status: str, now: Any) -> list[int]:
    """Rows due for a check, each claimed by pushing its due time forward with a conditional update
    (so several workers never ask the provider about the same row at once)."""
    async with db.sessionmaker() as session, session.begin():
        due = list(
            await session.scalars(
                select(model.id)
                .where(
                    model.status == status, model.reconcile_due_at.is_not(None), model.reconcile_due_at <= now
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
    if invoice.status != "issued" or not invoice.payment_ref:
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
    async with ctx.db.sessionmaker() as session:
        row = await session.get(Refund, refund_id)
        invoice = await session.get(Invoice, row.invoice_id) if row else None
        pa = (
            await session.get(PaymentAccount, invoice.payment_account_id)
            if invoice and invoice.payment_account_id
            else None
        )
        if row is None or pa is None or row.status != "approved" or not row.provider_refund_id:
            return
        row, pa = _detached(row), _detached(pa)
    try:
        event = await connector(pa.provider).get_refund(ctx.http, pa, row.provider_refund_id)
    except ProviderError as exc:
        log.warning("reconcile_failed", refund_id=refund_id, error=str(exc))
        return
    if event is None or event.state == "pending":
        await _push_due(ctx.db, Refund, refund_id, pa.reconcile_after_seconds)
        return
    await _apply_quietly(ctx.db, pa, event, "reconciliation")


async def _push_due(db: Database, model: Any, row_id: int, seconds: int) -> None:
    async with db.sessionmaker() as session, session.begin():
        await session.execute(
            update(model)
            .where(model.id == row_id)
            .values(reconcile_due_at=utcnow() + timedelta(seconds=seconds))
        )


@register_job(RECONCILE_JOB, interval=lambda s: 60.0)
async def reconcile_job(ctx: JobContext) -> None:
    await reconcile(ctx)


async def reconcile(ctx: JobContext, *, now: Any = None) -> int:
    """Ask the provider about issued invoices and approved refunds silent for too long."""
    now = now or utcnow()
    invoices = await _claim(ctx.db, Invoice, "issued", now)
    for invoice_id in invoices:
        await _reconcile_invoice(ctx, invoice_id)
    refunds = await _claim(ctx.db, Refund, "approved", now)
    for refund_id in refunds:
        await _reconcile_refund(ctx, refund_id)
    return len(invoices) + len(refunds)
