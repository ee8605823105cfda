"""How payments touch the desk: tickets, history (DESK-7), activity (DESK-8), list flags (PAY-8),
notifications (DESK-10) and the base-data lock (PAY-4). Only the desk's public service functions."""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.desk.actors import Actor
from hub.desk.service import (
    add_activity,
    get_ticket,
    record_history,
    register_base_data_lock,
    set_ext_flag,
)
from hub.errors import Conflict
from hub.notifications import notify as send_notification
from hub.payments.models import Invoice, Refund
from hub.payments.money import in_units

__all__ = [
    "CLOSED_TICKET_STATUSES",
    "activity",
    "check_base_data_lock",
    "flag_attention",
    "history",
    "load_ticket",
    "notify",
    "payment_flags",
    "payment_summary",
    "refresh_flags",
    "register_lock",
]

CLOSED_TICKET_STATUSES = frozenset({"resolved", "cancelled", "closed"})
BASE_DATA = frozenset({"type", "object_id", "company_id", "contact_id"})
_INVOICE_FLAG = {"draft": "not_issued", "issued": "unpaid", "marked_paid": "marked_paid", "paid": "paid"}


async def load_ticket(
    session: AsyncSession, account_id: int, ticket_id: int, *, for_update: bool = False
) -> Any:
    return await get_ticket(session, account_id, ticket_id, for_update=for_update)


async def history(session: AsyncSession, ticket: Any, actor: Actor, kind: str, data: dict[str, Any]) -> None:
    await record_history(session, ticket, actor, kind, data)


async def activity(
    session: AsyncSession,
    account_id: int,
    contact_id: int | None,
    kind: str,
    ref_id: int,
    summary: str,
    data: dict[str, Any] | None = None,
    *,
    ticket_id: int,
) -> None:
    if contact_id is None:
        return
    await add_activity(session, account_id, contact_id, kind, ref_id, summary, data, ticket_id=ticket_id)


async def notify(
    session: AsyncSession,
    account_id: int,
    event: str,
    ticket: Any,
    recipients: list[tuple[str, int]],
    data: dict[str, Any],
) -> None:
    if not recipients:
        return
    await send_notification(
        session, account_id=account_id, event=event, ticket=ticket, recipients=recipients, data=data
    )


def payment_summary(invoices: list[Any], refunds: list[Any]) -> dict[str, Any] | None:
    """PAY-8: what the ticket list shows: the latest invoice's state and amount, the refund state."""
    if not invoices:
        return None
    latest = max(invoices, key=lambda i: i.id)
    flag: dict[str, Any] = {
        "invoice": _INVOICE_FLAG.get(latest.status, latest.status),
        "invoice_id": latest.id,
        "amount": str(in_units(latest.total, latest.currency)),
        "currency": latest.currency,
    }
    live = [r for r in refunds if r.status in _LIVE_REFUNDS]
    if live:
        newest = max(live, key=lambda r: r.id)
        # Seed 002 §4: "Возврат запрошен" / "Возврат подтвержден" (and the money back, once refunded).
        flag["refund"] = {"requested": "requested", "approved": "confirmed", "refunded": "refunded"}[
            newest.status
        ]
        flag["refund_amount"] = str(in_units(newest.amount, newest.currency))
    return flag


_LIVE_REFUNDS = ("requested", "approved", "refunded")


async def payment_flags(
    session: AsyncSession, account_id: int, ticket_ids: Iterable[int]
) -> dict[int, dict[str, Any] | None]:
    """PAY-8 list flags of the account's tickets, by ticket id. Only each ticket's latest invoice
    and newest live refund decide the flag, so only those are read: one round trip, however many
    invoices the tickets have."""
    ids = sorted(set(ticket_ids))
    newest_invoices = (
        select(func.max(Invoice.id))
        .where(Invoice.account_id == account_id, Invoice.ticket_id.in_(ids))
        .group_by(Invoice.ticket_id)
    )
    newest_refunds = (
        select(func.max(Refund.id))
        .where(Refund.account_id == account_id, Refund.ticket_id.in_(ids), Refund.status.in_(_LIVE_REFUNDS))
        .group_by(Refund.ticket_id)
    )
    rows = (
        await session.execute(
            select(
                literal("invoice"),
                Invoice.ticket_id,
                Invoice.id,
                Invoice.status,
                Invoice.total,
                Invoice.currency,
            )
            .where(Invoice.id.in_(newest_invoices))
            .union_all(
                select(
                    literal("refund"),
                    Refund.ticket_id,
                    Refund.id,
                    Refund.status,
                    Refund.amount,
                    Refund.currency,
                ).where(Refund.id.in_(newest_refunds))
            )
        )
    ).all()
    invoices: dict[int, list[Any]] = {tid: [] for tid in ids}
    refunds: dict[int, list[Any]] = {tid: [] for tid in ids}
    for kind, ticket_id, row_id, status, amount, currency in rows:
        if kind == "invoice":
            invoices[ticket_id].append(
                SimpleNamespace(id=row_id, status=status, total=amount, currency=currency)
            )
        else:
            refunds[ticket_id].append(
                SimpleNamespace(id=row_id, status=status, amount=amount, currency=currency)
            )
    return {tid: payment_summary(invoices[tid], refunds[tid]) for tid in ids}


async def refresh_flags(session: AsyncSession, ticket: Any) -> None:
    flags = await payment_flags(session, ticket.account_id, [ticket.id])
    set_ext_flag(ticket, "payment", flags[ticket.id])


async def flag_attention(session: AsyncSession, ticket: Any, reason: str, data: dict[str, Any]) -> None:
    """PAY-8: a payment fact staff must look at (money taken on a withdrawn invoice), shown in
    ticket lists as ``ext_flags.payment_attention`` until staff deal with it."""
    set_ext_flag(ticket, "payment_attention", {"reason": reason, **data})


async def check_base_data_lock(session: AsyncSession, ticket: Any, changes: Any) -> None:
    """PAY-4: refuse changes of type / object / company / contact once an invoice is issued
    (issued, marked paid or paid) or once the ticket is resolved or cancelled."""
    fields = set(changes) if not isinstance(changes, str) else {changes}
    touched = fields & BASE_DATA
    if not touched:
        return
    if getattr(ticket, "status", None) in CLOSED_TICKET_STATUSES:
        raise Conflict(
            "The ticket is resolved or cancelled: its base data can no longer change",
            code="ticket_base_data_locked",
            reason="ticket_closed",
        )
    issued = await session.scalar(
        select(Invoice.id)
        .where(
            Invoice.account_id == ticket.account_id,
            Invoice.ticket_id == ticket.id,
            Invoice.status.in_(("issued", "marked_paid", "paid")),
        )
        .limit(1)
    )
    if issued is not None:
        raise Conflict(
            "An invoice is issued on this ticket: its base data can no longer change",
            code="ticket_base_data_locked",
            reason="invoice_issued",
            invoice_id=issued,
        )


_registered = False


def register_lock() -> None:
    """Hook the lock into the desk's update of base data (once per process)."""
    global _registered
    if _registered:
        return
    register_base_data_lock(check_base_data_lock)
    _registered = True
