"""TEL-2 / TEL-3 / TEL-4 / TEL-6: the generic CTI dialect in detail, and who gets a pop-up."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from hub.db import Database
from hub.telephony.models import Call, CallEventLog
from tests.conftest import Tenant
from tests.telephony.conftest import Clients, Pbx, calls, popups


async def _count(db: Database, model: type) -> int:
    async with db.sessionmaker() as session, session.begin():
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize(
    ("cause", "answer_first", "answered"),
    [
        ("normalClearing", True, True),
        ("normalClearing", False, False),
        ("busy", False, False),
        ("cancel", False, False),
        ("noAnswer", False, False),
        ("congestion", False, False),
        ("notFound", False, False),
        ("forwarded", False, False),
    ],
)
async def test_every_cti_hangup_cause(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, cause: str, answer_first: bool, answered: bool
) -> None:
    """TEL-2, TEL-6: each generic-CTI hangup cause leaves the call answered or missed as it should;
    an answer arriving after a hangup that said nobody picked up does not turn it into an answered
    call."""
    base = [("from", "+79990001122"), ("to", "4950000000"), ("direction", "in"), ("callId", f"k-{cause}")]
    assert (await pbx.cti_form([("event", "newCall"), *base, ("user[]", "101")])).status_code == 200
    if answer_first:
        assert (
            await pbx.cti_form([("event", "answer"), *base, ("answeringNumber", "101")])
        ).status_code == 200
    r = await pbx.cti_form([("event", "hangup"), *base, ("cause", cause)])
    assert (r.status_code, r.json()) == (200, {})
    if cause in ("busy", "cancel", "noAnswer", "congestion", "notFound"):
        late = await pbx.cti_form([("event", "answer"), *base, ("answeringNumber", "101")])
        assert late.status_code == 200
    [call] = await calls(client, tenant)
    assert (call["status"], call["cause"]) == ("ended", cause)
    assert (call["answered"], call["missed"]) == (answered, not answered)
    assert [c["id"] for c in await calls(client, tenant, missed=str(not answered).lower())] == [call["id"]]


async def test_cti_call_id_alias_header_token_and_duplicates(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, db: Database
) -> None:
    """TEL-1, TEL-2: ``call_id`` works like ``callId``; the token may travel in ``X-PBX-Token``
    on the CTI URL; a repeated CTI event is taken once."""
    form = {"event": "newCall", "from": "+79990001122", "to": "100", "direction": "in", "call_id": "al-1"}
    r = await pbx.post("/api/telephony/cti", data=form, headers={"X-PBX-Token": pbx.token})
    assert (r.status_code, r.json()) == (200, {})
    r = await client.post("/api/telephony/cti", data=form, headers={"X-PBX-Token": "pbx_wrong"})
    assert (r.status_code, r.json()["code"]) == (401, "invalid_pbx_token")
    again = await pbx.cti_json(form)  # the same event again (a ringing naming another extension is a
    # hunt group's next ring: see test_hunt_group_pops_up_on_each_extension_it_rings)
    assert (again.status_code, again.json()) == (200, {})
    [call] = await calls(client, tenant)
    assert call["external_id"] == "al-1" and call["status"] == "ringing"
    assert await _count(db, Call) == 1 and await _count(db, CallEventLog) == 1


async def test_switched_off_account_takes_no_events(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, db: Database
) -> None:
    """TEL-1: an account that switched telephony off refuses PBX events (both dialects) and
    records nothing."""
    r = await client.put("/api/telephony/settings", json={"enabled": False}, headers=tenant.admin.headers)
    assert r.status_code == 200
    r = await pbx.cti_form([("event", "newCall"), ("callId", "off-1"), ("direction", "in")])
    assert (r.status_code, r.json()["code"]) == (401, "telephony_disabled")
    r = await pbx.hub(event="ringing", call_id="off-1")
    assert (r.status_code, r.json()["code"]) == (401, "telephony_disabled")
    assert await _count(db, Call) == 0


async def test_outgoing_cti_call_without_user_is_the_calling_extensions(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, clients: Clients
) -> None:
    """TEL-2, TEL-6: an outgoing CTI newCall without ``user[]`` belongs to the employee whose
    extension is in ``from``; it shows in that employee's call list and is not missed."""
    out = {"from": "102", "to": "+7 495 123 45 67", "direction": "out", "callId": "ou-1"}
    assert (await pbx.cti_json({**out, "event": "newCall"})).json() == {}
    assert (await pbx.cti_json({**out, "event": "hangup", "cause": "noAnswer"})).json() == {}
    [call] = await calls(client, tenant, employee_id=tenant.engineer.id)
    assert call["external_id"] == "ou-1" and call["employee_id"] == tenant.engineer.id
    assert call["client"]["id"] == clients.company_id and call["missed"] is False


async def test_hub_ringing_on_one_extension_pops_up(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, db: Database
) -> None:
    """TEL-4: a hub-JSON ringing naming its one extension in ``extension`` pops up there."""
    r = await pbx.hub(event="ringing", call_id="one-1", from_number="+79990001122", extension="102")
    assert r.status_code == 200, r.text
    assert await popups(db, tenant, tenant.engineer.id) == ["call.ringing"]
    assert await popups(db, tenant, tenant.dispatcher.id) == []
    [call] = await calls(client, tenant)
    assert call["ringing_extensions"] == ["102"] and call["answered_extension"] is None


async def test_internal_extension_matches_no_client(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, clients: Clients
) -> None:
    """TEL-3: a colleague calling from internal extension 101 is no client, even when a client's
    number ends in 101; a full number still matches."""
    r = await client.post(
        "/api/contacts",
        json={"name": "Ends In 101", "phone": "+7 912 000-01-01"},
        headers=tenant.dispatcher.headers,
    )
    assert r.status_code == 201, r.text
    contact_id = r.json()["id"]
    r = await pbx.hub(event="ringing", call_id="int-1", from_number="101", extensions=["102"])
    assert r.status_code == 200
    [call] = await calls(client, tenant)
    assert call["matches"] == [] and call["client"] is None
    for number, expected in (("101", set()), ("0101", set()), ("+7 912 000-01-01", {contact_id})):
        found = await client.get(
            "/api/telephony/match", params={"number": number}, headers=tenant.dispatcher.headers
        )
        assert {m["id"] for m in found.json()} == expected, number
