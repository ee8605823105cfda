"""TEL-5 / TEL-6 / TEL-8 with the desk: tickets bound to calls (automatically and by hand), the
bindings in the ticket's history, calls in the client's activity feed, open tickets in pop-ups."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import func, select

from hub.db import Database
from hub.desk.actors import Actor
from hub.errors import Conflict
from hub.telephony.models import CallTicket
from hub.telephony.service import bind_ticket
from tests.conftest import PG_URL, Tenant
from tests.telephony.conftest import Clients, Pbx, call_of, calls
from tests.telephony.server import SseReader, serve


async def _ticket(client: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body = {"title": "Gate does not open", "description": "Called in", "source": "incoming_call", **fields}
    r = await client.post("/api/tickets", json=body, headers=tenant.dispatcher.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _history_kinds(client: httpx.AsyncClient, tenant: Tenant, ticket_id: int) -> list[str]:
    r = await client.get(f"/api/tickets/{ticket_id}/history", headers=tenant.dispatcher.headers)
    assert r.status_code == 200, r.text
    return [entry["kind"] for entry in r.json()["items"]]


async def test_ticket_created_during_call_is_bound(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, clients: Clients
) -> None:
    """TEL-5, DESK-7: a ticket created with the call's id (the pop-up's New ticket) is bound to
    the call by itself; the call lists the ticket, the ticket lists the call, history says so."""
    await pbx.hub(event="ringing", call_id="b-1", from_number="+79123456789", extensions=["101"])
    call_id = (await call_of(client, tenant, "b-1"))["id"]
    ticket = await _ticket(client, tenant, contact_id=clients.contact_id, call_id=call_id)
    call = (await client.get(f"/api/telephony/calls/{call_id}", headers=tenant.dispatcher.headers)).json()
    assert [(t["id"], t["number"], t["automatic"]) for t in call["tickets"]] == [
        (ticket["id"], ticket["number"], True)
    ]
    listed = (
        await client.get(f"/api/telephony/tickets/{ticket['id']}/calls", headers=tenant.dispatcher.headers)
    ).json()["items"]
    assert [c["id"] for c in listed] == [call_id]
    assert "call_bound" in await _history_kinds(client, tenant, ticket["id"])
    assert [c["id"] for c in await calls(client, tenant, ticket_id=ticket["id"])] == [call_id]


async def test_bind_and_unbind_from_the_call_list(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx
) -> None:
    """TEL-5, DESK-7: any call can be bound to a ticket and unbound; both are in the history;
    binding twice is a conflict, unbinding what is not bound a 404; a call may have several tickets."""
    first = await _ticket(client, tenant)
    second = await _ticket(client, tenant, title="Second")
    await pbx.hub(event="hangup", call_id="b-2", from_number="+79990001122", cause="noAnswer")
    [call] = await calls(client, tenant)
    h = tenant.dispatcher.headers
    for ticket in (first, second):
        r = await client.post(
            f"/api/telephony/calls/{call['id']}/tickets", json={"ticket_id": ticket["id"]}, headers=h
        )
        assert (r.status_code, r.json()["automatic"]) == (201, False)
    r = await client.post(
        f"/api/telephony/calls/{call['id']}/tickets", json={"ticket_id": first["id"]}, headers=h
    )
    assert (r.status_code, r.json()["code"]) == (409, "call_already_bound")
    assert {t["id"] for t in (await calls(client, tenant))[0]["tickets"]} == {first["id"], second["id"]}
    r = await client.delete(f"/api/telephony/calls/{call['id']}/tickets/{first['id']}", headers=h)
    assert r.status_code == 204
    r = await client.delete(f"/api/telephony/calls/{call['id']}/tickets/{first['id']}", headers=h)
    assert (r.status_code, r.json()["code"]) == (404, "binding_not_found")
    assert [t["id"] for t in (await calls(client, tenant))[0]["tickets"]] == [second["id"]]
    kinds = await _history_kinds(client, tenant, first["id"])
    assert kinds.index("call_bound") < kinds.index("call_unbound")
    r = await client.post(f"/api/telephony/calls/{call['id']}/tickets", json={"ticket_id": 10**9}, headers=h)
    assert (r.status_code, r.json()["code"]) == (404, "ticket_not_found")


async def test_other_accounts_calls_and_tickets_stay_apart(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, pbx: Pbx
) -> None:
    """TEL-5, DESK-1: a call cannot be bound to another account's ticket, nor a ticket created
    with another account's call id."""
    theirs = await _ticket(client, other_tenant)
    await pbx.hub(event="ringing", call_id="b-3", from_number="+79990001122", extensions=["101"])
    call_id = (await call_of(client, tenant, "b-3"))["id"]
    r = await client.post(
        f"/api/telephony/calls/{call_id}/tickets",
        json={"ticket_id": theirs["id"]},
        headers=tenant.dispatcher.headers,
    )
    assert (r.status_code, r.json()["code"]) == (404, "ticket_not_found")
    r = await client.post(
        "/api/tickets",
        json={"title": "x", "source": "incoming_call", "call_id": call_id},
        headers=other_tenant.dispatcher.headers,
    )
    assert (r.status_code, r.json()["code"]) == (404, "call_not_found")


async def test_ended_calls_in_client_activity(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, clients: Clients
) -> None:
    """TEL-8, DESK-8: an ended call appears in the activity feed of every contact it matched, with
    its duration; a call that matched only a company's switchboard adds to no contact's feed."""
    await pbx.hub(event="ringing", call_id="a-1", from_number="+74951234567", extensions=["101"])
    await pbx.hub(event="hangup", call_id="a-1", cause="noAnswer")
    await pbx.hub(event="ringing", call_id="a-2", from_number="8 912 345 67 89", extensions=["101"])
    await pbx.hub(event="answered", call_id="a-2", extension="101")
    await pbx.hub(event="hangup", call_id="a-2", cause="normalClearing", duration=125)
    r = await client.get(f"/api/contacts/{clients.contact_id}/activity", headers=tenant.dispatcher.headers)
    assert r.status_code == 200, r.text
    calls_in_feed = [e for e in r.json()["items"] if e["kind"] == "call"]
    assert [e["summary"] for e in calls_in_feed] == ["Incoming call, 2:05"]
    call = (await calls(client, tenant, contact_id=clients.contact_id))[0]
    assert calls_in_feed[0]["ref_id"] == call["id"]
    r = await client.get(
        f"/api/contacts/{clients.other_contact_id}/activity", headers=tenant.dispatcher.headers
    )
    assert [e["ref_id"] for e in r.json()["items"] if e["kind"] == "call"] == [call["id"]]


async def test_popup_lists_the_callers_open_tickets(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, clients: Clients
) -> None:
    """TEL-4: the pop-up carries the matched client's open tickets and recent ones."""
    ticket = await _ticket(client, tenant, contact_id=clients.contact_id, company_id=clients.company_id)
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        async with http.stream("GET", "/api/telephony/stream", headers=tenant.dispatcher.headers) as response:
            reader = SseReader(response)
            await reader.connected()
            await pbx.hub(event="ringing", call_id="t-1", from_number="+7 495 123-45-67", extensions=["101"])
            popup = await reader.next_of("call.ringing")
    assert [t["id"] for t in popup.data["tickets"]["open"]] == [ticket["id"]]
    assert popup.data["tickets"]["open"][0]["number"] == ticket["number"]
    assert [t["id"] for t in popup.data["tickets"]["recent"]] == [ticket["id"]]


async def test_bind_by_the_number_on_the_ticket(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, pbx: Pbx
) -> None:
    """TEL-5: from the call list a call is bound by the ticket number people see (#12), the
    account's own ticket of that number; naming no ticket or both ways is a clear 400."""
    await _ticket(client, other_tenant)  # the other account's ticket carries the same number
    ours = await _ticket(client, tenant)
    await _ticket(client, tenant, title="Another")  # ids and numbers no longer line up by chance
    await pbx.hub(event="hangup", call_id="n-1", from_number="+79990001122", cause="noAnswer")
    [call] = await calls(client, tenant)
    url, h = f"/api/telephony/calls/{call['id']}/tickets", tenant.dispatcher.headers
    r = await client.post(url, json={"ticket_number": ours["number"]}, headers=h)
    assert (r.status_code, r.json()["id"]) == (201, ours["id"])
    assert [t["number"] for t in (await calls(client, tenant))[0]["tickets"]] == [ours["number"]]
    r = await client.post(url, json={"ticket_number": 999_999}, headers=h)
    assert (r.status_code, r.json()["code"]) == (404, "ticket_not_found")
    for body in ({}, {"ticket_id": ours["id"], "ticket_number": ours["number"]}):
        r = await client.post(url, json=body, headers=h)
        assert (r.status_code, r.json()["code"]) == (400, "ticket_required"), body


@pytest.mark.skipif(not PG_URL, reason="two writers at once need PostgreSQL (SQLite has one writer)")
async def test_two_people_binding_the_same_ticket_at_once(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, db: Database
) -> None:
    """TEL-5: when two dispatchers bind the same call and ticket at the same moment, one binding
    is made and the other gets 409 call_already_bound (not a generic conflict), its transaction
    still usable."""
    ticket = await _ticket(client, tenant)
    await pbx.hub(event="hangup", call_id="race-1", cause="noAnswer")
    call_id = (await call_of(client, tenant, "race-1"))["id"]
    actor = Actor("employee", tenant.dispatcher.id, tenant.dispatcher.name)
    async with db.sessionmaker() as first, db.sessionmaker() as second:
        await first.begin()
        await bind_ticket(first, tenant.id, call_id, ticket["id"], actor)  # inserted, not committed
        await second.begin()
        losing = asyncio.create_task(bind_ticket(second, tenant.id, call_id, ticket["id"], actor))
        await asyncio.sleep(0.5)  # the second insert now waits on the first one's unique key
        assert not losing.done()
        await first.commit()
        with pytest.raises(Conflict) as refused:
            await losing
        assert refused.value.code == "call_already_bound"
        assert await second.scalar(select(func.count()).select_from(CallTicket)) == 1
        await second.rollback()
