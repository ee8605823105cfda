"""TEL-2: a call whose hangup never comes is closed by the sweeper after the configured time."""

from __future__ import annotations

from datetime import timedelta

import httpx
from litestar import Litestar
from sqlalchemy import select

from hub.db import Database, utcnow
from hub.desk.models import ActivityEntry
from hub.live import LiveEvent, until_logged
from hub.telephony.service import close_stale_calls, employee_channel
from tests.conftest import Tenant
from tests.telephony.conftest import Clients, Pbx, calls, connect_pbx, inbound


async def test_stale_calls_are_closed_once(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, db: Database, clients: Clients
) -> None:
    """TEL-2, TEL-4, TEL-8: after ``stale_call_minutes`` without a hangup the call ends (missed if
    never answered, marked as closed by the sweeper): the pop-up gets its closing frame and the
    caller's activity feed the call; fresh calls stay open; a second sweep and a late hangup change
    nothing but fill in what was missing."""
    r = await client.put(
        "/api/telephony/settings", json={"stale_call_minutes": 30}, headers=tenant.admin.headers
    )
    assert r.status_code == 200
    await pbx.hub(event="ringing", call_id="s-1", from_number="+7 912 345-67-89", extensions=["101"])
    await pbx.hub(event="ringing", call_id="s-2", from_number="+79990001133", extensions=["101"])
    await pbx.hub(event="answered", call_id="s-2", extension="101")
    async with db.sessionmaker() as session, session.begin():
        assert await close_stale_calls(session, now=utcnow() + timedelta(minutes=10)) == 0
    async with db.sessionmaker() as session, session.begin():
        assert await close_stale_calls(session, now=utcnow() + timedelta(minutes=31)) == 2
    async with db.sessionmaker() as session, session.begin():
        assert await close_stale_calls(session, now=utcnow() + timedelta(minutes=90)) == 0
    listed = {c["external_id"]: c for c in await calls(client, tenant)}
    assert listed["s-1"]["status"] == "ended" and listed["s-1"]["missed"] is True
    await until_logged(db)
    async with db.sessionmaker() as session, session.begin():
        frames = await session.execute(
            select(LiveEvent.event_type, LiveEvent.data).where(
                LiveEvent.channel == employee_channel(tenant.id, tenant.dispatcher.id)
            )
        )
        ended = [data["call"]["external_id"] for kind, data in frames if kind == "call.ended"]
        assert sorted(ended) == ["s-1", "s-2"]
        feed = set(
            (
                await session.execute(
                    select(ActivityEntry.contact_id, ActivityEntry.kind, ActivityEntry.ref_id)
                )
            ).all()
        )
    # s-1 came from a number two contacts share; s-2 from nobody known.
    s1 = listed["s-1"]["id"]
    assert feed == {(clients.contact_id, "call", s1), (clients.other_contact_id, "call", s1)}
    assert listed["s-1"]["closed_by_sweeper"] is True and listed["s-1"]["cause"] == "stale"
    assert listed["s-2"]["status"] == "ended" and listed["s-2"]["missed"] is False
    late = await pbx.hub(event="hangup", call_id="s-2", cause="normalClearing", duration=300)
    assert (late.status_code, late.json()["outcome"]) == (200, "received")
    assert (await inbound(client, tenant))[-1]["outcome"] == "late"
    [s2] = [c for c in await calls(client, tenant) if c["external_id"] == "s-2"]
    assert s2["duration_seconds"] == 300


async def test_sweeper_is_not_starved_by_accounts_that_keep_calls_open_long(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, pbx: Pbx, db: Database
) -> None:
    """TEL-2: the oldest open calls of an account with a long stale time do not fill the sweeper's
    batch: another account's overdue call is closed in the same sweep."""
    await client.put("/api/telephony/settings", json={"stale_call_minutes": 30}, headers=tenant.admin.headers)
    patient = await connect_pbx(app, client, other_tenant, stale_call_minutes=24 * 60)
    now = utcnow()
    for n in range(3):  # older than every call of the first account, but not stale for theirs
        at = (now - timedelta(hours=3, minutes=n)).isoformat()
        r = await patient.hub(event="ringing", call_id=f"long-{n}", occurred_at=at, extensions=["101"])
        assert r.status_code == 200, r.text
    r = await pbx.hub(
        event="ringing",
        call_id="due-1",
        occurred_at=(now - timedelta(hours=1)).isoformat(),
        extensions=["101"],
    )
    assert r.status_code == 200, r.text
    async with db.sessionmaker() as session, session.begin():
        assert await close_stale_calls(session, now=now, limit=2) == 1
    [due] = await calls(client, tenant)
    assert (due["status"], due["closed_by_sweeper"]) == ("ended", True)
    assert {c["status"] for c in await calls(client, other_tenant)} == {"ringing"}
