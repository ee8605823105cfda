"""PAY-7: who may ask, who decides, reasons, notifications, and never more back than was paid."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import pytest

from hub.payments import desk as pay_desk
from tests.conftest import PASSWORD
from tests.payments.conftest import World
from tests.payments.providers import FakeStandard, FakeYooKassa


@pytest.fixture
def notified(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[tuple[str, int]]]]:
    """Every notification payments hands to hub.notifications (still delivered the real way)."""
    seen: list[tuple[str, list[tuple[str, int]]]] = []
    real = pay_desk.notify

    async def record(
        session: Any, account_id: int, event: str, ticket: Any, recipients: Any, data: Any
    ) -> None:
        seen.append((event, list(recipients)))
        await real(session, account_id, event, ticket, recipients, data)

    monkeypatch.setattr(pay_desk, "notify", record)
    return seen


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


async def test_client_request_rules_and_staff_decisions(world: World, notified: list[Any]) -> None:
    """PAY-7: the client asks for refundable services only, with a reason; staff with the refund
    permission approve or reject with a reason; the client hears of every change."""
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
    staff = {(kind, rid) for event, who in notified if event == "refund_requested" for kind, rid in who}
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
    assert ("refund_changed", [("contact", world.contact_id)]) in notified
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


async def test_approval_race_and_provider_refusal(world: World, far: Any, notified: list[Any]) -> None:
    """PAY-7: two approvals at once queue one provider refund; a provider refusal ends in failed,
    releases the amount and tells the client."""
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
    changes = [who for event, who in notified if event == "refund_changed"]
    assert len(changes) == 2 and all(who == [("contact", world.contact_id)] for who in changes)
