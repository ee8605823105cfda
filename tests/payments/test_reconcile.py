"""PAY-9: invoices and refunds whose callbacks were lost end in the right state by asking the
provider, through the same exactly-once path as callbacks."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import update

from hub.db import utcnow
from hub.outbox.models import OutboxMessage
from hub.payments.jobs import reconcile
from tests.payments.conftest import World
from tests.payments.providers import FakeCloudPayments, FakeStripe, FakeTBank, FakeYooKassa


def _later(seconds: int = 3600) -> Any:
    return utcnow() + timedelta(seconds=seconds)


async def _issued(world: World) -> dict[str, Any]:
    return await world.issued(await world.ticket(), [{"name": "Service visit", "unit_price": "990.00"}])


async def test_lost_payment_callback_yookassa(world: World, far: Any) -> None:
    """PAY-9: paid at YooKassa, callback lost: reconciliation after the threshold marks it paid;
    nothing is asked before the threshold; the late callback then changes nothing."""
    yk = FakeYooKassa()
    yk.install(far)
    account = await world.connect("yookassa", yk.credentials, reconcile_after_seconds=600)
    invoice = await _issued(world)
    yk.pay(invoice["provider_payment_id"])
    jobs = world.app.state.jobs
    assert await reconcile(jobs, now=_later(60)) == 0  # not due yet
    assert await reconcile(jobs, now=_later(601)) == 1
    after = await world.get(f"/api/invoices/{invoice['id']}")
    assert after["status"] == "paid" and Decimal(after["paid_amount"]) == Decimal("990")
    late = await world.callback(
        account, yk.notification("payment.succeeded", yk.payments[invoice["provider_payment_id"]])
    )
    assert late.status_code == 200
    log = (await world.get("/api/payments/callbacks", headers=world.tenant.admin.headers))["items"]
    assert [(e["source"], e["outcome"]) for e in reversed(log)] == [
        ("reconciliation", "applied"),
        ("callback", "duplicate"),
    ]
    assert await reconcile(jobs, now=_later(7200)) == 0  # paid: nothing left to ask


async def test_lost_payment_callback_tbank_and_cloudpayments(world: World, far: Any) -> None:
    """PAY-9: T-Bank GetState and CloudPayments payments/find recover lost Pay notifications."""
    tb, cp = FakeTBank(), FakeCloudPayments()
    tb.install(far)
    cp.install(far)
    await world.connect("tbank", tb.credentials)
    first = await _issued(world)
    await world.connect("cloudpayments", cp.credentials, is_default=True)
    second = await world.issued(await world.ticket(), [{"name": "Visit", "unit_price": "250"}])
    tb.payments[first["provider_payment_id"]]["Status"] = "CONFIRMED"
    cp.pay(second["payment_ref"])
    assert await reconcile(world.app.state.jobs, now=_later()) == 2
    assert (await world.get(f"/api/invoices/{first['id']}"))["status"] == "paid"
    assert (await world.get(f"/api/invoices/{second['id']}"))["status"] == "paid"


async def test_still_unpaid_is_asked_again_later(world: World, far: Any) -> None:
    """PAY-9: a payment still pending at the provider stays issued and is asked again next time."""
    yk = FakeYooKassa()
    yk.install(far)
    await world.connect("yookassa", yk.credentials, reconcile_after_seconds=600)
    invoice = await _issued(world)
    jobs = world.app.state.jobs
    assert await reconcile(jobs, now=_later(601)) == 1
    assert (await world.get(f"/api/invoices/{invoice['id']}"))["status"] == "issued"
    yk.pay(invoice["provider_payment_id"])
    assert await reconcile(jobs, now=_later(7200)) == 1
    assert (await world.get(f"/api/invoices/{invoice['id']}"))["status"] == "paid"


async def test_lost_refund_callback_stripe(world: World, far: Any) -> None:
    """PAY-9: an approved refund pending at Stripe whose refund.updated never came is finished by
    reconciliation."""
    st = FakeStripe(refund_status="pending")
    st.install(far)
    account = await world.connect("stripe", st.credentials)
    invoice = await _issued(world)
    st.pay(invoice["provider_payment_id"])
    await world.callback(
        account, st.event("checkout.session.completed", st.sessions[invoice["provider_payment_id"]])
    )
    refund = await world.act(
        f"/api/invoices/{invoice['id']}/refunds", {"reason": "Cancelled visit", "full": True}, expect=201
    )
    await world.act(f"/api/refunds/{refund['id']}/approve")
    await world.drain()
    (rid,) = st.refunds
    st.refunds[rid]["status"] = "succeeded"
    assert await reconcile(world.app.state.jobs, now=_later()) == 1
    assert (await world.get(f"/api/refunds/{refund['id']}"))["status"] == "refunded"
    assert Decimal((await world.get(f"/api/invoices/{invoice['id']}"))["refunded_amount"]) == Decimal("990")


async def test_racing_reconcilers_ask_once(world: World, far: Any) -> None:
    """PAY-9: several workers reconciling at once claim each invoice once (conditional update)."""
    yk = FakeYooKassa()
    yk.install(far)
    await world.connect("yookassa", yk.credentials)
    invoices = [await _issued(world) for _ in range(3)]
    for invoice in invoices:
        yk.pay(invoice["provider_payment_id"])
    route = far.routes[1]  # GET /v3/payments/{id}
    before = route.call_count
    counts = await asyncio.gather(*(reconcile(world.app.state.jobs, now=_later()) for _ in range(3)))
    assert sum(counts) == 3 and route.call_count - before == 3
    for invoice in invoices:
        assert (await world.get(f"/api/invoices/{invoice['id']}"))["status"] == "paid"


async def test_marked_paid_invoice_paid_at_the_provider_too(world: World, far: Any) -> None:
    """PAY-3, PAY-9: an invoice marked paid by hand is still asked about: when the client did pay
    the link as well (its callback lost), reconciliation makes it provider-paid, so the money can
    be refunded through the provider."""
    yk = FakeYooKassa()
    yk.install(far)
    await world.connect("yookassa", yk.credentials, reconcile_after_seconds=600)
    invoice = await _issued(world)
    await world.act(f"/api/invoices/{invoice['id']}/mark-paid", {"note": "Cash at the office"})
    yk.pay(invoice["provider_payment_id"])
    assert await reconcile(world.app.state.jobs, now=_later(601)) == 1
    after = await world.get(f"/api/invoices/{invoice['id']}")
    assert (after["status"], after["paid_amount"]) == ("paid", "990.00")


async def test_lost_refund_answer_found_by_our_reference_stripe(world: World, far: Any) -> None:
    """PAY-7, PAY-9: Stripe made the refund but every answer was lost and the outbox gave up: the
    refund has no Stripe id, stays approved, and reconciliation finds it among the payment
    intent's refunds by our ``refund_ref`` metadata and finishes it."""
    st = FakeStripe(refund_status="succeeded")
    st.install(far)
    account = await world.connect("stripe", st.credentials)
    invoice = await _issued(world)
    sid = invoice["provider_payment_id"]
    st.pay(sid)
    await world.callback(account, st.event("checkout.session.completed", st.sessions[sid]))

    def made_but_lost(request: httpx.Request) -> httpx.Response:
        st._refund(request)
        return httpx.Response(500, json={"error": {"type": "api_error"}})

    far.post("https://api.stripe.com/v1/refunds").mock(side_effect=made_but_lost)
    refund = await world.act(
        f"/api/invoices/{invoice['id']}/refunds", {"reason": "Cancelled visit", "full": True}, expect=201
    )
    await world.act(f"/api/refunds/{refund['id']}/approve")
    async with world.db.sessionmaker() as session, session.begin():
        await session.execute(
            update(OutboxMessage).where(OutboxMessage.topic == "payments.refund").values(max_attempts=1)
        )
    await world.drain()
    (rid,) = st.refunds
    assert (await world.get(f"/api/refunds/{refund['id']}"))["status"] == "approved"
    assert await reconcile(world.app.state.jobs, now=_later(60)) == 1
    done = await world.get(f"/api/refunds/{refund['id']}")
    assert (done["status"], done["provider_refund_id"]) == ("refunded", rid)
