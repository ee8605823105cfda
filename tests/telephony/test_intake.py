"""TEL-1 / TEL-2 / TEL-3: PBX event intake in both dialects, idempotency, disorder, bad input."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import func, select

from contracts.telephony import SCHEMA_DIR, schemas
from hub.db import Database
from hub.intake.models import IntakeEvent
from hub.telephony.models import Call, CallEventLog
from tests.conftest import Tenant
from tests.telephony.conftest import Clients, Pbx, call_of, calls, inbound, popups


async def _count(db: Database, model: type) -> int:
    async with db.sessionmaker() as session, session.begin():
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def test_json_schema_files_match_the_contract() -> None:
    """TEL-2: the exported JSON Schema files are what the contract Structs produce."""
    for name, schema in schemas().items():
        on_disk = json.loads((SCHEMA_DIR / name).read_text())
        assert on_disk == json.loads(json.dumps(schema)), (
            f"{name} is stale: run python -m contracts.telephony"
        )


def _key(event: dict[str, object]) -> str:
    """The PBX's event key without the hour it came in (hub.telephony.intake.keyed)."""
    return str(event["dedupe_key"]).split("@")[0]


async def test_hub_json_full_sequence(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, clients: Clients
) -> None:
    """TEL-2, TEL-3, TEL-6: ringing on two extensions, answered by one, hangup with a recording —
    one call record with the matched client, the answering employee, duration and recording."""
    r = await pbx.hub(
        event="ringing",
        call_id="c-1",
        from_number="+7 912 345-67-89",
        to_number="+74951112233",
        extensions=["101", "102"],
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"call_id": "c-1", "event": "ringing", "outcome": "received"}
    assert (await call_of(client, tenant, "c-1"))["status"] == "ringing"
    r = await pbx.hub(event="answered", call_id="c-1", extension="102")
    assert r.json()["outcome"] == "received"
    assert (await call_of(client, tenant, "c-1"))["status"] == "answered"
    r = await pbx.hub(
        event="hangup",
        call_id="c-1",
        cause="normalClearing",
        duration=95,
        recording_url="https://pbx.example/rec/c-1.mp3",
    )
    assert r.json() == {"call_id": "c-1", "event": "hangup", "outcome": "received"}
    [call] = await calls(client, tenant)
    # What applying did is kept on each inbound event for the administrators.
    events = await inbound(client, tenant)
    assert [(_key(e), e["state"], e["outcome"]) for e in events] == [
        (f"{tenant.id}:c-1:{kind}", "done", "applied") for kind in ("ringing:101,102", "answered", "hangup")
    ]
    detail = await client.get(f"/api/intake/events/{events[-1]['id']}", headers=tenant.admin.headers)
    assert detail.json()["result"] == {
        "call_id": "c-1",
        "event": "hangup",
        "outcome": "applied",
        "call": call["id"],
        "status": "ended",
    }
    assert call["external_id"] == "c-1" and call["direction"] == "in"
    assert call["ringing_extensions"] == ["101", "102"]
    assert call["answered"] is True and call["missed"] is False
    assert call["employee_id"] == tenant.engineer.id and call["answered_extension"] == "102"
    assert call["duration_seconds"] == 95 and call["recording_url"] == "https://pbx.example/rec/c-1.mp3"
    assert call["client_number"] == "+79123456789"
    # TEL-3: every match is offered (both contacts share the number), contacts first.
    assert {(m["kind"], m["id"]) for m in call["matches"]} == {
        ("contact", clients.contact_id),
        ("contact", clients.other_contact_id),
    }
    assert call["client"]["kind"] == "contact"


async def test_generic_cti_form_full_sequence(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, clients: Clients
) -> None:
    """TEL-2: the generic CTI dialect posted as a form, with repeated user[] (ringing on two
    employees), answer by answeringNumber, hangup — answered ``{}`` each time, as CTI PBXes expect."""
    ring = [
        ("event", "newCall"),
        ("from", "74951234567"),
        ("to", "74950000000"),
        ("direction", "in"),
        ("callId", "cti-1"),
        ("user[]", tenant.dispatcher.name),
        ("user[]", tenant.engineer.name),
    ]
    r = await pbx.cti_form(ring)
    assert (r.status_code, r.json()) == (200, {})
    r = await pbx.cti_form(
        [
            ("event", "answer"),
            ("from", "74951234567"),
            ("to", "74950000000"),
            ("direction", "in"),
            ("callId", "cti-1"),
            ("user[]", tenant.dispatcher.name),
            ("answeringNumber", "101"),
        ]
    )
    assert (r.status_code, r.json()) == (200, {})
    r = await pbx.cti_form(
        [
            ("event", "hangup"),
            ("from", "74951234567"),
            ("to", "74950000000"),
            ("direction", "in"),
            ("callId", "cti-1"),
            ("cause", "normalClearing"),
            ("answeringNumber", "101"),
            ("duration", "42"),
            ("recordingUrl", "https://pbx.example/r/cti-1.wav"),
        ]
    )
    assert (r.status_code, r.json()) == (200, {})
    [call] = await calls(client, tenant)
    assert call["ringing_extensions"] == ["101", "102"]  # user[] names resolved to the employees' extensions
    assert call["employee_id"] == tenant.dispatcher.id and call["answered"] is True
    assert call["cause"] == "normalClearing" and call["duration_seconds"] == 42
    assert call["recording_url"] == "https://pbx.example/r/cti-1.wav"
    assert call["client"] == {
        "kind": "company",
        "id": clients.company_id,
        "name": "Romashka LLC",
        "field": "phone",
        "number": "+74951234567",
        "company_id": clients.company_id,
        "company_name": "Romashka LLC",
    }


async def test_generic_cti_json_missed_call_and_outgoing(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, clients: Clients
) -> None:
    """TEL-2, TEL-6: CTI as JSON; a call hung up unanswered (cause cancel) is missed; a newCall
    with direction out is an outgoing call by the calling user."""
    base = {"from": "+79123456789", "to": "4950000000", "direction": "in", "callId": "m-1"}
    assert (await pbx.cti_json({**base, "event": "newCall", "user[]": ["101"]})).json() == {}
    assert (await pbx.cti_json({**base, "event": "hangup", "cause": "cancel"})).json() == {}
    out = {"from": "101", "to": "+7 495 123 45 67", "direction": "out", "callId": "o-1", "user": "101"}
    assert (await pbx.cti_json({**out, "event": "newCall"})).json() == {}
    assert (await pbx.cti_json({**out, "event": "answer"})).json() == {}
    assert (await pbx.cti_json({**out, "event": "hangup", "cause": "normalClearing"})).json() == {}
    missed = await calls(client, tenant, missed="true")
    assert [c["external_id"] for c in missed] == ["m-1"] and missed[0]["cause"] == "cancel"
    outgoing = await calls(client, tenant, direction="out")
    assert [c["external_id"] for c in outgoing] == ["o-1"]
    assert (
        outgoing[0]["employee_id"] == tenant.dispatcher.id
        and outgoing[0]["client"]["id"] == clients.company_id
    )
    # The dispatcher's calls: the one they placed and the one that rang on their phone unanswered.
    mine = await calls(client, tenant, employee_id=tenant.dispatcher.id)
    assert [c["external_id"] for c in mine] == ["o-1", "m-1"]


async def test_duplicates_and_disorder_leave_one_correct_record(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, db: Database
) -> None:
    """TEL-2: a duplicate ringing, a repeated answer, a hangup before the answer, an answer after
    the hangup: each answered 200 with a defined outcome, one call record, right in the end."""
    ring = {"event": "ringing", "call_id": "d-1", "from_number": "+79990001122", "extensions": ["101", "102"]}
    assert (await pbx.hub(**ring)).json()["outcome"] == "received"
    assert (await pbx.hub(**ring)).json()["outcome"] == "duplicate"
    # Hangup overtakes the answer.
    hangup = await pbx.hub(event="hangup", call_id="d-1", cause="normalClearing", duration=30)
    assert hangup.json()["outcome"] == "received"
    assert (await call_of(client, tenant, "d-1"))["status"] == "ended"
    late = await pbx.hub(event="answered", call_id="d-1", extension="101")
    assert (late.status_code, late.json()["outcome"]) == (200, "received")
    again = await pbx.hub(event="answered", call_id="d-1", extension="102")
    assert again.json()["outcome"] == "duplicate"
    assert (await pbx.hub(event="hangup", call_id="d-1", cause="normalClearing", duration=30)).json()[
        "outcome"
    ] == "duplicate"
    # The repeats were stopped at the door: three events stored, each applied once.
    assert [(_key(e), e["outcome"]) for e in await inbound(client, tenant)] == [
        (f"{tenant.id}:d-1:ringing:101,102", "applied"),
        (f"{tenant.id}:d-1:hangup", "applied"),
        (f"{tenant.id}:d-1:answered", "late"),
    ]
    [call] = await calls(client, tenant)
    assert call["status"] == "ended" and call["answered"] is True and call["missed"] is False
    assert call["employee_id"] == tenant.dispatcher.id and call["duration_seconds"] == 30
    assert await _count(db, Call) == 1 and await _count(db, CallEventLog) == 3
    async with db.sessionmaker() as session, session.begin():
        logged = dict(
            (await session.execute(select(CallEventLog.event, CallEventLog.outcome))).tuples().all()
        )
    assert logged == {"ringing": "applied", "hangup": "applied", "answered": "late"}


async def test_hangup_for_unknown_call_then_late_ringing(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx
) -> None:
    """TEL-2: a hangup for a call never seen creates the (ended, missed) record; the ringing that
    arrives afterwards only fills it in and opens no pop-up."""
    r = await pbx.hub(event="hangup", call_id="u-1", from_number="+79990001122", cause="noAnswer")
    assert (r.status_code, r.json()["outcome"]) == (200, "received")
    assert (await call_of(client, tenant, "u-1"))["status"] == "ended"
    r = await pbx.hub(event="ringing", call_id="u-1", from_number="+79990001122", extensions=["101"])
    assert (r.status_code, r.json()["outcome"]) == (200, "received")
    assert [e["outcome"] for e in await inbound(client, tenant)] == ["applied", "late"]
    [call] = await calls(client, tenant)
    assert (
        call["missed"] is True
        and call["ringing_extensions"] == ["101"]
        and call["from_number"] == "+79990001122"
    )


@pytest.mark.parametrize(
    "body",
    [{"event": "ringing", "call_id": ""}, {"event": "ringing", "call_id": "   "}, {"event": "ringing"}],
)
async def test_empty_call_id_is_refused(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, db: Database, body: dict[str, str]
) -> None:
    """TEL-2: an event without a call id gets 422 call_id_required and records nothing."""
    r = await pbx.hub(**body)
    assert (r.status_code, r.json()["code"]) == (422, "call_id_required")
    r = await pbx.cti_form(
        [("event", "newCall"), ("from", "1"), ("to", "2"), ("direction", "in"), ("callId", "")]
    )
    assert (r.status_code, r.json()["code"]) == (422, "call_id_required")
    assert await _count(db, Call) == 0


async def test_bad_input_gets_problem_json(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, db: Database
) -> None:
    """TEL-2: malformed bodies are clear 4xx, never 500, and record nothing."""
    r = await client.post(
        f"/api/telephony/pbx/events/{pbx.token}",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert (r.status_code, r.json()["code"]) == (400, "invalid_json")
    r = await pbx.hub(event="ringing", call_id="x", extensions="101")
    assert (r.status_code, r.json()["code"]) == (422, "invalid_pbx_event")
    r = await pbx.hub(event="exploded", call_id="x")
    assert (r.status_code, r.json()["code"]) == (422, "invalid_pbx_event")
    r = await pbx.cti_form([("event", "newCall"), ("callId", "x"), ("direction", "sideways")])
    assert (r.status_code, r.json()["code"], r.json()["error"]) == (
        422,
        "invalid_direction",
        "Invalid direction!",
    )
    r = await pbx.cti_form([("event", "transfer"), ("callId", "x")])
    assert (r.status_code, r.json()["code"]) == (422, "invalid_event")
    r = await client.post(
        f"/api/telephony/pbx/events/{pbx.token}",
        content=b"[1,2]",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422
    # A time without a zone is ambiguous (and cannot be stored): refused, not a 500.
    r = await pbx.hub(event="ringing", call_id="x", occurred_at="2026-11-30T10:00:00")
    assert (r.status_code, r.json()["code"]) == (422, "invalid_pbx_event")
    # CTI as JSON: the event or a field given as a list or an object is refused clearly.
    for event in (["newCall"], {"name": "newCall"}, True):
        r = await pbx.cti_json({"event": event, "callId": "x", "direction": "in"})
        assert (r.status_code, r.json()["code"]) == (422, "invalid_event"), event
    ring = {"event": "newCall", "callId": "x", "direction": "in"}
    for field, value in (
        ("from", {"number": "+79990001122"}),
        ("to", ["100"]),
        ("callId", {"id": 1}),
        ("direction", ["in"]),
        ("cause", {"c": 1}),
        ("user[]", [{"name": "Dispatcher"}]),
    ):
        r = await pbx.cti_json({**ring, field: value})
        assert (r.status_code, r.json()["code"]) == (422, "invalid_pbx_event"), field
    assert await _count(db, Call) == 0
    # Each refusal is recorded for the administrators, none is applied.
    refused = await inbound(client, tenant)
    assert {(e["state"], e["outcome"]) for e in refused} == {("rejected", "rejected")}
    assert [e["error_code"] for e in refused] == [
        "invalid_json",
        *["invalid_pbx_event"] * 2,
        "invalid_direction",
        "invalid_event",
        *["invalid_pbx_event"] * 2,
        *["invalid_event"] * 3,
        *["invalid_pbx_event"] * 6,
    ]


async def test_event_time_with_a_zone_is_the_call_start(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx
) -> None:
    """TEL-2, TEL-6: ``occurred_at`` with a zone sets when the call started."""
    r = await pbx.hub(event="ringing", call_id="z-1", occurred_at="2026-11-30T13:00:00+03:00")
    assert r.status_code == 200, r.text
    [call] = await calls(client, tenant)
    assert call["started_at"].startswith("2026-11-30T10:00:00")
    # CTI numbers posted as JSON numbers are taken as written.
    r = await pbx.cti_json({"event": "newCall", "callId": 42, "from": 79990001122, "direction": "in"})
    assert (r.status_code, r.json()) == (200, {})
    assert any(
        c["external_id"] == "42" and c["from_number"] == "79990001122" for c in await calls(client, tenant)
    )


async def test_wrong_token_is_401_and_records_nothing(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, pbx: Pbx, db: Database
) -> None:
    """TEL-1, TEL-2: a wrong or missing token is 401 in both dialects and nothing is recorded; the
    token works in the URL and in the X-PBX-Token header; a new token retires the old one."""
    event = {"event": "ringing", "call_id": "t-1", "from_number": "+79990001122"}
    for path in ("/api/telephony/pbx/events/pbx_wrong", "/api/telephony/pbx/events"):
        r = await client.post(path, json=event)
        assert (r.status_code, r.json()["code"]) == (401, "invalid_pbx_token")
    r = await client.post(
        "/api/telephony/cti/pbx_wrong", data={"event": "newCall", "callId": "t-1", "direction": "in"}
    )
    assert (r.status_code, r.json()["code"]) == (401, "invalid_pbx_token")
    # An employee's bearer token is no PBX token.
    r = await client.post("/api/telephony/pbx/events", json=event, headers=tenant.admin.headers)
    assert r.status_code == 401
    await pbx.apply_received()
    assert await _count(db, Call) == 0 and await _count(db, CallEventLog) == 0
    assert await _count(db, IntakeEvent) == 0  # an unknown token is nobody's: not even recorded
    r = await pbx.post("/api/telephony/pbx/events", json=event, headers={"X-PBX-Token": pbx.token})
    assert r.status_code == 200
    new = (await client.post("/api/telephony/settings/token", headers=tenant.admin.headers)).json()["token"]
    r = await client.post(f"/api/telephony/pbx/events/{pbx.token}", json={**event, "call_id": "t-2"})
    assert r.status_code == 401
    r = await pbx.post(f"/api/telephony/pbx/events/{new}", json={**event, "call_id": "t-2"})
    assert r.status_code == 200
    assert {c["external_id"] for c in await calls(client, tenant)} == {"t-1", "t-2"}
    # The other tenant sees none of it.
    r = await client.get("/api/telephony/calls", headers=other_tenant.admin.headers)
    assert r.json() == {"items": [], "next_cursor": None}


async def test_settings_per_account(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, clients: Clients
) -> None:
    """TEL-1, TEL-3: settings are the administrator's; match digits decide how much of the number
    must agree; secrets are never returned."""
    r = await client.get("/api/telephony/settings", headers=tenant.admin.headers)
    body = r.json()
    assert body["match_digits"] == 10 and body["token_set"] is True and body["region"] == "RU"
    assert "{token}" in body["cti_url"] and "originate_secret" not in body
    r = await client.get("/api/telephony/settings", headers=tenant.dispatcher.headers)
    assert r.status_code == 403
    r = await client.put(
        "/api/telephony/settings",
        json={
            "originate_url": "https://pbx.example/originate",
            "originate_auth": "basic",
            "originate_username": "hub",
            "originate_secret": "s3cret",
        },
        headers=tenant.admin.headers,
    )
    assert r.json()["originate_secret_set"] is True and "s3cret" not in r.text
    r = await client.put("/api/telephony/settings", json={"match_digits": 3}, headers=tenant.admin.headers)
    assert (r.status_code, r.json()["code"]) == (400, "validation_error")
    # Numbers written with spaces, dashes, brackets, + or the trunk prefix 8 all match.
    for written in ("8 (912) 345-67-89", "+7 912 345 67 89", "9123456789", "007-912-345-67-89"):
        r = await client.get(
            "/api/telephony/match", params={"number": written}, headers=tenant.dispatcher.headers
        )
        assert {m["id"] for m in r.json()} == {clients.contact_id, clients.other_contact_id}, written
    r = await client.get(
        "/api/telephony/match", params={"number": "+7 999 345-67-89"}, headers=tenant.dispatcher.headers
    )
    assert r.json() == []
    await client.put("/api/telephony/settings", json={"match_digits": 7}, headers=tenant.admin.headers)
    r = await client.get(
        "/api/telephony/match", params={"number": "+7 999 345-67-89"}, headers=tenant.dispatcher.headers
    )
    assert {m["id"] for m in r.json()} == {clients.contact_id, clients.other_contact_id}


async def test_generic_cti_multipart_form(client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx) -> None:
    """TEL-2: the same CTI fields posted as multipart/form-data (some bridges do) are accepted."""
    fields = {
        "event": "newCall",
        "from": "+79990001122",
        "to": "100",
        "direction": "in",
        "callId": "mp-1",
        "user[]": ["101", "102"],
    }
    files = {"placeholder": ("x.txt", b"", "text/plain")}
    r = await pbx.post(f"/api/telephony/cti/{pbx.token}", data=fields, files=files)
    assert (r.status_code, r.json()) == (200, {})
    [call] = await calls(client, tenant)
    assert call["external_id"] == "mp-1" and call["ringing_extensions"] == ["101", "102"]


async def test_a_repeated_event_is_stored_once_and_applied_once(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, db: Database
) -> None:
    """Issue 11, TEL-2: the PBX's own event key (its call id and the event) is checked at the door,
    before any caller matching: a repeat sent before the first was applied, one sent after, and
    the same event in the other dialect are all taken as the one event, applied once (one call
    event, one pop-up)."""
    ring = {"event": "ringing", "call_id": "rep-1", "from_number": "+79990001122", "extensions": ["101"]}
    path = f"/api/telephony/pbx/events/{pbx.token}"
    first = await client.post(path, json=ring)  # the worker has not run yet
    again = await client.post(path, json=ring)
    assert (first.status_code, first.json()["outcome"]) == (200, "received")
    assert (again.status_code, again.json()["outcome"]) == (200, "duplicate")
    await pbx.apply_received()
    assert (await pbx.hub(**ring)).json() == {"call_id": "rep-1", "event": "ringing", "outcome": "duplicate"}
    cti = [("event", "newCall"), ("callId", "rep-1"), ("direction", "in"), ("user[]", "101")]
    assert (await pbx.cti_form(cti)).json() == {}
    [event] = await inbound(client, tenant)
    assert (_key(event), event["state"], event["outcome"]) == (
        f"{tenant.id}:rep-1:ringing:101",
        "done",
        "applied",
    )
    assert await _count(db, IntakeEvent) == 1 and await _count(db, CallEventLog) == 1
    assert await popups(db, tenant, tenant.dispatcher.id) == ["call.ringing"]


async def test_refused_events_are_listed_for_administrators(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, pbx: Pbx, db: Database
) -> None:
    """Issue 11, TEL-1, TEL-2: a malformed event and one from a PBX whose account switched
    telephony off are refused at the door in the PBX's own error form and listed, with what was
    sent and why, in the account's inbound events as rejected; nothing of them is applied, the
    PBX token is kept nowhere, and the other account sees none of it."""
    r = await pbx.hub(event="ringing", call_id="rf-1", extensions="101")
    assert (r.status_code, r.json()["code"]) == (422, "invalid_pbx_event")
    r = await pbx.cti_form([("event", "newCall"), ("callId", "rf-2"), ("direction", "sideways")])
    assert (r.status_code, r.json()["error"]) == (422, "Invalid direction!")
    await client.put("/api/telephony/settings", json={"enabled": False}, headers=tenant.admin.headers)
    r = await pbx.post(
        "/api/telephony/pbx/events",
        json={"event": "ringing", "call_id": "rf-3"},
        headers={"X-PBX-Token": pbx.token},
    )
    assert (r.status_code, r.json()["code"]) == (401, "telephony_disabled")
    rejected = await inbound(client, tenant, state="rejected")
    assert [(e["error_code"], e["outcome"]) for e in rejected] == [
        ("invalid_pbx_event", "rejected"),
        ("invalid_direction", "rejected"),
        ("telephony_disabled", "rejected"),
    ]
    detail = await client.get(f"/api/intake/events/{rejected[-1]['id']}", headers=tenant.admin.headers)
    assert '"call_id":"rf-3"' in detail.json()["body"].replace(" ", "")
    assert pbx.token not in detail.text
    assert await inbound(client, tenant, state="done") == []
    assert await _count(db, Call) == 0 and await _count(db, CallEventLog) == 0
    r = await client.get("/api/intake/events", headers=other_tenant.admin.headers)
    assert r.json() == {"items": [], "next_cursor": None}
