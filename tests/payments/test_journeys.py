"""Full journeys per provider: issue -> pay callback -> partial refund request -> approve -> refund
callback; and by hand: mark paid -> make unpaid -> draft again."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.payments.conftest import World
from tests.payments.providers import FakeCloudPayments, FakeStandard, FakeStripe, FakeTBank, FakeYooKassa


async def _two_lines(world: World) -> tuple[int, list[dict[str, Any]]]:
    key = await world.price("KEY-1", "1000.00")
    lock = await world.price("LOCK-2", "700.00")
    ticket_id = await world.ticket()
    lines = [
        {"price_item_id": key["id"], "quantity": "1"},
        {"price_item_id": lock["id"], "quantity": "2", "discount_percent": "10"},
    ]
    return ticket_id, lines  # 1000 + 2 * 700 * 0.9 = 2260.00


async def _raw(world: World, path: str) -> str:
    response = await world.client.get(path, headers=world.staff)
    assert response.status_code == 200, response.text
    return response.text


async def _refund_second_line(world: World, invoice: dict[str, Any]) -> dict[str, Any]:
    line = invoice["lines"][1]
    refund = await world.act(
        f"/api/invoices/{invoice['id']}/refunds",
        {"reason": "The lock was not replaced", "lines": [{"line_id": line["id"]}]},
        headers=world.app_headers,
        expect=201,
    )
    assert refund["status"] == "requested" and Decimal(refund["amount"]) == Decimal("1260")
    approved = await world.act(f"/api/refunds/{refund['id']}/approve")
    assert approved["status"] == "approved"
    return approved


async def test_yookassa_journey(world: World, far: Any) -> None:
    """PAY-2, PAY-3, PAY-5, PAY-6, PAY-7, PAY-8: YooKassa end to end, the object confirmed via the
    API; amounts in the API's JSON are exact strings in minor units ("2260.00", not "2.26E+3")."""
    yk = FakeYooKassa(refund_status="pending")
    yk.install(far)
    account = await world.connect("yookassa", yk.credentials, return_url="https://tenant.example/paid")
    ticket_id, lines = await _two_lines(world)
    invoice = await world.issued(ticket_id, lines)
    assert invoice["status"] == "issued" and Decimal(invoice["total"]) == Decimal("2260")
    assert invoice["payment_url"].startswith("https://yoomoney.ru/")
    pid = invoice["provider_payment_id"]
    assert yk.payments[pid]["amount"] == {"value": "2260.00", "currency": "RUB"}
    assert await world.flags(ticket_id) == {
        "invoice": "unpaid",
        "invoice_id": invoice["id"],
        "amount": "2260.00",
        "currency": "RUB",
    }

    # The body claims success, but only the API's answer counts: not paid yet -> nothing happens.
    early = await world.callback(
        account, yk.notification("payment.succeeded", {**yk.payments[pid], "status": "succeeded"})
    )
    assert early.status_code == 200
    assert (await world.get(f"/api/invoices/{invoice['id']}"))["status"] == "issued"

    yk.pay(pid)
    paid = await world.callback(account, yk.notification("payment.succeeded", yk.payments[pid]))
    assert paid.status_code == 200
    invoice = await world.get(f"/api/invoices/{invoice['id']}")
    assert invoice["status"] == "paid" and Decimal(invoice["paid_amount"]) == Decimal("2260")
    # Money in the JSON exactly as a client must show it: minor units, never exponent form.
    text = await _raw(world, f"/api/invoices/{invoice['id']}")
    for exact in ('"total":"2260.00"', '"paid_amount":"2260.00"', '"refunded_amount":"0.00"'):
        assert exact in text, (exact, text)
    assert '"unit_price":"700.00"' in text and '"amount":"1260.00"' in text
    assert '"price":"1000.00"' in await _raw(world, "/api/price-list")

    refund = await _refund_second_line(world, invoice)
    assert '"amount":"1260.00"' in await _raw(world, f"/api/refunds/{refund['id']}")
    await world.drain()  # the outbox asks YooKassa for the refund
    (rid,) = yk.refunds
    assert yk.refunds[rid]["amount"] == {"value": "1260.00", "currency": "RUB"}
    assert (await world.get(f"/api/refunds/{refund['id']}"))["status"] == "approved"
    assert (await world.flags(ticket_id) or {})["refund"] == "confirmed"

    yk.refunds[rid]["status"] = "succeeded"
    done = await world.callback(account, yk.notification("refund.succeeded", yk.refunds[rid]))
    assert done.status_code == 200
    refund = await world.get(f"/api/refunds/{refund['id']}")
    assert refund["status"] == "refunded" and refund["provider_refund_id"] == rid
    invoice = await world.get(f"/api/invoices/{invoice['id']}")
    assert Decimal(invoice["refunded_amount"]) == Decimal("1260")
    assert Decimal(invoice["refundable_amount"]) == Decimal("1000")
    assert (await world.flags(ticket_id) or {})["refund"] == "refunded"


async def test_tbank_journey(world: World, far: Any) -> None:
    """PAY-5, PAY-6, PAY-7: T-Bank Init / notification (Token, answered OK) / Cancel."""
    tb = FakeTBank()
    tb.install(far)
    account = await world.connect("tbank", tb.credentials)
    ticket_id, lines = await _two_lines(world)
    invoice = await world.issued(ticket_id, lines)
    pid = invoice["provider_payment_id"]
    assert tb.payments[pid]["Amount"] == 226000 and invoice["payment_url"].startswith(
        "https://securepayments"
    )

    for status in ("AUTHORIZED", "CONFIRMED"):
        answer = await world.callback(account, tb.notification(pid, status))
        assert answer.status_code == 200 and answer.text == "OK"
    invoice = await world.get(f"/api/invoices/{invoice['id']}")
    assert invoice["status"] == "paid"

    refund = await _refund_second_line(world, invoice)
    await world.drain()  # Cancel with Amount=126000 -> PARTIAL_REFUNDED at once
    assert tb.payments[pid]["Status"] == "PARTIAL_REFUNDED"
    assert (await world.get(f"/api/refunds/{refund['id']}"))["status"] == "refunded"
    # T-Bank's own notification of the same refund changes nothing more.
    again = await world.callback(account, tb.notification(pid, "PARTIAL_REFUNDED", amount=126000))
    assert again.status_code == 200 and again.text == "OK"
    invoice = await world.get(f"/api/invoices/{invoice['id']}")
    assert Decimal(invoice["refunded_amount"]) == Decimal("1260")


async def test_cloudpayments_journey(world: World, far: Any) -> None:
    """PAY-5, PAY-6, PAY-7: CloudPayments orders/create, Check and Pay ({"code":0}), refund, Refund."""
    cp = FakeCloudPayments()
    cp.install(far)
    account = await world.connect("cloudpayments", cp.credentials)
    ticket_id, lines = await _two_lines(world)
    invoice = await world.issued(ticket_id, lines)
    assert invoice["payment_url"].startswith("https://orders.cloudpayments.ru/d/")
    ref = invoice["payment_ref"]
    tid = cp.pay(ref)
    check = await world.callback(account, cp.pay_notification(tid), kind="check")
    assert check.status_code == 200 and check.json() == {"code": 0}
    paid = await world.callback(account, cp.pay_notification(tid), kind="pay")
    assert paid.json() == {"code": 0}
    invoice = await world.get(f"/api/invoices/{invoice['id']}")
    assert invoice["status"] == "paid"

    refund = await _refund_second_line(world, invoice)
    await world.drain()
    refund_tid = max(cp.transactions)
    assert cp.transactions[refund_tid] == {"refund_of": tid, "Amount": 1260.0}
    assert (await world.get(f"/api/refunds/{refund['id']}"))["status"] == "refunded"
    told = await world.callback(account, cp.refund_notification(refund_tid, ref), kind="refund")
    assert told.json() == {"code": 0}
    assert Decimal((await world.get(f"/api/invoices/{invoice['id']}"))["refunded_amount"]) == Decimal("1260")


async def test_stripe_journey(world: World, far: Any) -> None:
    """PAY-5, PAY-6, PAY-7: Stripe Checkout Session, signed events, refund pending then succeeded."""
    st = FakeStripe()
    st.install(far)
    account = await world.connect("stripe", st.credentials)
    ticket_id, lines = await _two_lines(world)
    invoice = await world.issued(ticket_id, lines)
    sid = invoice["provider_payment_id"]
    assert st.sessions[sid]["amount_total"] == 226000 and invoice["payment_url"].startswith(
        "https://checkout.stripe.com/"
    )
    st.pay(sid)
    answer = await world.callback(account, st.event("checkout.session.completed", st.sessions[sid]))
    assert answer.status_code == 200
    invoice = await world.get(f"/api/invoices/{invoice['id']}")
    assert invoice["status"] == "paid"

    refund = await _refund_second_line(world, invoice)
    await world.drain()
    (rid,) = st.refunds
    assert st.refunds[rid]["amount"] == 126000
    assert (await world.get(f"/api/refunds/{refund['id']}"))["status"] == "approved"
    st.refunds[rid]["status"] = "succeeded"
    done = await world.callback(account, st.event("refund.updated", st.refunds[rid]))
    assert done.status_code == 200
    assert (await world.get(f"/api/refunds/{refund['id']}"))["status"] == "refunded"


async def test_standard_webhooks_journey(world: World, far: Any) -> None:
    """PAY-6: a gateway speaking Standard Webhooks: payment and refund events, answered 204."""
    sw = FakeStandard()
    account = await world.connect("standard", sw.credentials)
    ticket_id, lines = await _two_lines(world)
    invoice = await world.issued(ticket_id, lines)
    ref = invoice["payment_ref"]
    assert invoice["payment_url"] == f"https://pay.example.test/checkout/{ref}?amount=2260.00"
    answer = await world.callback(
        account,
        sw.event(
            "payment.succeeded",
            {"invoice_ref": ref, "amount": "2260.00", "currency": "RUB", "payment_id": "gw-1"},
        ),
    )
    assert answer.status_code == 204
    invoice = await world.get(f"/api/invoices/{invoice['id']}")
    refund = await _refund_second_line(world, invoice)
    await world.drain()
    told = await world.callback(
        account,
        sw.event(
            "refund.succeeded",
            {
                "invoice_ref": ref,
                "amount": "1260.00",
                "currency": "RUB",
                "refund_id": "gw-r1",
                "refund_ref": f"ref{refund['id']}",
            },
        ),
    )
    assert told.status_code == 204
    assert (await world.get(f"/api/refunds/{refund['id']}"))["status"] == "refunded"


async def test_mark_paid_then_make_unpaid(world: World, far: Any) -> None:
    """PAY-3, PAY-8: marked paid by hand (cash at the office), made unpaid: draft again, editable."""
    yk = FakeYooKassa()
    yk.install(far)
    await world.connect("yookassa", yk.credentials)
    ticket_id, lines = await _two_lines(world)
    invoice = await world.issued(ticket_id, lines)
    marked = await world.act(f"/api/invoices/{invoice['id']}/mark-paid", {"note": "cash at the office"})
    assert marked["status"] == "marked_paid"
    assert (await world.flags(ticket_id) or {})["invoice"] == "marked_paid"
    draft = await world.act(f"/api/invoices/{invoice['id']}/make-unpaid")
    assert draft["status"] == "draft" and draft["payment_url"] is None
    assert (await world.flags(ticket_id) or {})["invoice"] == "not_issued"
    added = await world.act(
        f"/api/invoices/{invoice['id']}/lines", {"name": "Call-out", "unit_price": "300"}, expect=201
    )
    assert Decimal(added["total"]) == Decimal("2560")
    reissued = await world.act(f"/api/invoices/{invoice['id']}/issue")
    assert reissued["status"] == "issued" and reissued["payment_ref"].endswith("-2")
