"""PAY-3, PAY-5, PAY-6: a withdrawn (made unpaid) invoice's payment is cancelled at the provider,
and money that still arrives for it is never lost: staff see it; an event applied before the
invoice was withdrawn, told again, is a duplicate rather than an unknown invoice."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from hub.outbox.models import OutboxMessage
from tests.payments.conftest import World
from tests.payments.providers import FakeCloudPayments, FakeStandard, FakeStripe, FakeTBank, FakeYooKassa


async def _issued(world: World) -> dict[str, Any]:
    return await world.issued(await world.ticket(), [{"name": "Door closer", "unit_price": "800.00"}])


async def _cancel_messages(world: World) -> list[str]:
    async with world.db.sessionmaker() as session:
        rows = await session.scalars(
            select(OutboxMessage.status).where(OutboxMessage.topic == "payments.cancel_payment")
        )
        return [str(status) for status in rows]


async def _withdraw(world: World, invoice: dict[str, Any]) -> None:
    await world.act(f"/api/invoices/{invoice['id']}/make-unpaid")
    await world.drain()
    assert await _cancel_messages(world) == ["delivered"]


def _hold_for_capture(yk: FakeYooKassa, invoice: dict[str, Any]) -> None:
    yk.payments[invoice["provider_payment_id"]]["status"] = "waiting_for_capture"


# provider -> (its fake, how the issued payment is prepared, where the fake keeps its status, the cancelled value)
CANCELLED: dict[str, tuple[type, Any, Any, str]] = {
    "yookassa": (
        FakeYooKassa,
        _hold_for_capture,
        lambda f, i: f.payments[i["provider_payment_id"]]["status"],
        "canceled",
    ),
    "tbank": (FakeTBank, None, lambda f, i: f.payments[i["provider_payment_id"]]["Status"], "CANCELED"),
    "cloudpayments": (
        FakeCloudPayments,
        None,
        lambda f, i: f.orders[i["payment_ref"]].get("Status"),
        "Cancelled",
    ),
    "stripe": (FakeStripe, None, lambda f, i: f.sessions[i["provider_payment_id"]]["status"], "expired"),
}


@pytest.mark.parametrize("provider", sorted(CANCELLED))
async def test_made_unpaid_cancels_the_payment_at_the_provider(world: World, far: Any, provider: str) -> None:
    """PAY-3, PAY-5: make-unpaid cancels the old payment through each provider's real API:
    YooKassa POST /payments/{id}/cancel (a payment waiting for capture), T-Bank Cancel (an unpaid
    payment), CloudPayments POST /orders/cancel, Stripe POST /checkout/sessions/{id}/expire."""
    fake_type, prepare, status_of, cancelled = CANCELLED[provider]
    fake = fake_type()
    fake.install(far)
    await world.connect(provider, fake.credentials)
    invoice = await _issued(world)
    if prepare is not None:
        prepare(fake, invoice)
    assert status_of(fake, invoice) != cancelled
    await _withdraw(world, invoice)
    assert status_of(fake, invoice) == cancelled
    assert (await world.get(f"/api/invoices/{invoice['id']}"))["status"] == "draft"


async def test_cancel_refusals_are_final_and_paid_payments_are_not_refunded(world: World, far: Any) -> None:
    """PAY-5: a YooKassa payment still ``pending`` cannot be cancelled (400): the delivery ends,
    not retried forever; a T-Bank payment already CONFIRMED is left alone (Cancel would refund
    the client): only GetState is asked."""
    yk = FakeYooKassa()
    yk.install(far)
    await world.connect("yookassa", yk.credentials)
    pending = await _issued(world)
    await _withdraw(world, pending)
    assert yk.payments[pending["provider_payment_id"]]["status"] == "pending"

    tb = FakeTBank()
    tb.install(far)
    await world.connect("tbank", tb.credentials, is_default=True)
    paid = await _issued(world)
    tb.payments[paid["provider_payment_id"]]["Status"] = "CONFIRMED"
    cancel_route = far.routes[-1]  # POST /v2/Cancel
    await world.act(f"/api/invoices/{paid['id']}/make-unpaid")
    await world.drain()
    assert tb.payments[paid["provider_payment_id"]]["Status"] == "CONFIRMED"
    assert cancel_route.call_count == 0
    assert await _cancel_messages(world) == ["delivered", "delivered"]


async def test_payment_after_withdrawal_reaches_staff(world: World) -> None:
    """PAY-3, PAY-6, PAY-8: the client pays the old link after staff made the invoice unpaid. The
    provider is answered OK (retrying cannot help), nothing is marked paid, and the money is
    visible: a ``review`` entry in the callback log, a ticket history line and a list flag."""
    sw = FakeStandard()
    account = await world.connect("standard", sw.credentials)
    invoice = await _issued(world)
    old_ref = invoice["payment_ref"]
    await world.act(f"/api/invoices/{invoice['id']}/make-unpaid")
    data = {"invoice_ref": old_ref, "amount": "800.00", "currency": "RUB"}
    late = sw.event("payment.succeeded", data, msg_id="msg_late")
    assert (await world.callback(account, late)).status_code == 204
    stamp = int(late.headers["webhook-timestamp"]) + 1
    retry = sw.event("payment.succeeded", data, msg_id="msg_late", timestamp=stamp)
    assert (await world.callback(account, retry)).status_code == 204  # the gateway's retry: a duplicate
    assert (await world.get(f"/api/invoices/{invoice['id']}"))["status"] == "draft"
    log = (await world.get("/api/payments/callbacks", headers=world.tenant.admin.headers))["items"]
    review = [e for e in log if e["outcome"] == "review"]
    assert [(e["code"], e["invoice_id"]) for e in review] == [("paid_after_withdrawal", invoice["id"])]
    assert "unknown_invoice" not in {e["code"] for e in log}
    assert "payment_after_withdrawal" in await world.history_kinds(invoice["ticket_id"])
    ticket = await world.get(f"/api/tickets/{invoice['ticket_id']}")
    attention = ticket["ext_flags"]["payment_attention"]
    assert (attention["reason"], attention["payment_ref"], attention["amount"]) == (
        "paid_after_withdrawal",
        old_ref,
        "800.00",
    )


async def test_retry_of_an_applied_event_after_reissue_is_a_duplicate(world: World) -> None:
    """PAY-6: an event applied before the invoice was made unpaid and issued again, delivered
    again by the provider (its retry, signed afresh), is answered as received and applied no
    more -- not 404 unknown_invoice, which would make the provider retry forever."""
    sw = FakeStandard()
    account = await world.connect("standard", sw.credentials)
    invoice = await _issued(world)
    data = {"invoice_ref": invoice["payment_ref"], "amount": "800.00", "currency": "RUB"}
    first = sw.event("payment.pending", data, msg_id="msg_pending_1")
    assert (await world.callback(account, first)).status_code == 204
    await world.act(f"/api/invoices/{invoice['id']}/make-unpaid")
    await world.act(f"/api/invoices/{invoice['id']}/issue")
    retry = sw.event(
        "payment.pending", data, msg_id="msg_pending_1", timestamp=int(first.headers["webhook-timestamp"]) + 1
    )
    answer = await world.callback(account, retry)
    assert answer.status_code == 204, answer.text
    log = (await world.get("/api/payments/callbacks", headers=world.tenant.admin.headers))["items"]
    assert [e["outcome"] for e in reversed(log)] == ["applied"]
    received = (await world.get("/api/intake/events?source=payments", headers=world.tenant.admin.headers))[
        "items"
    ]
    assert [(e["state"], e["outcome"]) for e in received] == [("done", "applied")]  # stored once
