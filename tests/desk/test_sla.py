"""DESK-5 computed SLA deadlines through the API: rules (first match wins, account default),
working hours and holidays, recomputation on type/priority change, staff overrides, a reply
deadline per client message, and the sweeper's flags and history."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from hub.db import Database
from hub.desk import service
from hub.desk.actors import Actor
from hub.desk.jobs import sweep
from tests.conftest import Tenant
from tests.desk.conftest import Desk
from tests.statements import counting_statements


class Sla:
    """The SLA admin API as the account's administrator."""

    def __init__(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        self.client = client
        self.headers = tenant.admin.headers

    async def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        response = await self.client.request(method, f"/api/sla{path}", json=body, headers=self.headers)
        assert response.status_code == status, response.text
        return response.json() if response.content else None

    async def settings(self, **changes: Any) -> dict[str, Any]:
        return dict(await self.call("PATCH", "/settings", changes))

    async def rule(self, **fields: Any) -> dict[str, Any]:
        return dict(await self.call("POST", "/rules", fields, status=201))


@pytest.fixture
def sla(client: httpx.AsyncClient, tenant: Tenant) -> Sla:
    return Sla(client, tenant)


def at(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value)


def due_after(ticket: dict[str, Any], clock: str) -> timedelta:
    return at(ticket[f"{clock}_due_at"]) - at(ticket["created_at"])


async def history(desk: Desk, ticket_id: int) -> list[tuple[str, dict[str, Any]]]:
    page = await desk.get(f"/api/tickets/{ticket_id}/history", limit=200)
    return [(h["kind"], h["data"]) for h in page["items"]]


async def test_desk5_first_matching_rule_wins_else_the_account_default(sla: Sla, desk: Desk) -> None:
    """DESK-5: rules by type and priority, client category, company and object are tried by
    position; the first match gives its targets, a target it leaves empty comes from the account
    default, and a ticket no rule matches gets the default."""
    await sla.settings(reaction_minutes=240, resolution_minutes=2880)
    vip = await desk.post("/api/companies", {"name": "Vip Towers", "category": "vip"})
    plain = await desk.company("Plain Ltd")
    site = await desk.object("OB-7")
    await sla.rule(
        name="critical incidents",
        position=20,
        ticket_type="incident",
        priority="critical",
        reaction_minutes=15,
        resolution_minutes=240,
        calendar="round_the_clock",
    )
    await sla.rule(name="vip clients", position=30, client_category="vip", reaction_minutes=30)
    await sla.rule(name="object OB-7", position=10, object_id=site["id"], reaction_minutes=60)
    await sla.rule(name="plain ltd", company_id=plain["id"], reaction_minutes=90)  # goes last
    assert [r["name"] for r in await sla.call("GET", "/rules")] == [
        "object OB-7",
        "critical incidents",
        "vip clients",
        "plain ltd",
    ]

    critical = await desk.ticket(type="incident", priority="critical", company_id=vip["id"])
    assert (due_after(critical, "reaction"), due_after(critical, "resolution")) == (
        timedelta(minutes=15),
        timedelta(minutes=240),
    )
    for_vip = await desk.ticket(company_id=vip["id"])
    assert (due_after(for_vip, "reaction"), due_after(for_vip, "resolution")) == (
        timedelta(minutes=30),
        timedelta(minutes=2880),
    )
    on_site = await desk.ticket(type="incident", priority="critical", object_id=site["id"])
    assert due_after(on_site, "reaction") == timedelta(minutes=60)
    assert due_after(await desk.ticket(company_id=plain["id"]), "reaction") == timedelta(minutes=90)
    nothing = await desk.ticket()
    assert (due_after(nothing, "reaction"), due_after(nothing, "resolution")) == (
        timedelta(minutes=240),
        timedelta(minutes=2880),
    )


async def test_desk5_without_settings_only_the_reply_default_applies(sla: Sla, desk: Desk) -> None:
    """DESK-5: a new account has no reaction or resolution targets (no deadlines) and replies are
    due within 3 days ("the reply deadline is 3 days by default")."""
    assert await sla.call("GET", "/settings") == {
        "time_zone": "UTC",
        "working_hours": None,
        "reaction_minutes": None,
        "resolution_minutes": None,
        "reply_minutes": 3 * 24 * 60,
    }
    ticket = await desk.ticket()
    assert ticket["reaction_due_at"] is None and ticket["resolution_due_at"] is None


async def test_desk5_working_hours_and_holidays_move_the_deadline(sla: Sla, desk: Desk) -> None:
    """DESK-5: deadlines count working hours in the account's time zone and skip holidays: with
    09:00-18:00 every day in Kolkata and yesterday, today and tomorrow holidays, one working hour
    from now ends at 10:00 local the day after tomorrow. A round-the-clock rule ignores both."""
    zone = ZoneInfo("Asia/Kolkata")
    every_day = {
        day: [{"start": "09:00", "end": "18:00"}] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    }
    settings = await sla.settings(time_zone="Asia/Kolkata", working_hours=every_day, reaction_minutes=60)
    assert settings["working_hours"]["sun"] == [{"start": "09:00", "end": "18:00"}]
    today = datetime.now(zone).date()
    for offset in (-1, 0, 1):
        await sla.call(
            "POST",
            "/holidays",
            {"day": (today + timedelta(days=offset)).isoformat(), "name": "Festival"},
            status=201,
        )
    ticket = await desk.ticket()
    expected = datetime.combine(today + timedelta(days=2), datetime.min.time(), tzinfo=zone) + timedelta(
        hours=10
    )
    assert at(ticket["reaction_due_at"]) == expected
    await sla.rule(name="urgent", priority="critical", reaction_minutes=60, calendar="round_the_clock")
    urgent = await desk.ticket(priority="critical")
    assert due_after(urgent, "reaction") == timedelta(minutes=60)


async def test_desk5_deadlines_follow_type_and_priority_but_overrides_stay(sla: Sla, desk: Desk) -> None:
    """DESK-5: changing priority or type counts the deadlines again from creation (history
    ``sla_recomputed``); a deadline staff set by hand is kept through such changes and recorded in
    the history; clearing it hands it back to the rules. A deadline typed at creation stays too."""
    await sla.settings(reaction_minutes=240, resolution_minutes=2880)
    await sla.rule(name="critical", priority="critical", reaction_minutes=15, resolution_minutes=120)
    await sla.rule(name="incidents", ticket_type="incident", reaction_minutes=30)
    ticket = await desk.ticket()
    tid = ticket["id"]
    patch = lambda body: desk.client.patch(f"/api/tickets/{tid}", json=body, headers=desk.headers)  # noqa: E731

    changed = (await patch({"priority": "critical"})).json()
    assert (due_after(changed, "reaction"), due_after(changed, "resolution")) == (
        timedelta(minutes=15),
        timedelta(minutes=120),
    )
    assert (await history(desk, tid))[-1][0] == "sla_recomputed"
    changed = (await patch({"priority": "normal", "type": "incident"})).json()
    assert (due_after(changed, "reaction"), due_after(changed, "resolution")) == (
        timedelta(minutes=30),
        timedelta(minutes=2880),
    )

    by_hand = (at(ticket["created_at"]) + timedelta(days=7)).isoformat()
    overridden = (await patch({"resolution_due_at": by_hand})).json()
    assert at(overridden["resolution_due_at"]) == at(by_hand)
    kind, data = (await history(desk, tid))[-1]
    assert kind == "updated" and at(data["resolution_due_at"][1]) == at(by_hand)
    changed = (await patch({"priority": "critical", "type": "service"})).json()
    assert at(changed["resolution_due_at"]) == at(by_hand)
    assert due_after(changed, "reaction") == timedelta(minutes=15)

    cleared = (await patch({"resolution_due_at": None})).json()
    assert due_after(cleared, "resolution") == timedelta(minutes=120)

    typed = (at(ticket["created_at"]) + timedelta(hours=1)).isoformat()
    made = await desk.ticket(reaction_due_at=typed)
    assert at(made["reaction_due_at"]) == at(typed) and due_after(made, "resolution") == timedelta(
        minutes=2880
    )
    changed = (
        await desk.client.patch(
            f"/api/tickets/{made['id']}", json={"priority": "critical"}, headers=desk.headers
        )
    ).json()
    assert at(changed["reaction_due_at"]) == at(typed)


async def test_desk5_reaction_deadline_stops_being_recomputed_once_met(sla: Sla, desk: Desk) -> None:
    """DESK-5: a clock that has stopped (the ticket was taken) keeps its deadline when priority
    changes afterwards."""
    await sla.settings(reaction_minutes=240)
    await sla.rule(name="critical", priority="critical", reaction_minutes=15)
    ticket = await desk.ticket(responsible_id=desk.tenant.engineer.id)
    await desk.status(ticket["id"], "in_progress")
    response = await desk.client.patch(
        f"/api/tickets/{ticket['id']}", json={"priority": "critical"}, headers=desk.headers
    )
    assert due_after(response.json(), "reaction") == timedelta(minutes=240)


async def client_says(
    db: Database, tenant: Tenant, ticket_id: int, contact_id: int, body: str, now: datetime
) -> None:
    """A client's public message (the client's own reply route is DESK-11's; the desk service is
    what it calls)."""
    async with db.sessionmaker() as session, session.begin():
        actor = Actor("contact", contact_id, "Ivan Petrov")
        await service.add_comment(session, tenant.id, ticket_id, actor, body, public=True, now=now)


async def sweep_at(db: Database, now: datetime) -> int:
    async with db.sessionmaker() as session, session.begin():
        return (await sweep(session, now)).reply_overdue


async def test_desk5_each_client_message_has_its_own_reply_deadline(
    sla: Sla, desk: Desk, db: Database, tenant: Tenant
) -> None:
    """DESK-5: every public client message gets a reply deadline (the rule's, else the account's);
    once one passes unanswered the sweeper flags the ticket *reply overdue* and records
    ``sla_breached`` for that message, once, whatever the number of sweepers; the staff's public
    reply answers every waiting message and clears the flag."""
    await sla.settings(reply_minutes=60)
    contact = await desk.contact()
    ticket = await desk.ticket(contact_id=contact["id"])
    tid = ticket["id"]
    t0 = at(ticket["created_at"])
    await client_says(db, tenant, tid, contact["id"], "Still beeping", t0 + timedelta(minutes=1))
    await client_says(db, tenant, tid, contact["id"], "Now the siren too", t0 + timedelta(minutes=30))
    shown = await desk.get(f"/api/tickets/{tid}")
    assert at(shown["reply_due_at"]) == t0 + timedelta(minutes=61)
    assert shown["flags"]["needs_reply"] and not shown["flags"]["sla_reply_overdue"]

    assert await sweep_at(db, t0 + timedelta(minutes=60)) == 0
    assert await sweep_at(db, t0 + timedelta(minutes=62)) == 1
    assert await sweep_at(db, t0 + timedelta(minutes=62)) == 0  # a second sweeper finds nothing
    shown = await desk.get(f"/api/tickets/{tid}")
    assert shown["flags"]["sla_reply_overdue"]
    assert (await desk.get("/api/tickets"))["items"][0]["flags"]["sla_reply_overdue"]
    # DESK-9: every flag a filter; an overdue reply counts as an SLA breach in the list
    for flag in ("sla_reply_overdue", "sla_breached"):
        assert [t["id"] for t in (await desk.get("/api/tickets", **{flag: "true"}))["items"]] == [tid]
        assert tid not in [t["id"] for t in (await desk.get("/api/tickets", **{flag: "false"}))["items"]]
    assert await sweep_at(db, t0 + timedelta(minutes=91)) == 1  # the second message's own deadline
    breaches = [d for k, d in await history(desk, tid) if k == "sla_breached"]
    assert [(d["clock"], d["seconds"]) for d in breaches] == [("reply", 61 * 60), ("reply", 61 * 60)]
    assert len({d["comment_id"] for d in breaches}) == 2

    await desk.post(f"/api/tickets/{tid}/comments", {"body": "Technician on the way", "public": True})
    shown = await desk.get(f"/api/tickets/{tid}")
    assert shown["reply_due_at"] is None and not shown["flags"]["sla_reply_overdue"]
    assert [k for k, _ in await history(desk, tid)].count("sla_breached") == 2  # not recorded again


async def test_desk5_a_reply_in_time_is_recorded_as_met(
    sla: Sla, desk: Desk, db: Database, tenant: Tenant
) -> None:
    """DESK-5: answered before its deadline: ``sla_met`` for the reply clock; a private note is no
    reply; a rule's reply target wins over the account's."""
    await sla.settings(reply_minutes=60)
    await sla.rule(name="vip reply", priority="high", reply_minutes=10)
    contact = await desk.contact()
    ticket = await desk.ticket(contact_id=contact["id"], priority="high")
    t0 = datetime.now(UTC)
    await client_says(db, tenant, ticket["id"], contact["id"], "Hello?", t0)
    assert at((await desk.get(f"/api/tickets/{ticket['id']}"))["reply_due_at"]) == t0 + timedelta(minutes=10)
    await desk.post(f"/api/tickets/{ticket['id']}/comments", {"body": "internal note"})
    assert (await desk.get(f"/api/tickets/{ticket['id']}"))["reply_due_at"] is not None
    await desk.post(f"/api/tickets/{ticket['id']}/comments", {"body": "On it", "public": True})
    sla_events = [(k, d["clock"]) for k, d in await history(desk, ticket["id"]) if k.startswith("sla_")]
    assert sla_events == [("sla_met", "reply")]  # no reaction target here, so no reaction event


async def test_desk5_reaction_and_resolution_breaches_fire_on_their_own(
    sla: Sla, desk: Desk, db: Database
) -> None:
    """DESK-5: computed deadlines are what the sweeper watches: past them the breach flags and
    history events appear without anyone typing a deadline."""
    await sla.settings(reaction_minutes=30, resolution_minutes=60)
    ticket = await desk.ticket()
    async with db.sessionmaker() as session, session.begin():
        result = await sweep(session, at(ticket["created_at"]) + timedelta(minutes=61))
    assert (result.reaction_breached, result.resolution_breached) >= (1, 1)
    shown = await desk.get(f"/api/tickets/{ticket['id']}")
    assert shown["flags"]["sla_reaction_breached"] and shown["flags"]["sla_resolution_breached"]
    clocks = [d["clock"] for k, d in await history(desk, ticket["id"]) if k == "sla_breached"]
    assert sorted(clocks) == ["reaction", "resolution"]


# --- the admin API -----------------------------------------------------------------------------


async def test_desk5_admin_api_refuses_bad_input_with_problem_json(
    sla: Sla, desk: Desk, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    """DESK-5: unknown time zone, overlapping or backwards hours, a rule without a target or naming
    another account's company, a holiday twice: problem JSON with a stable code; engineers read
    but do not change."""

    async def refused(method: str, path: str, body: Any, status: int, code: str) -> None:
        response = await client.request(method, f"/api/sla{path}", json=body, headers=tenant.admin.headers)
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == code

    await refused("PATCH", "/settings", {"time_zone": "Mars/Base"}, 422, "unknown_time_zone")
    overlapping = {"mon": [{"start": "09:00", "end": "13:00"}, {"start": "12:00", "end": "18:00"}]}
    await refused("PATCH", "/settings", {"working_hours": overlapping}, 422, "invalid_working_hours")
    await refused(
        "PATCH",
        "/settings",
        {"working_hours": {"mon": [{"start": "18:00", "end": "09:00"}]}},
        422,
        "invalid_working_hours",
    )
    await refused("PATCH", "/settings", {"working_hours": {}}, 422, "invalid_working_hours")
    await refused(
        "PATCH",
        "/settings",
        {"working_hours": {"mon": [{"start": "25:00", "end": "26:00"}]}},
        400,
        "validation_error",
    )
    await refused("POST", "/rules", {"name": "empty", "priority": "high"}, 422, "rule_without_target")
    foreign = (
        await client.post("/api/companies", json={"name": "Theirs"}, headers=other_tenant.dispatcher.headers)
    ).json()
    await refused(
        "POST",
        "/rules",
        {"name": "x", "company_id": foreign["id"], "reaction_minutes": 5},
        422,
        "company_not_found",
    )
    await refused(
        "POST", "/rules", {"name": "x", "object_id": 10**9, "reaction_minutes": 5}, 422, "object_not_found"
    )
    await sla.call("POST", "/holidays", {"day": "2027-01-01", "name": "New Year"}, status=201)
    await refused("POST", "/holidays", {"day": "2027-01-01"}, 409, "holiday_exists")
    await refused("GET", "/rules/999999", None, 404, "sla_rule_not_found")
    await refused("DELETE", "/holidays/999999", None, 404, "holiday_not_found")
    engineer = tenant.engineer.headers
    assert (await client.get("/api/sla/settings", headers=engineer)).status_code == 200
    response = await client.patch("/api/sla/settings", json={"reply_minutes": 5}, headers=engineer)
    assert response.status_code == 403 and response.json()["code"] == "role_required"


async def test_desk5_admin_api_crud(sla: Sla) -> None:
    """DESK-5: rules and holidays are listed, read, changed and deleted; rule order is by
    position; holidays by date and by year."""
    first = await sla.rule(name="first", reaction_minutes=10)
    second = await sla.rule(name="second", reaction_minutes=20)
    assert second["position"] > first["position"]
    moved = await sla.call("PATCH", f"/rules/{second['id']}", {"position": 0, "calendar": "round_the_clock"})
    assert moved["calendar"] == "round_the_clock"
    assert [r["name"] for r in await sla.call("GET", "/rules")] == ["second", "first"]
    await sla.call("PATCH", f"/rules/{second['id']}", {"reaction_minutes": None}, status=422)
    await sla.call("DELETE", f"/rules/{second['id']}", status=204)
    await sla.call("GET", f"/rules/{second['id']}", status=404)
    assert [r["id"] for r in await sla.call("GET", "/rules")] == [first["id"]]

    may = await sla.call("POST", "/holidays", {"day": "2027-05-01", "name": "Spring"}, status=201)
    await sla.call("POST", "/holidays", {"day": "2026-12-31", "name": "Eve"}, status=201)
    assert [h["day"] for h in await sla.call("GET", "/holidays")] == ["2026-12-31", "2027-05-01"]
    assert [h["name"] for h in await sla.call("GET", "/holidays?year=2027")] == ["Spring"]
    await sla.call("PATCH", f"/holidays/{may['id']}", {"day": "2026-12-31"}, status=409)
    moved_day = await sla.call("PATCH", f"/holidays/{may['id']}", {"day": "2027-05-09", "name": "Victory"})
    assert moved_day == {"id": may["id"], "day": "2027-05-09", "name": "Victory"}
    await sla.call("DELETE", f"/holidays/{may['id']}", status=204)
    assert [h["day"] for h in await sla.call("GET", "/holidays")] == ["2026-12-31"]
    cleared = await sla.settings(working_hours={"sat": [{"start": "10:00", "end": "14:00"}]})
    assert (
        cleared["working_hours"]["sat"] == [{"start": "10:00", "end": "14:00"}]
        and cleared["working_hours"]["mon"] == []
    )
    assert (await sla.settings(working_hours=None))["working_hours"] is None


# --- races (PostgreSQL) --------------------------------------------------------------------------


async def test_desk5_concurrent_sweepers_flag_a_reply_once(
    sla: Sla, desk: Desk, db: Database, tenant: Tenant
) -> None:
    """DESK-5 (race): sweepers running at once flag each overdue message once, with one history
    event each."""
    await sla.settings(reply_minutes=5)
    contact = await desk.contact()
    ticket = await desk.ticket(contact_id=contact["id"])
    t0 = at(ticket["created_at"])
    for n in range(3):
        await client_says(db, tenant, ticket["id"], contact["id"], f"message {n}", t0 + timedelta(seconds=n))
    flagged = await asyncio.gather(*(sweep_at(db, t0 + timedelta(minutes=10)) for _ in range(4)))
    assert sum(flagged) == 3
    assert [k for k, _ in await history(desk, ticket["id"])].count("sla_breached") == 3


async def test_desk5_concurrent_first_settings_changes_both_apply(
    sla: Sla, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-5 (race): two administrators saving the settings for the first time at once both
    succeed (the settings row is created once)."""
    answers = await asyncio.gather(
        client.patch("/api/sla/settings", json={"reply_minutes": 30}, headers=tenant.admin.headers),
        client.patch("/api/sla/settings", json={"time_zone": "Europe/Moscow"}, headers=tenant.admin.headers),
    )
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    final = await sla.call("GET", "/settings")
    assert (final["reply_minutes"], final["time_zone"]) == (30, "Europe/Moscow")


async def test_desk5_computed_deadlines_cost_two_statements_at_creation(
    sla: Sla, desk: Desk, db: Database
) -> None:
    """DESK-5 (throughput): with rules, working hours and holidays set, creating a ticket costs two
    statements more than without any SLA (the holidays and the deadlines' UPDATE); the rule and
    settings come in the statement every creation pays."""
    await desk.ticket()  # sign-in checked and cached, as for the two counted below
    with counting_statements(db) as plain:
        await desk.ticket()
    await sla.settings(
        time_zone="Europe/Moscow",
        working_hours={"mon": [{"start": "09:00", "end": "18:00"}]},
        reaction_minutes=60,
    )
    await sla.rule(name="critical", priority="critical", reaction_minutes=15, resolution_minutes=240)
    await sla.call("POST", "/holidays", {"day": "2027-01-01"}, status=201)
    with counting_statements(db) as computed:
        made = await desk.ticket(priority="critical")
    assert made["reaction_due_at"] is not None and made["resolution_due_at"] is not None
    assert len(computed) <= len(plain) + 2, "\n\n".join(computed)


async def test_desk5_the_same_holiday_added_twice_at_once_is_stored_once(
    sla: Sla, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-5 (race): two administrators adding the same date at once: one holiday, the other
    request refused with a problem (409), never a 500."""
    answers = await asyncio.gather(
        *(
            client.post(
                "/api/sla/holidays",
                json={"day": "2028-03-08", "name": f"Day {n}"},
                headers=tenant.admin.headers,
            )
            for n in range(2)
        )
    )
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 409)
    assert refused.json()["code"] in ("holiday_exists", "concurrent_conflict")
    assert [h["day"] for h in await sla.call("GET", "/holidays")] == ["2028-03-08"]
