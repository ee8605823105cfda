"""TEL-7: click-to-call through the PBX connector and the outbox, against a respx-faked PBX."""

from __future__ import annotations

import base64
from datetime import timedelta

import httpx
import respx
from litestar import Litestar

from hub.db import utcnow
from hub.outbox.worker import deliver_due, drain_outbox
from tests.conftest import Tenant
from tests.telephony.conftest import Clients, Pbx, calls

ORIGINATE = "https://pbx.example/api/originate"


async def _configure(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await client.put(
        "/api/telephony/settings",
        json={
            "originate_url": ORIGINATE,
            "originate_auth": "basic",
            "originate_username": "hub",
            "originate_secret": "s3cret",
        },
        headers=tenant.admin.headers,
    )
    assert r.status_code == 200, r.text


async def test_click_to_call_rings_extension_then_dials_client(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, clients: Clients
) -> None:
    """TEL-7: the employee asks for a call to an (edited) number of a contact; the hub records the
    outgoing call and sends the PBX an authenticated originate request for the employee's
    extension; the PBX's own events for that call id complete the same record."""
    await _configure(client, tenant)
    r = await client.post(
        "/api/telephony/originate",
        json={"number": "+7 912 345 67 89", "contact_id": clients.contact_id},
        headers=tenant.dispatcher.headers,
    )
    assert r.status_code == 202, r.text
    call = r.json()
    assert (
        call["direction"] == "out" and call["status"] == "requested" and call["originate_state"] == "pending"
    )
    assert call["client"]["id"] == clients.contact_id and call["employee_id"] == tenant.dispatcher.id
    with respx.mock(assert_all_called=True) as far:
        route = far.post(ORIGINATE).mock(return_value=httpx.Response(200, json={"ok": True}))
        await drain_outbox(app.state.jobs)
    sent = route.calls.last.request
    assert sent.headers["authorization"] == "Basic " + base64.b64encode(b"hub:s3cret").decode()
    assert sent.headers["idempotency-key"] == call["external_id"]
    import json

    assert json.loads(sent.content) == {
        "extension": "101",
        "number": "+7 912 345 67 89",
        "call_id": call["external_id"],
    }
    [listed] = await calls(client, tenant)
    assert listed["originate_state"] == "sent"
    # The PBX reports the call under the same id: one record, now answered and ended.
    assert (
        await pbx.hub(
            event="outgoing", call_id=call["external_id"], extension="101", to_number="+79123456789"
        )
    ).status_code == 200
    await pbx.hub(event="answered", call_id=call["external_id"], extension="101")
    await pbx.hub(event="hangup", call_id=call["external_id"], cause="normalClearing", duration=61)
    [listed] = await calls(client, tenant)
    assert (listed["id"], listed["status"], listed["answered"], listed["duration_seconds"]) == (
        call["id"],
        "ended",
        True,
        61,
    )


async def test_click_to_call_survives_a_failing_pbx(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant, clients: Clients
) -> None:
    """TEL-7: the PBX times out, then answers 503; the request is retried with backoff (through the
    outbox) and goes through once the PBX recovers — exactly one originate is accepted."""
    await _configure(client, tenant)
    r = await client.post(
        "/api/telephony/originate", json={"number": "84951234567"}, headers=tenant.dispatcher.headers
    )
    assert r.status_code == 202
    assert r.json()["client"]["id"] == clients.company_id  # matched by number when no card is given
    with respx.mock() as far:
        route = far.post(ORIGINATE).mock(
            side_effect=[httpx.ConnectTimeout("pbx down"), httpx.Response(503), httpx.Response(200, json={})]
        )
        now = utcnow()
        await deliver_due(app.state.jobs)
        assert route.call_count == 1
        assert (await calls(client, tenant))[0]["originate_state"] == "pending"
        await deliver_due(app.state.jobs, now=now + timedelta(seconds=30))
        assert route.call_count == 2
        assert (await calls(client, tenant))[0]["originate_state"] == "pending"
        await drain_outbox(app.state.jobs, now=now + timedelta(seconds=60))
    assert route.call_count == 3
    assert (await calls(client, tenant))[0]["originate_state"] == "sent"


async def test_click_to_call_refused_by_pbx_fails_visibly(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """TEL-7, TEL-6: a PBX that refuses (401: wrong credentials) is not retried; the call shows
    failed, and it is no missed call (nobody called the team)."""
    await _configure(client, tenant)
    await client.post(
        "/api/telephony/originate", json={"number": "84951234567"}, headers=tenant.dispatcher.headers
    )
    with respx.mock() as far:
        route = far.post(ORIGINATE).mock(return_value=httpx.Response(401))
        await drain_outbox(app.state.jobs)
        await drain_outbox(app.state.jobs, now=utcnow() + timedelta(hours=1))
    assert route.call_count == 1
    [call] = await calls(client, tenant)
    assert (call["originate_state"], call["status"], call["missed"]) == ("failed", "ended", False)
    assert await calls(client, tenant, missed="true") == []
    assert [c["id"] for c in await calls(client, tenant, missed="false")] == [call["id"]]
    dead = await client.get("/api/outbox", params={"status": "dead"}, headers=tenant.admin.headers)
    assert [m["topic"] for m in dead.json()["items"]] == ["telephony.originate"]


async def test_click_to_call_needs_setup_extension_and_digits(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """TEL-7: clear refusals: no originate endpoint, no extension on the employee card, no digits,
    a foreign contact."""
    r = await client.post(
        "/api/telephony/originate", json={"number": "84951234567"}, headers=tenant.dispatcher.headers
    )
    assert (r.status_code, r.json()["code"]) == (409, "originate_not_configured")
    await _configure(client, tenant)
    r = await client.post(
        "/api/telephony/originate", json={"number": "call me"}, headers=tenant.dispatcher.headers
    )
    assert (r.status_code, r.json()["code"]) == (400, "invalid_number")
    r = await client.post(
        "/api/telephony/originate",
        json={"number": "8495", "contact_id": 999999},
        headers=tenant.dispatcher.headers,
    )
    assert (r.status_code, r.json()["code"]) == (404, "contact_not_found")
    r = await client.patch(
        f"/api/employees/{tenant.dispatcher.id}", json={"extension": None}, headers=tenant.admin.headers
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        "/api/telephony/originate", json={"number": "84951234567"}, headers=tenant.dispatcher.headers
    )
    assert (r.status_code, r.json()["code"]) == (409, "extension_required")
