"""PAY-6/PAY-9: applying what a provider says, exactly once and in any order.

Callbacks and reconciliation both end here. One transaction: the attempt row is inserted with the
event's ``apply_key`` (unique per payment account; ON CONFLICT DO NOTHING), so of any number of
deliveries of one fact — sequential or concurrent — exactly one inserts the key and applies it;
the others are recorded as duplicates. States only move forward: a stale ``pending`` after
``succeeded`` changes nothing. A refusal (unknown invoice, wrong amount, ...) rolls the
transaction back and is recorded on its own, so nothing of it is applied.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.connectors.payments.base import CallbackRejected, ProviderEvent
from hub.db import Database, dialect_insert, utcnow
from hub.desk.actors import Actor
from hub.payments import desk
from hub.payments.models import CallbackAttempt, Invoice, PaymentAccount, Refund
from hub.payments.money import ZERO, in_units, quantize
from hub.payments.service import complete_refund, fail_refund, invoice_transition, refundable_amount

__all__ = [
    "Outcome",
    "RawCallback",
    "actor_of",
    "apply_event",
    "attempt_row",
    "receive_event",
    "record_rejection",
    "rejection_row",
]

log = structlog.get_logger("hub.payments.apply")
PROVIDER_ACTOR_NAMES = {
    "yookassa": "YooKassa",
    "tbank": "T-Bank",
    "cloudpayments": "CloudPayments",
    "stripe": "Stripe",
    "standard": "Payment gateway",
}


@dataclass(frozen=True)
class RawCallback:
    body: str
    headers: dict[str, Any]
    remote_addr: str | None
    source: str = "callback"  # callback | reconciliation | api
    replay_key: str | None = None


@dataclass(frozen=True)
class Outcome:
    outcome: str  # applied | duplicate | ignored | review (kept for staff)
    invoice_id: int | None = None
    refund_id: int | None = None
    code: str | None = None


_PAYMENT_REF = re.compile(r"inv(\d+)-(\d+)")


def attempt_row(
    pa: PaymentAccount, event: ProviderEvent | None, raw: RawCallback, **values: Any
) -> dict[str, Any]:
    return {
        "account_id": pa.account_id,
        "payment_account_id": pa.id,
        "provider": pa.provider,
        "source": raw.source,
        "event_id": event.event_id if event else None,
        "event_type": event.event_type[:80] if event else None,
        "remote_addr": raw.remote_addr,
        "headers": raw.headers,
        "body": raw.body,
        "received_at": utcnow(),
        **values,
    }


async def receive_event(db: Database, pa: PaymentAccount, event: ProviderEvent, raw: RawCallback) -> Outcome:
    """Store and apply one verified event in its own transaction; a refusal is recorded apart."""
    try:
        async with db.sessionmaker() as session, session.begin():
            return await apply_event(session, pa, event, raw)
    except CallbackRejected as rejection:
        await record_rejection(db, pa, raw, rejection, event)
        raise


async def record_rejection(
    db: Database,
    pa: PaymentAccount | None,
    raw: RawCallback,
    rejection: CallbackRejected,
    event: ProviderEvent | None = None,
) -> None:
    """An attempt that changed nothing, kept for the administrators' callback log."""
    async with db.sessionmaker() as session, session.begin():
        await session.execute(insert(CallbackAttempt).values(**rejection_row(pa, raw, rejection, event)))


def rejection_row(
    pa: PaymentAccount | None,
    raw: RawCallback,
    rejection: CallbackRejected,
    event: ProviderEvent | None = None,
) -> dict[str, Any]:
    """The callback-log row of a refused attempt."""
    values: dict[str, Any]
    if pa is None:
        values = {
            "account_id": None,
            "payment_account_id": None,
            "provider": raw.headers.get("x-hub-provider", "?"),
            "source": raw.source,
            "remote_addr": raw.remote_addr,
            "headers": raw.headers,
            "body": raw.body,
            "received_at": utcnow(),
            "event_id": None,
            "event_type": None,
        }
    else:
        values = attempt_row(pa, event, raw)
    return values | {"outcome": "rejected", "code": rejection.code, "detail": rejection.detail[:500]}


async def apply_event(
    session: AsyncSession, pa: PaymentAccount, event: ProviderEvent, raw: RawCallback
) -> Outcome:
    if event.kind in ("ignored", "check") or event.state in ("ignored", "failed_attempt"):
        outcome = await _without_key(session, pa, event, raw)
        return outcome
    # Lock the invoice first: deliveries of one invoice's facts queue here, one at a time.
    invoice = await _find_invoice(session, pa, event, required=False)
    if invoice is None:
        return await _unmatched(session, pa, event, raw)
    inserted = await _claim_key(session, pa, event, raw, invoice.id)
    if inserted is None:
        return await _duplicate(session, pa, event, raw, invoice.id)
    if event.kind == "payment" and invoice.status == "draft":
        result = await _paid_after_withdrawal(session, pa, invoice, event)
    elif event.kind == "payment":
        result = await _apply_payment(session, pa, invoice, event)
    else:
        result = await _apply_refund(session, pa, invoice, event)
    if result.outcome != "applied" or result.refund_id is not None:
        await session.execute(
            update(CallbackAttempt)
            .where(CallbackAttempt.id == inserted)
            .values(outcome=result.outcome, code=result.code, refund_id=result.refund_id)
        )
    return result


async def _claim_key(
    session: AsyncSession, pa: PaymentAccount, event: ProviderEvent, raw: RawCallback, invoice_id: int
) -> int | None:
    """Insert the attempt holding the event's apply key; None when another attempt holds it."""
    return await session.scalar(  # type: ignore[no-any-return]
        dialect_insert(session, CallbackAttempt)
        .values(
            **attempt_row(
                pa,
                event,
                raw,
                apply_key=event.apply_key,
                replay_key=raw.replay_key,
                outcome="applied",
                invoice_id=invoice_id,
            )
        )
        .on_conflict_do_nothing()
        .returning(CallbackAttempt.id)
    )


async def _duplicate(
    session: AsyncSession, pa: PaymentAccount, event: ProviderEvent, raw: RawCallback, invoice_id: int | None
) -> Outcome:
    await _refuse_replay(session, pa, raw)
    await session.execute(
        dialect_insert(session, CallbackAttempt)
        .values(
            **attempt_row(
                pa, event, raw, outcome="duplicate", replay_key=raw.replay_key, invoice_id=invoice_id
            )
        )
        .on_conflict_do_nothing()
    )
    return Outcome("duplicate", invoice_id)


async def _unmatched(
    session: AsyncSession, pa: PaymentAccount, event: ProviderEvent, raw: RawCallback
) -> Outcome:
    """No current invoice matches. An event applied before (the invoice since made unpaid or
    re-issued) is a duplicate, not unknown, so the provider's retries end; a payment of a
    withdrawn attempt is kept for staff; anything else is unknown."""
    applied = await session.scalar(
        select(CallbackAttempt.invoice_id).where(
            CallbackAttempt.payment_account_id == pa.id, CallbackAttempt.apply_key == event.apply_key
        )
    )
    if applied is not None:
        return await _duplicate(session, pa, event, raw, applied)
    invoice = await _withdrawn_invoice(session, pa, event)
    if invoice is None:
        raise CallbackRejected(404, "unknown_invoice", "No invoice of this payment account matches")
    inserted = await _claim_key(session, pa, event, raw, invoice.id)
    if inserted is None:
        return await _duplicate(session, pa, event, raw, invoice.id)
    result = await _paid_after_withdrawal(session, pa, invoice, event)
    await session.execute(
        update(CallbackAttempt)
        .where(CallbackAttempt.id == inserted)
        .values(outcome=result.outcome, code=result.code)
    )
    return result


async def _withdrawn_invoice(
    session: AsyncSession, pa: PaymentAccount, event: ProviderEvent
) -> Invoice | None:
    """The invoice an earlier payment attempt belonged to, named by our own reference
    ``inv{invoice id}-{issue count}`` (every provider echoes it: metadata, OrderId, InvoiceId)."""
    if event.kind != "payment":
        return None
    match = _PAYMENT_REF.fullmatch(event.payment_ref or "")
    if match is None or int(match[2]) < 1:
        return None
    invoice = await session.scalar(
        select(Invoice)
        .where(Invoice.id == int(match[1]), Invoice.account_id == pa.account_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if invoice is None or int(match[2]) > invoice.issue_count:
        return None
    return invoice


async def _paid_after_withdrawal(
    session: AsyncSession, pa: PaymentAccount, invoice: Invoice, event: ProviderEvent
) -> Outcome:
    """The client paid a payment link after staff withdrew it (made the invoice unpaid). The
    money is real, so it is not refused: the attempt is kept as ``review`` in the callback log,
    written to the ticket's history and flagged on the ticket for staff to refund or re-issue."""
    if event.state != "succeeded":
        return Outcome("ignored", invoice.id)
    ticket = await desk.load_ticket(session, invoice.account_id, invoice.ticket_id)
    data = {
        "invoice_id": invoice.id,
        "payment_ref": event.payment_ref,
        "provider_payment_id": event.provider_payment_id or event.capture_id,
        "amount": str(event.amount) if event.amount is not None else None,
        "currency": event.currency or invoice.currency,
    }
    await desk.history(session, ticket, actor_of(pa), "payment_after_withdrawal", data)
    await desk.flag_attention(session, ticket, "paid_after_withdrawal", data)
    return Outcome("review", invoice.id, code="paid_after_withdrawal")


async def _refuse_replay(session: AsyncSession, pa: PaymentAccount, raw: RawCallback) -> None:
    """After a refused insert: was it this exact signed request again (a replay), or only the
    same fact told again (a duplicate)? The unique replay key answers without a prior lookup."""
    if raw.replay_key is not None and await session.scalar(
        select(CallbackAttempt.id).where(
            CallbackAttempt.payment_account_id == pa.id, CallbackAttempt.replay_key == raw.replay_key
        )
    ):
        raise CallbackRejected(409, "replayed_callback", "This exact signed request was already received")


async def _without_key(
    session: AsyncSession, pa: PaymentAccount, event: ProviderEvent, raw: RawCallback
) -> Outcome:
    """Events that change no state (CloudPayments Check, a failed card attempt, unknown types)."""
    invoice_id = None
    if event.kind in ("check", "payment"):
        invoice = await _find_invoice(session, pa, event)
        assert invoice is not None
        _check_amount(invoice, event)
        if event.kind == "check" and invoice.status != "issued":
            raise CallbackRejected(409, "invoice_not_payable", f"The invoice is {invoice.status}")
        invoice_id = invoice.id
        if event.state == "failed_attempt":
            ticket = await desk.load_ticket(session, invoice.account_id, invoice.ticket_id)
            await desk.history(
                session,
                ticket,
                actor_of(pa),
                "payment_attempt_failed",
                {
                    "invoice_id": invoice.id,
                    "reason": str(event.raw.get("Reason") or "")[:200],
                },
            )
    stored = await session.scalar(
        dialect_insert(session, CallbackAttempt)
        .values(
            **attempt_row(pa, event, raw, outcome="ignored", replay_key=raw.replay_key, invoice_id=invoice_id)
        )
        .on_conflict_do_nothing()
        .returning(CallbackAttempt.id)
    )
    if stored is None:
        await _refuse_replay(session, pa, raw)
    return Outcome("ignored", invoice_id)


def actor_of(pa: PaymentAccount) -> Actor:
    return Actor.system(PROVIDER_ACTOR_NAMES.get(pa.provider, pa.provider))


async def _find_invoice(
    session: AsyncSession, pa: PaymentAccount, event: ProviderEvent, *, required: bool = True
) -> Invoice | None:
    conditions = []
    if event.payment_ref:
        conditions.append(Invoice.payment_ref == event.payment_ref)
    if event.provider_payment_id:
        conditions.append(Invoice.provider_payment_id == event.provider_payment_id)
    if event.capture_id:
        conditions.append(Invoice.provider_capture_id == event.capture_id)
    invoice = None
    if conditions:
        invoice = await session.scalar(
            select(Invoice)
            .where(Invoice.payment_account_id == pa.id, or_(*conditions))
            .order_by(Invoice.id)
            .limit(1)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    if invoice is None and required:
        raise CallbackRejected(404, "unknown_invoice", "No invoice of this payment account matches")
    return invoice


def _check_amount(invoice: Invoice, event: ProviderEvent, expected: Any = None) -> None:
    if event.currency is not None and event.currency.upper() != invoice.currency:
        raise CallbackRejected(
            422, "currency_mismatch", f"Currency {event.currency} but the invoice is in {invoice.currency}"
        )
    want = invoice.total if expected is None else expected
    if event.amount is not None and quantize(event.amount, invoice.currency) != quantize(
        want, invoice.currency
    ):
        raise CallbackRejected(422, "amount_mismatch", f"Amount {event.amount} but expected {want:f}")


async def _apply_payment(
    session: AsyncSession, pa: PaymentAccount, invoice: Invoice, event: ProviderEvent
) -> Outcome:
    if event.state in ("succeeded", "pending"):
        _check_amount(invoice, event)
    now = utcnow()
    invoice.last_event_at = now
    if event.capture_id and not invoice.provider_capture_id:
        invoice.provider_capture_id = event.capture_id
    if event.provider_payment_id and not invoice.provider_payment_id:
        invoice.provider_payment_id = event.provider_payment_id
    if invoice.status == "paid":
        return Outcome("ignored", invoice.id)  # states only move forward
    if event.state == "succeeded":
        await _mark_provider_paid(session, pa, invoice, invoice.total, now)
        return Outcome("applied", invoice.id)
    if invoice.provider_status in ("succeeded", "canceled"):
        return Outcome("ignored", invoice.id)
    invoice.provider_status = event.state
    if event.state == "canceled":
        invoice.reconcile_due_at = None
        ticket = await desk.load_ticket(session, invoice.account_id, invoice.ticket_id)
        await desk.history(session, ticket, actor_of(pa), "payment_canceled", {"invoice_id": invoice.id})
    return Outcome("applied", invoice.id)


async def _mark_provider_paid(
    session: AsyncSession, pa: PaymentAccount, invoice: Invoice, amount: Any, now: datetime
) -> None:
    invoice_transition(invoice, "provider_paid")
    invoice.provider_status = "succeeded"
    invoice.paid_amount = amount
    invoice.paid_at = now
    invoice.reconcile_due_at = None
    ticket = await desk.load_ticket(session, invoice.account_id, invoice.ticket_id)
    data = {
        "invoice_id": invoice.id,
        "amount": str(in_units(amount, invoice.currency)),
        "currency": invoice.currency,
    }
    await desk.history(session, ticket, actor_of(pa), "invoice_paid", data)
    await desk.activity(
        session,
        invoice.account_id,
        invoice.contact_id,
        "invoice_paid",
        invoice.id,
        f"Invoice {invoice.id} paid: {in_units(amount, invoice.currency)} {invoice.currency}",
        data,
        ticket_id=invoice.ticket_id,
    )
    await desk.refresh_flags(session, ticket)


async def _find_refund(session: AsyncSession, invoice: Invoice, event: ProviderEvent) -> Refund | None:
    if event.provider_refund_id:
        found = await session.scalar(
            select(Refund).where(
                Refund.invoice_id == invoice.id, Refund.provider_refund_id == event.provider_refund_id
            )
        )
        if found is not None:
            return found
    if event.refund_ref and event.refund_ref.startswith("ref") and event.refund_ref[3:].isdigit():
        found = await session.get(Refund, int(event.refund_ref[3:]))
        if found is not None and found.invoice_id == invoice.id:
            return found
    # The provider's answer to our refund call may not be stored yet: the one approved refund of
    # this amount still waiting for its provider id is the one being told about.
    candidates = list(
        await session.scalars(
            select(Refund)
            .where(Refund.invoice_id == invoice.id, Refund.provider_refund_id.is_(None))
            .order_by(Refund.id)
        )
    )
    if event.amount is not None:
        candidates = [
            r
            for r in candidates
            if quantize(r.amount, invoice.currency) == quantize(event.amount, invoice.currency)
        ]
    waiting = [r for r in candidates if r.status == "approved"]
    if event.provider_refund_id:
        return waiting[0] if len(waiting) == 1 else None
    # A refund the provider names by nothing of its own (T-Bank's notifications): of our refunds
    # of this amount, the oldest still waiting, else one already done (told again) -- never a
    # new "external" refund that would count the same money twice.
    return await _idless_match(session, invoice, event, waiting)


async def _idless_match(
    session: AsyncSession, invoice: Invoice, event: ProviderEvent, waiting: list[Refund]
) -> Refund | None:
    if waiting:
        return waiting[0]
    query = select(Refund).where(Refund.invoice_id == invoice.id, Refund.status == "refunded")
    done = [
        r
        for r in await session.scalars(query.order_by(Refund.id))
        if event.amount is None
        or quantize(r.amount, invoice.currency) == quantize(event.amount, invoice.currency)
    ]
    return done[0] if done else None


async def _apply_refund(
    session: AsyncSession, pa: PaymentAccount, invoice: Invoice, event: ProviderEvent
) -> Outcome:
    if event.currency is not None and event.currency.upper() != invoice.currency:
        raise CallbackRejected(
            422, "currency_mismatch", f"Currency {event.currency} but the invoice is in {invoice.currency}"
        )
    invoice.last_event_at = utcnow()
    refund = await _find_refund(session, invoice, event)
    actor = actor_of(pa)
    if refund is None:
        if event.state != "succeeded":
            return Outcome("ignored", invoice.id)
        refund = await _external_refund(session, pa, invoice, event)
    if event.provider_refund_id and not refund.provider_refund_id:
        refund.provider_refund_id = event.provider_refund_id
    if event.amount is not None and quantize(event.amount, invoice.currency) != quantize(
        refund.amount, invoice.currency
    ):
        raise CallbackRejected(
            422, "amount_mismatch", f"Refund of {event.amount} but {refund.amount:f} was approved"
        )
    if event.state == "succeeded" and refund.status == "failed":
        # We had given up (or the provider's first answer was a failure); its success wins.
        await complete_refund(session, invoice, refund, actor)
        return Outcome("applied", invoice.id, refund.id)
    if refund.status != "approved":
        return Outcome("ignored", invoice.id, refund.id)  # already final: states only move forward
    if event.state == "succeeded":
        await complete_refund(session, invoice, refund, actor)
    elif event.state == "failed":
        await fail_refund(session, invoice, refund, actor, f"{pa.provider}: {event.event_type}")
    else:
        refund.provider_status = event.state
    return Outcome("applied", invoice.id, refund.id)


async def _external_refund(
    session: AsyncSession, pa: PaymentAccount, invoice: Invoice, event: ProviderEvent
) -> Refund:
    """A refund made at the provider (its dashboard), or told before the payment's own callback.

    A refund exists only for a captured payment, so an invoice still waiting for its payment
    callback is paid first; the late payment callback then changes nothing.
    """
    if invoice.status in ("issued", "marked_paid"):
        await _mark_provider_paid(session, pa, invoice, invoice.total, utcnow())
    elif invoice.status != "paid":
        raise CallbackRejected(409, "invoice_not_payable", f"The invoice is {invoice.status}")
    amount = event.amount if event.amount is not None else refundable_amount(invoice)
    amount = quantize(amount, invoice.currency)
    if amount <= ZERO or amount > refundable_amount(invoice):
        raise CallbackRejected(422, "refund_exceeds_paid", "The refund is more than is left of the payment")
    refund = Refund(
        account_id=invoice.account_id,
        invoice_id=invoice.id,
        ticket_id=invoice.ticket_id,
        status="approved",
        full=amount == invoice.paid_amount - invoice.refunded_amount,
        amount=amount,
        currency=invoice.currency,
        lines=[],
        reason="Refunded at the payment provider",
        requested_by_kind="provider",
        requested_by_id=None,
        provider_refund_id=event.provider_refund_id,
        decided_at=utcnow(),
    )
    session.add(refund)
    invoice.reserved_amount += amount
    await session.flush()
    return refund


def header_subset(headers: Mapping[str, str]) -> dict[str, Any]:
    """Headers worth keeping with the raw body (no cookies, no authorization)."""
    skip = {"cookie", "authorization", "proxy-authorization"}
    return {k.lower(): v[:1000] for k, v in headers.items() if k.lower() not in skip}
