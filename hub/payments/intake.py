"""PAY-6 through the intake pipeline: how a stored provider callback is applied.

The webhook (``hub.webhooks.payments``) verifies and parses in the request and stores the raw
callback; here the worker parses it again (cheap), confirms it with the provider where its scheme
asks for that (YooKassa re-reads the payment, Stripe finds a refund's invoice) with no session
open, and applies it with :func:`hub.payments.apply.apply_event` inside the batch's transaction.
A refusal by the payment rules (unknown invoice, wrong amount, ...) is recorded in the callback log
and is the event's outcome; nothing of it is applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from hub.cache import TTLCache
from hub.connectors.payments import CallbackRejected, ProviderError, ProviderEvent, connector
from hub.intake import Applied, EventView, TransientApplyError
from hub.jobs import JobContext
from hub.payments.apply import apply_event, rejection_row
from hub.payments.apply_batch import apply_paid, raw_callback
from hub.payments.models import CallbackAttempt, PaymentAccount

__all__ = ["KIND_HEADER", "SOURCE_PREFIX", "PaymentCallbacks", "payment_source", "rejected"]

SOURCE_PREFIX = "payments."
# The CloudPayments notification kind, from the callback's path, kept with the stored headers.
KIND_HEADER = "x-hub-callback-kind"
ACCOUNT_TTL = 5.0  # seconds a payment account read for a batch is reused
_ACCOUNTS = "payments.accounts"  # the worker's cache of them, in its JobContext


def payment_source(provider: str) -> str:
    return SOURCE_PREFIX + provider


def rejected(rejection: CallbackRejected) -> Applied:
    """A refusal as an event's outcome; ``result`` keeps what the provider's answer needs."""
    return Applied(
        "rejected",
        rejection.code,
        rejection.detail[:500],
        result={"status": rejection.status, "provider_code": rejection.provider_code},
    )


async def _read_account(ctx: JobContext, account_id: int) -> PaymentAccount | None:
    async with ctx.db.sessionmaker() as session:
        row = await session.get(PaymentAccount, account_id)
        if row is not None:
            session.expunge(row)
        return row


class PaymentCallbacks:
    """The intake source ``payments``: ``payments.<provider>`` events."""

    name = "payments"

    async def _account(self, ctx: JobContext, account_id: int | None) -> PaymentAccount | None:
        """The (detached) payment account, read once per few seconds however many events it has
        (a batch's events prepared at once share one read)."""
        if account_id is None:
            return None
        accounts = ctx.cache.setdefault(_ACCOUNTS, TTLCache[int, PaymentAccount | None](ttl=ACCOUNT_TTL))
        return await accounts.get(account_id, lambda: _read_account(ctx, account_id))  # type: ignore[no-any-return]

    async def prepare(self, ctx: JobContext, event: EventView) -> tuple[PaymentAccount, ProviderEvent]:
        pa = await self._account(ctx, event.endpoint_id)
        if pa is None:
            raise CallbackRejected(404, "unknown_webhook", "The payment account no longer exists")
        module = connector(pa.provider)
        parsed = module.parse(event.body.encode(), event.headers, event.headers.get(KIND_HEADER))
        enrich = getattr(module, "enrich", None)
        if enrich is not None:
            try:
                parsed = await enrich(ctx.http, pa, parsed)
            except ProviderError as exc:
                if exc.transient:  # the provider's API is down: the worker tries again later
                    raise TransientApplyError(str(exc)[:300]) from exc
                raise CallbackRejected(422, "confirmation_failed", str(exc)[:300]) from exc
        return pa, parsed

    async def apply(self, session: AsyncSession, ctx: JobContext, event: EventView, prepared: Any) -> Applied:
        pa, parsed = prepared
        outcome = await apply_event(session, pa, parsed, raw_callback(event))
        result = {"invoice_id": outcome.invoice_id, "refund_id": outcome.refund_id}
        return Applied(outcome.outcome, outcome.code, result=result)

    async def apply_many(
        self, session: AsyncSession, ctx: JobContext, items: Sequence[tuple[EventView, Any]]
    ) -> dict[int, Applied]:
        """The batch's plain "paid" callbacks in a few statements (``hub.payments.apply_batch``)."""
        return await apply_paid(session, [(event, pa, parsed) for event, (pa, parsed) in items])

    async def refused(
        self, session: AsyncSession, ctx: JobContext, event: EventView, exc: Exception
    ) -> Applied | None:
        """The payment rules refused it (after the savepoint undid its work): in the callback log."""
        if not isinstance(exc, CallbackRejected):
            return None
        pa = await self._account(ctx, event.endpoint_id)
        if pa is not None:
            row = rejection_row(pa, raw_callback(event), exc)
            await session.execute(insert(CallbackAttempt).values(**row))
        return rejected(exc)
