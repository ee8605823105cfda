"""PAY-7: who may ask, who decides, reasons, notifications, and never more back than was paid."""

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
from tests.conftest import PASSWORD
from tests.payments.conftest import NOTIFY_HOOK, World
from tests.payments.providers import FakeStandard, FakeTBank, FakeYooKassa


async def _paid(world: World, *, refundable: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    sw = FakeStandard()
    account = await world.connect("standard", sw.credentials)
    keys = await world.price("KEY", "1000.00", refundable=refundable)
    visit = await world.price("VISIT", "500.00", refundable=False)
    ticket_id = await world.ticket()
    invoice = await world.issued(ticket_id, [{"price_item_id": keys["id"]}, {"price_item_id": visit["id"]}])
    answer = await world.callback(
        account,
        sw.event(
            "payment.succeeded",
            {
                "invoice_ref": invoice["payment_ref"],
                "amount": "1500.00",
                "currency": "RUB",
            },
        ),
    )
    assert answer.status_code == 204
    return account, await world.get(f"/api/invoices/{invoice['id']}")


async def test_client_request_rules_and_staff_decisions(world: World) -> None:
    """PAY-7: the client asks for refundable services only, with a reason; staff with the refund
    permission approve or reject with a reason; the client hears of every change (real
    ``notify.*`` outbox rows)."""
    await world.watch_notifications()
    _, invoice = await _paid(world)
    path = f"/api/invoices/{invoice['id']}/refunds"
    keys_line, visit_line = (line["id"] for line in invoice["lines"])
    no_reason = await world.client.post(path, json={"reason": "", "full": True}, headers=world.app_headers)
    assert no_reason.status_code == 400
    blank = await world.client.post(path, json={"reason": "   ", "full": True}, headers=world.app_headers)
    assert blank.status_code == 400 and blank.json()["code"] == "refund_reason_required"
    not_allowed = await world.client.post(
        path, json={"reason": "x", "lines": [{"line_id": visit_line}]}, headers=world.app_headers
    )
    assert not_allowed.status_code == 403 and not_allowed.json()["code"] == "line_not_refundable"
    engineer = await world.client.post(
        path, json={"reason": "x", "full": True}, headers=world.tenant.engineer.headers
    )
    assert engineer.status_code == 403

    requested = await world.act(
        path, {"reason": "Keys do not fit", "full": True}, headers=world.app_headers, expect=201
    )
    assert requested["status"] == "requested" and Decimal(requested["amount"]) == Decimal(
        "1000"
    )  # refundable part only
    assert requested["requested_by_kind"] == "contact"
    staff = {
        (kind, rid)
        for event, who, _ in await world.notified()
        if event == "refund_requested"
        for kind, rid in who
    }
    assert ("employee", world.tenant.admin.id) in staff and ("employee", world.tenant.dispatcher.id) in staff
    assert ("employee", world.tenant.engineer.id) not in staff
    assert (await world.flags(invoice["ticket_id"]) or {})["refund"] == "requested"

    refused = await world.client.post(
        f"/api/refunds/{requested['id']}/approve", headers=world.tenant.engineer.headers
    )
    assert refused.status_code == 403
    no_reason = await world.client.post(
        f"/api/refunds/{requested['id']}/reject", json={}, headers=world.staff
    )
    assert no_reason.status_code == 400 and no_reason.json()["code"] == "refund_reason_required"
    rejected = await world.act(
        f"/api/refunds/{requested['id']}/reject", {"reason": "Keys were cut as ordered"}
    )
    assert rejected["status"] == "rejected" and rejected["decision_reason"] == "Keys were cut as ordered"
    assert ("refund_changed", [("contact", world.contact_id)], "rejected") in await world.notified()
    again = await world.act(f"/api/refunds/{requested['id']}/approve", expect=409)
    assert again["code"] == "refund_transition_not_allowed"

    # The reserve was released: the client may ask again, and staff may refund the rest.
    second = await world.act(
        path,
        {"reason": "Second try", "lines": [{"line_id": keys_line, "amount": "250"}]},
        headers=world.app_headers,
        expect=201,
    )
    assert Decimal(second["amount"]) == Decimal("250")
    staff_full = await world.act(path, {"reason": "Goodwill", "full": True}, expect=201)
    assert Decimal(staff_full["amount"]) == Decimal("1250")  # 750 of the keys + the 500 visit
    # PAY-7: a refund started by staff is news to the client too
    assert ("refund_changed", [("contact", world.contact_id)], "requested") in await world.notified()
    over = await world.client.post(path, json={"reason": "more", "full": True}, headers=world.staff)
    assert over.status_code == 409 and over.json()["code"] == "nothing_to_refund"
    kinds = await world.history_kinds(invoice["ticket_id"])
    assert {"refund_requested", "refund_rejected"} <= set(kinds)


async def test_other_clients_cannot_touch_an_invoice(world: World) -> None:
    """PAY-7: another app user of the account neither sees nor refunds someone else's invoice."""
    _, invoice = await _paid(world)
    other = await world.client.post(
        "/api/contacts", json={"name": "Neighbour"}, headers=world.tenant.admin.headers
    )
    await world.client.post(
        f"/api/contacts/{other.json()['id']}/app-user",
        json={"login": "neighbour", "password": PASSWORD},
        headers=world.tenant.admin.headers,
    )
    tokens = await world.client.post(
        "/api/auth/login",
        json={"account": world.tenant.slug, "login": "neighbour", "password": PASSWORD, "kind": "app_user"},
    )
    headers = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
    assert (await world.client.get(f"/api/invoices/{invoice['id']}", headers=headers)).status_code == 404
    asked = await world.client.post(
        f"/api/invoices/{invoice['id']}/refunds", json={"reason": "x", "full": True}, headers=headers
    )
    assert asked.status_code == 404


async def test_concurrent_requests_never_exceed_paid(world: World) -> None:
    """PAY-7: ten staff refund requests racing for 40% each: at most the paid amount is reserved."""
    _, invoice = await _paid(world)
    path = f"/api/invoices/{invoice['id']}/refunds"
    line = invoice["lines"][0]["id"]
    answers = await asyncio.gather(
        *(
            world.client.post(
                path,
                json={"reason": f"race {i}", "lines": [{"line_id": line, "amount": "400"}]},
                headers=world.staff,
            )
            for i in range(10)
        )
    )
    created = [a for a in answers if a.status_code == 201]
    assert len(created) == 2, [a.status_code for a in answers]
    assert all(a.json()["code"] == "refund_exceeds_paid" for a in answers if a.status_code != 201)
    after = await world.get(f"/api/invoices/{invoice['id']}")
    assert Decimal(after["refundable_amount"]) == Decimal("700")


async def test_approval_race_and_provider_refusal(world: World, far: Any) -> None:
    """PAY-7: two approvals at once queue one provider refund; a provider refusal ends in failed,
    releases the amount and tells the client."""
    await world.watch_notifications()
    far.post(NOTIFY_HOOK).respond(204)
    yk = FakeYooKassa()
    yk.install(far)
    account = await world.connect("yookassa", yk.credentials)
    item = await world.price("KEY", "1000")
    ticket_id = await world.ticket()
    invoice = await world.issued(ticket_id, [{"price_item_id": item["id"]}])
    yk.pay(invoice["provider_payment_id"])
    await world.callback(
        account, yk.notification("payment.succeeded", yk.payments[invoice["provider_payment_id"]])
    )
    refund = await world.act(
        f"/api/invoices/{invoice['id']}/refunds", {"reason": "Not needed", "full": True}, expect=201
    )
    answers = await asyncio.gather(
        *(world.client.post(f"/api/refunds/{refund['id']}/approve", headers=world.staff) for _ in range(3))
    )
    assert sorted(a.status_code for a in answers) == [200, 409, 409]
    far.post("https://api.yookassa.ru/v3/refunds").mock(
        return_value=httpx.Response(
            400,
            json={"type": "error", "code": "invalid_request", "description": "Refund amount exceeds payment"},
        )
    )
    await world.drain()
    failed = await world.get(f"/api/refunds/{refund['id']}")
    assert failed["status"] == "failed" and "400" in failed["failure"]
    assert Decimal((await world.get(f"/api/invoices/{invoice['id']}"))["refundable_amount"]) == Decimal(
        "1000"
    )
    # started by staff, approved, failed: the client is told of each
    changes = [(who, status) for event, who, status in await world.notified() if event == "refund_changed"]
    client = [("contact", world.contact_id)]
    assert changes == [(client, "requested"), (client, "approved"), (client, "failed")]


async def _paid_at(world: World, provider: str, fake: Any, account: dict[str, Any]) -> dict[str, Any]:
    """An invoice of 1500.00 on one refundable line, paid at the provider and told by callback."""
    item = await world.price(f"SVC-{provider}", "1500.00")
    invoice = await world.issued(await world.ticket(), [{"price_item_id": item["id"]}])
    pid = invoice["provider_payment_id"]
    if provider == "yookassa":
        fake.pay(pid)
        paid = await world.callback(account, fake.notification("payment.succeeded", fake.payments[pid]))
    else:
        paid = await world.callback(account, fake.notification(pid, "CONFIRMED"))
    assert paid.status_code == 200, paid.text
    return dict(await world.get(f"/api/invoices/{invoice['id']}"))


async def _outbox_attempts(world: World, topic: str, attempts: int) -> None:
    """Let the outbox give up on ``topic`` after ``attempts`` (a per-message bound it supports)."""
    async with world.db.sessionmaker() as session, session.begin():
        await session.execute(
            update(OutboxMessage).where(OutboxMessage.topic == topic).values(max_attempts=attempts)
        )


async def test_lost_refund_answer_stays_reserved_until_reconciled(world: World, far: Any) -> None:
    """PAY-7, PAY-9: YooKassa makes the refund but its answer never arrives (503s until the outbox
    gives up). The refund must not fail and free its amount (the money may be gone): it stays
    approved and reserved, nothing more can be asked back, and reconciliation finds it by OUR
    reference (no provider id known) and finishes it."""
    yk = FakeYooKassa()
    yk.install(far)
    account = await world.connect("yookassa", yk.credentials)
    invoice = await _paid_at(world, "yookassa", yk, account)

    def made_but_lost(request: httpx.Request) -> httpx.Response:
        yk._refund(request)  # the provider does refund ...
        return httpx.Response(503, json={"type": "error", "code": "internal_server_error"})  # ... and fails

    far.post("https://api.yookassa.ru/v3/refunds").mock(side_effect=made_but_lost)
    refund = await world.act(
        f"/api/invoices/{invoice['id']}/refunds", {"reason": "Visit cancelled", "full": True}, expect=201
    )
    await world.act(f"/api/refunds/{refund['id']}/approve")
    await _outbox_attempts(world, "payments.refund", 1)
    await world.drain()
    (rid,) = yk.refunds
    pending = await world.get(f"/api/refunds/{refund['id']}")
    assert (pending["status"], pending["provider_status"], pending["provider_refund_id"]) == (
        "approved",
        "unknown",
        None,
    )
    assert (await world.get(f"/api/invoices/{invoice['id']}"))["refundable_amount"] == "0.00"
    again = await world.client.post(
        f"/api/invoices/{invoice['id']}/refunds", json={"reason": "again", "full": True}, headers=world.staff
    )
    assert again.status_code == 409 and again.json()["code"] == "nothing_to_refund"

    assert await reconcile(world.app.state.jobs, now=utcnow() + timedelta(seconds=60)) == 1
    done = await world.get(f"/api/refunds/{refund['id']}")
    assert (done["status"], done["provider_refund_id"]) == ("refunded", rid)
    after = await world.get(f"/api/invoices/{invoice['id']}")
    assert (after["refunded_amount"], after["refundable_amount"]) == ("1500.00", "0.00")


async def test_gateway_success_after_failure_wins(world: World) -> None:
    """PAY-7, PAY-6: a Standard Webhooks gateway has no refund API: approving asks nothing of it
    and logs no false rejection; its refund.failed frees the amount, and a later refund.succeeded
    for the same refund (the money did go back) moves it failed -> refunded and counts it."""
    account, invoice = await _paid(world)
    sw = FakeStandard()
    refund = await world.act(
        f"/api/invoices/{invoice['id']}/refunds", {"reason": "Key not needed", "full": True}, expect=201
    )
    await world.act(f"/api/refunds/{refund['id']}/approve")
    await world.drain()
    log = (await world.get("/api/payments/callbacks", headers=world.tenant.admin.headers))["items"]
    assert [e for e in log if e["outcome"] == "rejected"] == []
    data = {"invoice_ref": invoice["payment_ref"], "refund_ref": f"ref{refund['id']}", "currency": "RUB"}
    failed = await world.callback(account, sw.event("refund.failed", {**data, "amount": "1500.00"}))
    assert failed.status_code == 204
    assert (await world.get(f"/api/refunds/{refund['id']}"))["status"] == "failed"
    assert (await world.get(f"/api/invoices/{invoice['id']}"))["refundable_amount"] == "1500.00"
    succeeded = await world.callback(account, sw.event("refund.succeeded", {**data, "amount": "1500.00"}))
    assert succeeded.status_code == 204
    assert (await world.get(f"/api/refunds/{refund['id']}"))["status"] == "refunded"
    after = await world.get(f"/api/invoices/{invoice['id']}")
    assert (after["refunded_amount"], after["refundable_amount"]) == ("1500.00", "0.00")


async def test_tbank_two_equal_partial_refunds(world: World, far: Any) -> None:
    """PAY-7: two partial refunds of the same amount on one T-Bank payment are two refunds (each
    named by our ExternalRequestId), both refunded and counted; T-Bank's own notifications of them
    and reconciliation change nothing more."""
    tb = FakeTBank()
    tb.install(far)
    account = await world.connect("tbank", tb.credentials)
    invoice = await _paid_at(world, "tbank", tb, account)
    line = invoice["lines"][0]["id"]
    refunds = []
    for reason in ("First key returned", "Second key returned"):
        refund = await world.act(
            f"/api/invoices/{invoice['id']}/refunds",
            {"reason": reason, "lines": [{"line_id": line, "amount": "500.00"}]},
            expect=201,
        )
        await world.act(f"/api/refunds/{refund['id']}/approve")
        refunds.append(refund["id"])
    await world.drain()
    pid = invoice["provider_payment_id"]
    assert tb.payments[pid]["Remaining"] == 50000  # T-Bank refunded twice
    rows = [await world.get(f"/api/refunds/{rid}") for rid in refunds]
    assert [r["status"] for r in rows] == ["refunded", "refunded"]
    assert {r["provider_refund_id"] for r in rows} == {f"{pid}:ref{rid}" for rid in refunds}
    for _ in refunds:
        told = await world.callback(account, tb.notification(pid, "PARTIAL_REFUNDED", amount=50000))
        assert told.status_code == 200 and told.text == "OK"
    assert await reconcile(world.app.state.jobs, now=utcnow() + timedelta(hours=2)) == 0
    after = await world.get(f"/api/invoices/{invoice['id']}")
    assert (after["refunded_amount"], after["refundable_amount"]) == ("1000.00", "500.00")
    listed = (await world.get(f"/api/invoices/{invoice['id']}/refunds"))["items"]
    assert len(listed) == 2


async def test_refund_the_provider_never_received_fails_after_reconciliation(world: World, far: Any) -> None:
    """PAY-7, PAY-9: YooKassa was unreachable for every attempt and, asked by our reference, has
    no such refund: only then does the refund fail and free its amount (the client is told)."""
    await world.watch_notifications()
    far.post(NOTIFY_HOOK).respond(204)
    yk = FakeYooKassa()
    yk.install(far)
    account = await world.connect("yookassa", yk.credentials)
    invoice = await _paid_at(world, "yookassa", yk, account)
    far.post("https://api.yookassa.ru/v3/refunds").respond(503)
    refund = await world.act(
        f"/api/invoices/{invoice['id']}/refunds", {"reason": "Visit cancelled", "full": True}, expect=201
    )
    await world.act(f"/api/refunds/{refund['id']}/approve")
    await _outbox_attempts(world, "payments.refund", 1)
    await world.drain()
    assert (await world.get(f"/api/refunds/{refund['id']}"))["status"] == "approved"
    assert await reconcile(world.app.state.jobs, now=utcnow() + timedelta(seconds=60)) == 1
    failed = await world.get(f"/api/refunds/{refund['id']}")
    assert (failed["status"], failed["failure"]) == ("failed", "The provider never received the refund")
    assert (await world.get(f"/api/invoices/{invoice['id']}"))["refundable_amount"] == "1500.00"
    statuses = [status for event, _, status in await world.notified() if event == "refund_changed"]
    assert statuses[-1] == "failed"
