"""PAY-6, issue 12: what an unauthenticated sender of payment callbacks learns from a refusal
(a code, nothing of the provider's or the hub's details), and that a Standard Webhooks event type
the hub does not handle is received and ignored, not refused for ever."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.payments.conftest import World
from tests.payments.providers import FakeStandard, FakeYooKassa, Signed


async def _issued(world: World) -> dict[str, Any]:
    item = await world.price("SVC", "1500.00")
    return await world.issued(await world.ticket(), [{"price_item_id": item["id"]}])


async def _log(world: World) -> list[dict[str, Any]]:
    return list((await world.get("/api/intake/events?source=payments", headers=world.tenant.admin.headers))["items"])


async def test_a_refused_sender_gets_a_code_and_the_details_stay_in_the_log(world: World, far: Any) -> None:
    """Issue 12 defect 3: a refusal answers the sender with a code only; what did not match (and
    any provider address or answer) is in the administrators' callback log."""
    sw, yk = FakeStandard(), FakeYooKassa()
    yk.install(far)
    standard = await world.connect("standard", sw.credentials)
    yookassa = await world.connect("yookassa", yk.credentials, allowed_networks=["185.71.76.0/27"])
    invoice = await _issued(world)
    good = sw.event("payment.succeeded", {"invoice_ref": invoice["payment_ref"], "amount": "1500.00"})
    tampered = Signed(good.body.replace(b"1500.00", b"1.00"), good.headers)
    stale = sw.event("payment.succeeded", {"amount": "1"}, timestamp=int(time.time()) - 600)
    answers = [
        await world.callback(standard, tampered),
        await world.callback(standard, stale),
        await world.callback(yookassa, yk.notification("payment.succeeded", {"id": "p"})),
    ]
    assert [(a.status_code, a.json()["code"]) for a in answers] == [
        (400, "bad_signature"),
        (400, "stale_callback"),
        (403, "sender_not_allowed"),
    ]
    assert all("detail" not in a.json() for a in answers)
    details = {}
    for entry in await _log(world):
        event = await world.get(f"/api/intake/events/{entry['id']}", headers=world.tenant.admin.headers)
        details[event["error_code"]] = event["error_detail"]
    assert details["bad_signature"] == "No v1 signature matches"
    assert "300 s" in details["stale_callback"]
    assert "is not a YooKassa network" in details["sender_not_allowed"]


async def test_an_unknown_standard_webhooks_type_is_received_and_ignored(world: World, far: Any) -> None:
    """Issue 12 defect 4: a signed event of a type the hub does not handle is answered 204 (so
    the gateway stops sending it) and recorded as ignored; nothing changes."""
    sw = FakeStandard()
    account = await world.connect("standard", sw.credentials)
    invoice = await _issued(world)
    data = {"invoice_ref": invoice["payment_ref"], "amount": "1500.00"}
    answer = await world.callback(account, sw.event("payment.disputed", data))
    assert answer.status_code == 204, answer.text
    malformed = await world.callback(account, sw.event("payment.succeeded", {"amount": "x"}))
    assert malformed.status_code == 400 and malformed.json()["code"] == "malformed_callback"
    log = await _log(world)
    assert [(e["state"], e["outcome"]) for e in reversed(log)] == [
        ("done", "ignored"),
        ("rejected", "rejected"),
    ]
    now = await world.get(f"/api/invoices/{invoice['id']}")
    assert (now["status"], now["paid_amount"]) == (invoice["status"], invoice["paid_amount"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=world.app), base_url="http://t") as http:
        metrics = (await http.get("/metrics")).text
    assert 'hub_intake_events_total{outcome="ignored",source="payments.standard"}' in metrics
