"""TEL-2, TEL-4, TEL-6: call records stay right when PBXes behave as real ones do (issue 12,
defect 5): hunt groups, call-id counters that restart, voicemail, answers naming nobody, events
out of order and hangups after the sweeper."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from hub.db import Database, utcnow
from hub.telephony.service import close_stale_calls
from tests.conftest import Tenant
from tests.telephony.conftest import Pbx, call_of, calls, popups


async def test_hunt_group_pops_up_on_each_extension_it_rings(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, db: Database
) -> None:
    """TEL-4: a hunt group rings its extensions one after another, one ``ringing`` each with the
    same call id: each employee gets the pop-up when their phone rings; the record is one call
    that rang both; the same ringing again is still taken once."""
    await pbx.hub(event="ringing", call_id="h-1", from_number="+79990001122", extensions=["101"])
    await pbx.hub(event="ringing", call_id="h-1", from_number="+79990001122", extensions=["102"])
    again = await pbx.hub(event="ringing", call_id="h-1", from_number="+79990001122", extensions=["102"])
    assert again.json()["outcome"] == "duplicate"
    assert await popups(db, tenant, tenant.dispatcher.id) == ["call.ringing"]
    assert await popups(db, tenant, tenant.engineer.id) == ["call.ringing"]
    [call] = await calls(client, tenant)
    assert call["ringing_extensions"] == ["101", "102"]
    await pbx.hub(event="answered", call_id="h-1", extension="102")
    assert await popups(db, tenant, tenant.dispatcher.id) == ["call.ringing", "call.answered"]


def _at(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


async def test_a_call_id_used_again_after_a_pbx_restart_is_a_new_call(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx
) -> None:
    """TEL-2, TEL-6: a PBX that restarts its call-id counter sends ids it used before: a ringing
    with the id of a call that ended hours ago is a new call, with its own events."""
    earlier = utcnow() - timedelta(hours=5)
    await pbx.hub(event="ringing", call_id="7", extensions=["101"], occurred_at=_at(earlier))
    await pbx.hub(
        event="hangup", call_id="7", cause="noAnswer", occurred_at=_at(earlier + timedelta(seconds=20))
    )
    ringing = await pbx.hub(event="ringing", call_id="7", from_number="+79990001122", extensions=["101"])
    assert ringing.json()["outcome"] == "received"
    await pbx.hub(event="answered", call_id="7", extension="101")
    await pbx.hub(event="hangup", call_id="7", cause="normalClearing", duration=40)
    old, new = sorted(await calls(client, tenant), key=lambda c: c["started_at"])
    assert (old["status"], old["missed"]) == ("ended", True)
    assert (new["status"], new["missed"], new["duration_seconds"]) == ("ended", False, 40)
    assert new["employee_id"] == tenant.dispatcher.id and new["from_number"] == "+79990001122"


async def test_an_answer_by_voicemail_or_an_outsider_is_a_missed_call(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx
) -> None:
    """TEL-6: an answer by ``voicemail`` (or anyone who is not an employee) leaves the call
    missed, also when the hangup carries talk time and a recording (the voicemail message)."""
    for call_id, answerer in (("v-1", "voicemail"), ("v-2", "+74950000000")):
        await pbx.hub(event="ringing", call_id=call_id, from_number="+79990001122", extensions=["101"])
        await pbx.hub(event="answered", call_id=call_id, extension=answerer)
        await pbx.hub(
            event="hangup",
            call_id=call_id,
            cause="normalClearing",
            duration=25,
            recording_url=f"https://pbx.example/{call_id}.mp3",
        )
        call = await call_of(client, tenant, call_id)
        assert (call["answered"], call["missed"], call["employee_id"]) == (False, True, None), call_id


async def test_an_answer_naming_nobody_binds_the_only_employee_it_rang(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx
) -> None:
    """TEL-6: an ``answered`` without an extension for a call that rang one employee was taken
    by that employee; for a call that rang several it names nobody."""
    await pbx.hub(event="ringing", call_id="n-1", from_number="+79990001122", extensions=["101"])
    await pbx.hub(event="answered", call_id="n-1")
    await pbx.hub(event="ringing", call_id="n-2", from_number="+79990001122", extensions=["101", "102"])
    await pbx.hub(event="answered", call_id="n-2")
    one, several = await call_of(client, tenant, "n-1"), await call_of(client, tenant, "n-2")
    assert (one["answered"], one["employee_id"]) == (True, tenant.dispatcher.id)
    assert (several["answered"], several["employee_id"]) == (True, None)


async def test_an_answer_told_after_the_hangup_is_not_later_than_the_end(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx
) -> None:
    """TEL-2, TEL-6: events out of order: the answer arrives after the hangup (without talk
    time); the call is answered, and it was answered no later than it ended."""
    await pbx.hub(event="ringing", call_id="o-1", from_number="+79990001122", extensions=["101"])
    await pbx.hub(event="hangup", call_id="o-1", cause="normalClearing")
    await pbx.hub(event="answered", call_id="o-1", extension="101")
    call = await call_of(client, tenant, "o-1")
    assert call["answered"] is True and call["employee_id"] == tenant.dispatcher.id
    assert call["answered_at"] is not None and call["answered_at"] <= call["ended_at"]


async def test_a_hangup_after_the_sweeper_closed_the_call_replaces_stale(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, db: Database
) -> None:
    """TEL-2, TEL-6: the sweeper closes a call whose hangup did not come (cause ``stale``); when
    the real hangup arrives, its cause, end and duration replace the sweeper's guess."""
    await pbx.hub(event="ringing", call_id="w-1", from_number="+79990001122", extensions=["101"])
    await pbx.hub(event="answered", call_id="w-1", extension="101")
    async with db.sessionmaker() as session, session.begin():
        assert await close_stale_calls(session, now=utcnow() + timedelta(hours=5)) == 1
    assert (await call_of(client, tenant, "w-1"))["cause"] == "stale"
    await pbx.hub(event="hangup", call_id="w-1", cause="normalClearing", duration=75)
    call = await call_of(client, tenant, "w-1")
    assert (call["cause"], call["duration_seconds"], call["closed_by_sweeper"]) == (
        "normalClearing",
        75,
        False,
    )
    assert call["missed"] is False
