"""TEL-2: a call whose hangup never comes is closed by the sweeper after the configured time."""

from __future__ import annotations

from datetime import timedelta

import httpx

from hub.db import Database, utcnow
from hub.telephony.service import close_stale_calls
from tests.conftest import Tenant
from tests.telephony.conftest import Pbx, calls


async def test_stale_calls_are_closed_once(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, db: Database
) -> None:
    """TEL-2: after ``stale_call_minutes`` without a hangup the call ends (missed if never
    answered, marked as closed by the sweeper); fresh calls stay open; a second sweep and a late
    hangup change nothing but fill in what was missing."""
    r = await client.put(
        "/api/telephony/settings", json={"stale_call_minutes": 30}, headers=tenant.admin.headers
    )
    assert r.status_code == 200
    await pbx.hub(event="ringing", call_id="s-1", from_number="+79990001122", extensions=["101"])
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
    assert listed["s-1"]["closed_by_sweeper"] is True and listed["s-1"]["cause"] == "stale"
    assert listed["s-2"]["status"] == "ended" and listed["s-2"]["missed"] is False
    late = await pbx.hub(event="hangup", call_id="s-2", cause="normalClearing", duration=300)
    assert (late.status_code, late.json()["outcome"]) == (200, "late")
    [s2] = [c for c in await calls(client, tenant) if c["external_id"] == "s-2"]
    assert s2["duration_seconds"] == 300
