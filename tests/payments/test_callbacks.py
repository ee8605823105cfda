"""PAY-6: callbacks applied exactly once, in any order, concurrently; every bad input refused in the
provider's own form with nothing applied and the attempt visible to administrators."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.payments.conftest import World
from tests.payments.providers import (
    FakeCloudPayments,
    FakeStandard,
    FakeStripe,
    FakeTBank,
    FakeYooKassa,
    Signed,
)

Scenario = Callable[
    [World, Any], Awaitable[tuple[dict[str, Any], dict[str, Any], list[tuple[Signed, str | None]]]]
]


async def _issued(world: World) -> dict[str, Any]:
    item = await world.price("SVC", "1500.00")
    ticket_id = await world.ticket()
    return await world.issued(ticket_id, [{"price_item_id": item["id"]}])


async def _yookassa(world: World, far: Any) -> Any:
    yk = FakeYooKassa()
    yk.install(far)
    account = await world.connect("yookassa", yk.credentials)
    invoice = await _issued(world)
    pid = invoice["provider_payment_id"]
    pending = yk.notification("payment.waiting_for_capture", dict(yk.payments[pid]))
    yk.pay(pid)
    # Refunded at YooKassa's dashboard: the hub learns it only from the callback.
    yk.refunds["rf-1"] = {
        "id": "rf-1",
        "payment_id": pid,
        "status": "succeeded",
        "amount": {"value": "500.00", "currency": "RUB"},
        "created_at": "2026-11-23T00:09:00Z",
    }
    return (
        account,
        invoice,
        [
            (pending, None),
            (yk.notification("payment.succeeded", yk.payments[pid]), None),
            (yk.notification("refund.succeeded", yk.refunds["rf-1"]), None),
        ],
    )


async def _tbank(world: World, far: Any) -> Any:
    tb = FakeTBank()
    tb.install(far)
    account = await world.connect("tbank", tb.credentials)
    invoice = await _issued(world)
    pid = invoice["provider_payment_id"]
    return (
        account,
        invoice,
        [
            (tb.notification(pid, "AUTHORIZED"), None),
            (tb.notification(pid, "CONFIRMED"), None),
            (tb.notification(pid, "PARTIAL_REFUNDED", amount=50000), None),
        ],
    )


async def _cloudpayments(world: World, far: Any) -> Any:
    cp = FakeCloudPayments()
    cp.install(far)
    account = await world.connect("cloudpayments", cp.credentials)
    invoice = await _issued(world)
    tid = cp.pay(invoice["payment_ref"])
    cp.seq += 1
    cp.transactions[cp.seq] = {"refund_of": tid, "Amount": 500.0}
    return (
        account,
        invoice,
        [
            (cp.pay_notification(tid), "check"),
            (cp.pay_notification(tid), "pay"),
            (cp.refund_notification(cp.seq, invoice["payment_ref"]), "refund"),
        ],
    )


async def _stripe(world: World, far: Any) -> Any:
    st = FakeStripe()
    st.install(far)
    account = await world.connect("stripe", st.credentials)
    invoice = await _issued(world)
    sid = invoice["provider_payment_id"]
    open_session = dict(st.sessions[sid])
    st.pay(sid)
    refund = {
        "id": "re_dash1",
        "object": "refund",
        "amount": 50000,
        "currency": "rub",
        "payment_intent": st.sessions[sid]["payment_intent"],
        "status": "pending",
        "metadata": {},
    }
    return (
        account,
        invoice,
        [
            (st.event("checkout.session.async_payment_succeeded", open_session), None),  # stale: still unpaid
            (st.event("checkout.session.completed", st.sessions[sid]), None),
            (st.event("refund.created", refund), None),
            (st.event("refund.updated", {**refund, "status": "succeeded"}), None),
        ],
    )


async def _standard(world: World, far: Any) -> Any:
    sw = FakeStandard()
    account = await world.connect("standard", sw.credentials)
    invoice = await _issued(world)
    data = {
        "invoice_ref": invoice["payment_ref"],
        "amount": "1500.00",
        "currency": "RUB",
        "payment_id": "gw-7",
    }
    return (
        account,
        invoice,
        [
            (sw.event("payment.pending", data), None),
            (sw.event("payment.succeeded", data), None),
            (sw.event("refund.succeeded", {**data, "amount": "500.00", "refund_id": "gw-r7"}), None),
        ],
    )


SCENARIOS: dict[str, Scenario] = {
    "yookassa": _yookassa,
    "tbank": _tbank,
    "cloudpayments": _cloudpayments,
    "stripe": _stripe,
    "standard": _standard,
}
OK = {"yookassa": 200, "tbank": 200, "cloudpayments": 200, "stripe": 200, "standard": 204}


async def _final(world: World, invoice_id: int) -> tuple[Any, ...]:
    invoice = await world.get(f"/api/invoices/{invoice_id}")
    refunds = (await world.get(f"/api/invoices/{invoice_id}/refunds"))["items"]
    return (
        invoice["status"],
        Decimal(invoice["paid_amount"]),
        Decimal(invoice["refunded_amount"]),
        sorted((r["status"], Decimal(r["amount"])) for r in refunds),
    )


EXPECTED = ("paid", Decimal("1500"), Decimal("500"), [("refunded", Decimal("500"))])


@pytest.mark.parametrize("provider", list(SCENARIOS))
async def test_three_times_concurrently_in_reverse_order(world: World, far: Any, provider: str) -> None:
    """PAY-6: every callback delivered three times at once, the whole story backwards (a refund told
    before the payment, a stale pending after success): the same final state, each fact applied once."""
    account, invoice, story = await SCENARIOS[provider](world, far)
    for signed, kind in reversed(story):
        answers = await asyncio.gather(*(world.callback(account, signed, kind=kind) for _ in range(3)))
        for answer in answers:
            # a byte-identical signed request repeated is a replay (409) for the timestamped schemes
            assert answer.status_code in (OK[provider], 409), answer.text
    assert await _final(world, invoice["id"]) == EXPECTED
    log = (await world.get("/api/payments/callbacks", headers=world.tenant.admin.headers))["items"]
    applied = Counter(entry["apply_key"] for entry in log if entry["outcome"] == "applied")
    # each fact (payment succeeded, refund succeeded, ...) applied by exactly one delivery
    assert applied and all(count == 1 for count in applied.values()), applied


@pytest.mark.parametrize("provider", list(SCENARIOS))
async def test_in_order_all_at_once(world: World, far: Any, provider: str) -> None:
    """PAY-6: the same story in order, all deliveries racing each other, ends the same way."""
    account, invoice, story = await SCENARIOS[provider](world, far)
    for signed, kind in story:
        await asyncio.gather(*(world.callback(account, signed, kind=kind) for _ in range(3)))
    assert await _final(world, invoice["id"]) == EXPECTED


# --- bad input ---------------------------------------------------------------------------------


async def _unchanged(world: World, invoice: dict[str, Any]) -> None:
    now = await world.get(f"/api/invoices/{invoice['id']}")
    assert (now["status"], now["paid_amount"], now["refunded_amount"]) == (
        invoice["status"],
        invoice["paid_amount"],
        invoice["refunded_amount"],
    )


async def _rejections(world: World) -> list[str]:
    """Every refused callback: at the door (signature, replay, ...) and by the payment rules
    (unknown invoice, wrong amount: acknowledged as received, then refused by the worker)."""
    log = await world.get(
        "/api/intake/events?source=payments&outcome=rejected", headers=world.tenant.admin.headers
    )
    return [entry["error_code"] for entry in log["items"]]


async def test_tbank_bad_inputs(world: World, far: Any) -> None:
    """PAY-6: T-Bank: wrong Token, not JSON, oversized: refused at the door in T-Bank's error form.
    Unknown order, wrong amount: acknowledged "OK" (T-Bank would only send them again), refused by
    the payment rules when applied, and in the callback log."""
    tb = FakeTBank()
    tb.install(far)
    account = await world.connect("tbank", tb.credentials)
    invoice = await _issued(world)
    pid = invoice["provider_payment_id"]
    good = json.loads(tb.notification(pid, "CONFIRMED").body)
    cases = {
        "bad_signature": {**good, "Token": "0" * 64},
        "unknown_invoice": None,
        "amount_mismatch": None,
    }
    forged = Signed(json.dumps(cases["bad_signature"]).encode(), {"content-type": "application/json"})
    tb.payments["999"] = {"OrderId": "inv-nope-1", "Amount": 150000, "Status": "NEW"}
    answers = {
        "bad_signature": await world.callback(account, forged),
        "unknown_invoice": await world.callback(account, tb.notification("999", "CONFIRMED")),
        "amount_mismatch": await world.callback(account, tb.notification(pid, "CONFIRMED", amount=100)),
        "malformed_callback": await world.callback(account, Signed(b"{not json", {})),
        "payload_too_large": await world.callback(account, Signed(b"{" + b" " * 70_000 + b"}", {})),
    }
    expected_status = {
        "bad_signature": 401,
        "malformed_callback": 400,
        "payload_too_large": 413,
    }
    for code, answer in answers.items():
        if code in expected_status:
            assert answer.status_code == expected_status[code], (code, answer.text)
            assert answer.text != "OK" and answer.json()["code"] == code
        else:
            assert (answer.status_code, answer.text) == (200, "OK"), (code, answer.text)
    await _unchanged(world, invoice)
    assert sorted(await _rejections(world)) == sorted(answers)
    log = await world.get("/api/payments/callbacks?outcome=rejected", headers=world.tenant.admin.headers)
    assert sorted(entry["code"] for entry in log["items"]) == ["amount_mismatch", "unknown_invoice"]


async def test_cloudpayments_bad_inputs_answer_documented_codes(world: World, far: Any) -> None:
    """PAY-6: CloudPayments: 13 bad HMAC, 10 unknown invoice, 12 wrong amount or currency -- a
    ``check`` (may the payment be taken?) is decided in the request and answered the documented
    way, HTTP 200 with the refusal in ``code`` (another status would only make CloudPayments
    deliver again); a ``pay`` notification is acknowledged and refused when applied. Each is
    recorded as a rejection."""
    cp = FakeCloudPayments()
    cp.install(far)
    account = await world.connect("cloudpayments", cp.credentials)
    invoice = await _issued(world)
    tid = cp.pay(invoice["payment_ref"])
    forged = cp.notification(
        {"TransactionId": tid, "Amount": "1500.00", "InvoiceId": invoice["payment_ref"]}, secret="x"
    )
    unknown = cp.pay_notification(tid, InvoiceId="inv0-9")
    cheap = cp.pay_notification(tid, Amount="1.00")
    dollars = cp.pay_notification(tid, Currency="USD")
    broken = cp.notification({"Amount": "abc"})
    cases = (
        (forged, "pay", "bad_signature", 13),
        (unknown, "check", "unknown_invoice", 10),
        (unknown, "pay", "unknown_invoice", 10),
        (cheap, "check", "amount_mismatch", 12),
        (cheap, "pay", "amount_mismatch", 12),
        (dollars, "pay", "currency_mismatch", 12),
        (broken, "pay", "malformed_callback", 13),
    )
    for signed, kind, problem, code in cases:
        answer = await world.callback(account, signed, kind=kind)
        assert answer.status_code == 200, (kind, answer.text)
        if kind == "check" or problem in ("bad_signature", "malformed_callback"):
            # check asks whether to take the payment: decided at once; a forgery is refused at once
            assert answer.content == b'{"code":%d}' % code, (kind, answer.text)
            assert answer.headers["x-hub-problem"] == problem
        else:  # a notification of what happened: received, then refused when applied
            assert answer.content == b'{"code":0}', (kind, answer.text)
    await _unchanged(world, invoice)
    assert sorted(await _rejections(world)) == sorted(problem for _, _, problem, _ in cases)


async def test_stripe_bad_signature_stale_replay_malformed(world: World, far: Any) -> None:
    """PAY-6: Stripe: wrong secret, timestamp beyond 300 s, the same signed request replayed, an
    event that is not an Event."""
    st = FakeStripe()
    st.install(far)
    account = await world.connect("stripe", st.credentials)
    invoice = await _issued(world)
    sid = invoice["provider_payment_id"]
    st.pay(sid)
    wrong = st.event("checkout.session.completed", st.sessions[sid], secret="whsec_wrong")
    stale = st.event("checkout.session.completed", st.sessions[sid], timestamp=int(time.time()) - 301)
    junk_body = b'{"hello": "world"}'
    from hub.connectors.payments import stripe as stripe_connector

    junk = Signed(
        junk_body, {"Stripe-Signature": stripe_connector.sign(junk_body, st.webhook_secret, int(time.time()))}
    )
    for signed, code in ((wrong, "bad_signature"), (stale, "stale_callback"), (junk, "malformed_callback")):
        answer = await world.callback(account, signed)
        assert answer.status_code == 400 and answer.json()["code"] == code
    await _unchanged(world, invoice)
    good = st.event("checkout.session.completed", st.sessions[sid])
    assert (await world.callback(account, good)).status_code == 200
    replay = await world.callback(account, good)
    assert replay.status_code == 409 and replay.json()["code"] == "replayed_callback"
    # Stripe's own retry of the event is signed afresh: a duplicate, answered 200, applied once.
    retry = Signed(
        good.body,
        {"Stripe-Signature": stripe_connector.sign(good.body, st.webhook_secret, int(time.time()) + 1)},
    )
    assert (await world.callback(account, retry)).status_code == 200
    assert (await world.get(f"/api/invoices/{invoice['id']}"))["status"] == "paid"
    # each refused request logged once (the replay too: it was logged twice before)
    assert sorted(await _rejections(world)) == sorted(
        ["bad_signature", "stale_callback", "malformed_callback", "replayed_callback"]
    )


async def test_standard_webhooks_bad_inputs(world: World, far: Any) -> None:
    """PAY-6: Standard Webhooks: wrong signature, stale, replay refused at the door; wrong
    currency, unknown invoice received (204) and refused by the payment rules when applied."""
    sw = FakeStandard()
    account = await world.connect("standard", sw.credentials)
    invoice = await _issued(world)
    data = {"invoice_ref": invoice["payment_ref"], "amount": "1500.00", "currency": "RUB"}
    good = sw.event("payment.succeeded", data)
    tampered = Signed(good.body.replace(b"1500.00", b"1.00"), good.headers)
    cases = [
        (tampered, 400, "bad_signature"),
        (sw.event("payment.succeeded", data, timestamp=int(time.time()) - 600), 400, "stale_callback"),
        (sw.event("payment.succeeded", {**data, "currency": "EUR"}), 204, "currency_mismatch"),
        (sw.event("payment.succeeded", {**data, "invoice_ref": "inv0-0"}), 204, "unknown_invoice"),
        (
            Signed(good.body, {k: v for k, v in good.headers.items() if k != "webhook-signature"}),
            400,
            "bad_signature",
        ),
    ]
    for signed, status, code in cases:
        answer = await world.callback(account, signed)
        assert answer.status_code == status, (code, answer.text)
        if status != 204:  # refused at the door; the others are received, then refused when applied
            assert answer.json()["code"] == code
    await _unchanged(world, invoice)
    assert sorted(await _rejections(world)) == sorted(code for _, _, code in cases)
    assert (await world.callback(account, good)).status_code == 204
    assert (await world.callback(account, good)).status_code == 409


async def test_yookassa_sender_network_and_confirmation(world: World, far: Any) -> None:
    """PAY-6: YooKassa signs nothing: a sender outside its networks is refused; a body claiming
    success is not believed until the API confirms it; an unknown object id changes nothing."""
    yk = FakeYooKassa()
    yk.install(far)
    account = await world.connect("yookassa", yk.credentials)
    invoice = await _issued(world)
    pid = invoice["provider_payment_id"]
    yk.pay(pid)
    outsider = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=world.app, client=("203.0.113.9", 4000)),
        base_url="http://testserver",
    )
    async with outsider:
        refused = await world.callback(
            account, yk.notification("payment.succeeded", yk.payments[pid]), client=outsider
        )
    assert refused.status_code == 403 and refused.json()["code"] == "sender_not_allowed"
    await _unchanged(world, invoice)
    ghost = await world.callback(
        account, yk.notification("payment.succeeded", {**yk.payments[pid], "id": "no-such"})
    )
    # Received; the worker asks YooKassa's API, which knows no such payment (404): not
    # confirmed, so refused and not applied.
    assert ghost.status_code == 200
    await _unchanged(world, invoice)
    assert "confirmation_failed" in await _rejections(world)
    assert (
        await world.callback(account, yk.notification("payment.succeeded", yk.payments[pid]))
    ).status_code == 200
    assert (await world.get(f"/api/invoices/{invoice['id']}"))["status"] == "paid"
    assert "sender_not_allowed" in await _rejections(world)


async def test_unknown_endpoint_and_provider(world: World) -> None:
    """PAY-6: an unknown key or provider is a 404 problem and touches nothing."""
    for path in (
        "/api/webhooks/payments/stripe/nope",
        "/api/webhooks/payments/paypal/nope",
        "/api/webhooks/payments/tbank/x/pay",
    ):
        answer = await world.client.post(path, content=b"{}")
        assert answer.status_code == 404 and answer.json()["code"] == "unknown_webhook"


async def test_callback_log_is_for_administrators_only(world: World) -> None:
    """PAY-6: the attempts list is an administrators' view."""
    denied = await world.client.get("/api/payments/callbacks", headers=world.tenant.dispatcher.headers)
    assert denied.status_code == 403
