"""PAY-6 in sets: a batch's plain "paid" callbacks applied in a handful of statements.

Most callbacks say one thing: the payment of an issued invoice succeeded, for the amount asked.
:func:`apply_paid` takes those of an intake batch that can be applied together without changing
what one-by-one application (:func:`hub.payments.apply.apply_event`) would do, and applies them
with one statement per step for the whole set: lock the invoices, claim the apply keys, update the
invoices, write history and activity, refresh the tickets' payment flags. Everything else (a
refund, a duplicate, a mismatch, an invoice touched by two events of the batch, ...) is left to
the one-by-one path, which runs after it in the same transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.connectors.payments.base import ProviderEvent
from hub.db import dialect_insert, utcnow
from hub.desk import bulk
from hub.intake import Applied, EventView
from hub.payments.apply import RawCallback, actor_of, attempt_row
from hub.payments.desk import payment_flags
from hub.payments.models import CallbackAttempt, Invoice, PaymentAccount
from hub.payments.money import in_units, quantize
from hub.payments.service import INVOICE_TRANSITIONS

__all__ = ["apply_paid", "raw_callback"]

_INVOICES = cast(Table, Invoice.__table__)
_ATTEMPTS = cast(Table, CallbackAttempt.__table__)
_PAID = INVOICE_TRANSITIONS[("issued", "provider_paid")]


@dataclass(frozen=True, slots=True)
class _Paid:
    """One event of the set, with the invoice row it pays."""

    event: EventView
    pa: PaymentAccount
    parsed: ProviderEvent
    invoice: Any  # the locked invoice row


def _refs(parsed: ProviderEvent) -> list[tuple[str, str]]:
    """What :func:`hub.payments.apply._find_invoice` matches an invoice by."""
    refs = [("payment_ref", parsed.payment_ref), ("provider_payment_id", parsed.provider_payment_id)]
    refs.append(("provider_capture_id", parsed.capture_id))
    return [(column, value) for column, value in refs if value]


async def _locked_invoices(
    session: AsyncSession, pa: PaymentAccount, events: Sequence[ProviderEvent]
) -> list[Any]:
    """Every invoice of the payment account that any event of the batch names, locked in id order
    (a superset of what the one-by-one path will lock for the events left to it)."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for parsed in events:
        for column, value in _refs(parsed):
            wanted[column].add(value)
    if not wanted:
        return []
    query = (
        select(_INVOICES)
        .where(
            _INVOICES.c.payment_account_id == pa.id,
            or_(*(_INVOICES.c[column].in_(sorted(values)) for column, values in wanted.items())),
        )
        .order_by(_INVOICES.c.id)
        .with_for_update()
    )
    return list((await session.execute(query)).all())


def _first_by_ref(invoices: Sequence[Any]) -> dict[tuple[str, str], Any]:
    """(column, value) -> the lowest-id invoice holding it (``invoices`` come in id order)."""
    first: dict[tuple[str, str], Any] = {}
    for invoice in invoices:
        for column in ("payment_ref", "provider_payment_id", "provider_capture_id"):
            value = getattr(invoice, column)
            if value is not None:
                first.setdefault((column, value), invoice)
    return first


def _match(first: dict[tuple[str, str], Any], parsed: ProviderEvent) -> Any:
    """The invoice the one-by-one path would find: the lowest id matching any of the event's refs."""
    found = [first[ref] for ref in _refs(parsed) if ref in first]
    return min(found, key=lambda invoice: invoice.id) if found else None


def _plain_paid(parsed: ProviderEvent, invoice: Any) -> bool:
    """A success for exactly what an issued invoice asks (anything else goes one by one)."""
    if parsed.kind != "payment" or parsed.state != "succeeded" or invoice.status != "issued":
        return False
    if parsed.currency is not None and parsed.currency.upper() != invoice.currency:
        return False
    return parsed.amount is None or quantize(parsed.amount, invoice.currency) == quantize(
        invoice.total, invoice.currency
    )


def _select(
    items: Sequence[tuple[EventView, PaymentAccount, ProviderEvent]], invoices: Sequence[Any]
) -> list[_Paid]:
    """The events that may go in the set: plain payments whose invoice no other event of the
    batch names, one per apply key (so order within the batch cannot matter)."""
    named: dict[int, int] = defaultdict(int)
    matched = []
    first = _first_by_ref(invoices)
    for event, pa, parsed in items:
        invoice = _match(first, parsed)
        if invoice is not None:
            named[invoice.id] += 1
            matched.append((event, pa, parsed, invoice))
    keys: set[str] = set()
    chosen = []
    for event, pa, parsed, invoice in matched:
        if named[invoice.id] == 1 and _plain_paid(parsed, invoice) and parsed.apply_key not in keys:
            keys.add(parsed.apply_key)
            chosen.append(_Paid(event, pa, parsed, invoice))
    return chosen


# Built once, sent as one executemany (batched VALUES): a multi-row VALUES built per batch cost
# more to compile than to run.
_CLAIM = {
    dialect: dialect_insert(dialect, _ATTEMPTS)
    .on_conflict_do_nothing()
    .returning(_ATTEMPTS.c.payment_account_id, _ATTEMPTS.c.apply_key)
    for dialect in ("postgresql", "sqlite")
}


async def _claim_keys(session: AsyncSession, chosen: Sequence[_Paid]) -> list[_Paid]:
    """One INSERT of the attempts holding the apply keys; those whose key (or signed request) is
    held already are left to the one-by-one path, which answers them as duplicates or replays."""
    rows = [
        attempt_row(
            item.pa,
            item.parsed,
            raw_callback(item.event),
            apply_key=item.parsed.apply_key,
            replay_key=item.event.replay_key,
            outcome="applied",
            invoice_id=item.invoice.id,
        )
        for item in chosen
    ]
    statement = _CLAIM[session.get_bind().dialect.name]
    claimed = {(pa_id, key) for pa_id, key in await session.execute(statement, rows)}
    return [item for item in chosen if (item.pa.id, item.parsed.apply_key) in claimed]


def raw_callback(event: EventView) -> RawCallback:
    """A stored event as the payment rules see a callback."""
    return RawCallback(event.body, event.headers, event.remote_addr, replay_key=event.replay_key)


_MARK_PAID = (
    update(_INVOICES)
    .where(_INVOICES.c.id == bindparam("b_id"))
    .values(
        status=_PAID,
        provider_status="succeeded",
        paid_amount=bindparam("b_total"),
        paid_at=bindparam("b_now"),
        reconcile_due_at=None,
        last_event_at=bindparam("b_now"),
        provider_payment_id=bindparam("b_payment_id"),
        provider_capture_id=bindparam("b_capture_id"),
        updated_at=bindparam("b_now"),
    )
)


async def _mark_paid(session: AsyncSession, paid: Sequence[_Paid], now: Any) -> None:
    await session.execute(
        _MARK_PAID.execution_options(synchronize_session=False),
        [
            {
                "b_id": item.invoice.id,
                "b_total": item.invoice.total,
                "b_now": now,
                "b_payment_id": item.invoice.provider_payment_id or item.parsed.provider_payment_id,
                "b_capture_id": item.invoice.provider_capture_id or item.parsed.capture_id,
            }
            for item in paid
        ],
    )


async def _desk_lines(session: AsyncSession, paid: Sequence[_Paid], now: Any) -> None:
    """What :func:`hub.payments.apply._mark_provider_paid` writes, for the whole set."""
    history, activity = [], []
    for item in paid:
        invoice = item.invoice
        units = in_units(invoice.total, invoice.currency)
        data = {"invoice_id": invoice.id, "amount": str(units), "currency": invoice.currency}
        history.append(
            bulk.HistoryLine(
                invoice.account_id, invoice.ticket_id, actor_of(item.pa), "invoice_paid", data, now
            )
        )
        if invoice.contact_id is not None:
            summary = f"Invoice {invoice.id} paid: {units} {invoice.currency}"
            activity.append(
                bulk.ActivityLine(
                    invoice.account_id,
                    invoice.contact_id,
                    "invoice_paid",
                    invoice.id,
                    summary,
                    data,
                    now,
                    ticket_id=invoice.ticket_id,
                )
            )
    await bulk.record_history_lines(session, history)
    await bulk.add_activity_lines(session, activity)


async def _refresh_flags(session: AsyncSession, paid: Sequence[_Paid]) -> None:
    """PAY-8 flags of every ticket the set touched, one read per account."""
    tickets: dict[int, set[int]] = defaultdict(set)
    for item in paid:
        tickets[item.invoice.account_id].add(item.invoice.ticket_id)
    for account_id, ticket_ids in tickets.items():
        await bulk.set_ext_flags(session, "payment", await payment_flags(session, account_id, ticket_ids))


async def apply_paid(
    session: AsyncSession, items: Sequence[tuple[EventView, PaymentAccount, ProviderEvent]]
) -> dict[int, Applied]:
    """Apply the plain "paid" callbacks among ``items`` (one batch's parsed payment events) as a
    set; their outcomes by event id. The caller applies the others one by one afterwards."""
    by_account: dict[int, list[tuple[EventView, PaymentAccount, ProviderEvent]]] = defaultdict(list)
    for item in items:
        by_account[item[1].id].append(item)
    paid: list[_Paid] = []
    for group in by_account.values():
        invoices = await _locked_invoices(session, group[0][1], [parsed for _, _, parsed in group])
        chosen = _select(group, invoices)
        if chosen:
            paid += await _claim_keys(session, chosen)
    if not paid:
        return {}
    now = utcnow()
    await _mark_paid(session, paid, now)
    await _desk_lines(session, paid, now)
    await _refresh_flags(session, paid)
    return {
        item.event.id: Applied("applied", result={"invoice_id": item.invoice.id, "refund_id": None})
        for item in paid
    }
