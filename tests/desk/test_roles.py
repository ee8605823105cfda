"""DESK-12 roles and routing through the HTTP API: what engineers see, deactivated employees,
default responsibles, first-reply assignment (with its race on PostgreSQL)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.conftest import PASSWORD, Tenant
from tests.desk.conftest import Desk


async def _employee(desk: Desk, name: str, role: str = "engineer") -> int:
    body = {
        "name": name,
        "email": f"{name.lower()}@{desk.tenant.slug}.test",
        "role": role,
        "password": PASSWORD,
    }
    return int((await desk.post("/api/employees", body, headers=desk.tenant.admin.headers))["id"])


async def _patch(
    desk: Desk, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    return await desk.client.patch(path, json=body, headers=headers or desk.tenant.admin.headers)


async def _list_ids(desk: Desk, headers: dict[str, str], **params: Any) -> list[int]:
    response = await desk.client.get("/api/tickets", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return sorted(t["id"] for t in response.json()["items"])


async def test_desk12_engineers_see_only_tickets_they_take_part_in(
    desk: Desk, tenant: Tenant, other_tenant: Tenant
) -> None:
    """DESK-12: an engineer lists, searches and opens the tickets they are responsible for,
    execute, observe or created; any other answers 404 like another account's ticket.
    Dispatchers and administrators see all; the account's option lets engineers see all."""
    me = tenant.engineer
    responsible = await desk.ticket(title="Pump A", responsible_id=me.id)
    executing = await desk.ticket(title="Pump B", executor_ids=[me.id])
    observing = await desk.ticket(title="Pump C", observer_ids=[me.id])
    created = await desk.post("/api/tickets", {"title": "Pump D"}, headers=me.headers)
    hidden = await desk.ticket(title="Pump E", responsible_id=tenant.dispatcher.id)
    theirs = await Desk(desk.client, other_tenant).ticket(title="Pump F")
    mine = sorted(t["id"] for t in (responsible, executing, observing, created))
    everything = sorted([*mine, hidden["id"]])

    assert await _list_ids(desk, me.headers) == mine
    assert await _list_ids(desk, me.headers, q="pump") == mine
    assert await _list_ids(desk, me.headers, q=str(hidden["number"])) == []
    assert await _list_ids(desk, tenant.dispatcher.headers) == everything
    assert await _list_ids(desk, tenant.admin.headers, q="pump") == everything
    for ticket_id in (hidden["id"], theirs["id"]):
        for path in ("", "/comments", "/history", "/files"):
            response = await desk.client.get(f"/api/tickets/{ticket_id}{path}", headers=me.headers)
            assert (response.status_code, response.json()["code"]) == (404, "ticket_not_found")
        changed = await desk.client.post(
            f"/api/tickets/{ticket_id}/status",
            json={"status": "cancelled", "comment": "x"},
            headers=me.headers,
        )
        assert (changed.status_code, changed.json()["code"]) == (404, "ticket_not_found")

    assert (await _patch(desk, "/api/account", {"engineers_see_all": True})).json()[
        "engineers_see_all"
    ] is True
    assert await _list_ids(desk, me.headers) == everything
    assert (await desk.client.get(f"/api/tickets/{hidden['id']}", headers=me.headers)).status_code == 200
    refused = await _patch(desk, "/api/account", {"engineers_see_all": False}, headers=me.headers)
    assert refused.status_code == 403


async def test_desk12_deactivated_employee_cannot_be_made_responsible(desk: Desk, tenant: Tenant) -> None:
    """DESK-12: a deactivated employee is refused as responsible (new ticket, reassignment,
    default responsible of a contact or object) with 422 ``employee_inactive``."""
    gone = await _employee(desk, "Gone")
    assert (await _patch(desk, f"/api/employees/{gone}", {"active": False})).status_code == 200
    ticket = await desk.ticket()
    refusals = [
        await desk.client.post(
            "/api/tickets", json={"title": "x", "responsible_id": gone}, headers=desk.headers
        ),
        await desk.client.patch(
            f"/api/tickets/{ticket['id']}", json={"responsible_id": gone}, headers=desk.headers
        ),
        await desk.client.post(
            "/api/contacts", json={"name": "Olga", "default_responsible_id": gone}, headers=desk.headers
        ),
        await desk.client.post(
            "/api/objects",
            json={"number": "OB-9", "name": "Boiler", "default_responsible_id": gone},
            headers=desk.headers,
        ),
    ]
    for response in refusals:
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "employee_inactive"
    assert (await desk.get(f"/api/tickets/{ticket['id']}"))["responsible_id"] is None


async def test_desk12_deactivating_a_holder_of_open_tickets_is_refused_with_the_list(
    desk: Desk, tenant: Tenant
) -> None:
    """DESK-12: deactivating an employee still responsible for open tickets is refused (409
    ``employee_holds_open_tickets``) with the tickets to reassign; once reassigned, it works."""
    holder = await _employee(desk, "Holder")
    first = await desk.ticket(responsible_id=holder)
    second = await desk.ticket(responsible_id=holder)
    done = await desk.ticket(responsible_id=holder)
    await desk.status(done["id"], "cancelled", comment="Duplicate")
    refused = await _patch(desk, f"/api/employees/{holder}", {"active": False})
    assert refused.status_code == 409 and refused.json()["code"] == "employee_holds_open_tickets"
    assert refused.json()["tickets"] == [
        {"id": first["id"], "number": first["number"]},
        {"id": second["id"], "number": second["number"]},
    ]
    assert (await desk.get(f"/api/employees/{holder}"))["active"] is True
    for ticket in (first, second):
        moved = await _patch(desk, f"/api/tickets/{ticket['id']}", {"responsible_id": tenant.engineer.id})
        assert moved.status_code == 200, moved.text
    deactivated = await _patch(desk, f"/api/employees/{holder}", {"active": False})
    assert deactivated.status_code == 200 and deactivated.json()["active"] is False


async def test_desk12_default_responsible_object_then_contact_then_company_manager(
    desk: Desk, tenant: Tenant
) -> None:
    """DESK-12: a new ticket without a responsible gets its object's default responsible, else its
    contact's, else its company's responsible manager; a deactivated default is passed over; a
    named responsible wins."""
    manager, contact_default, object_default = [await _employee(desk, n) for n in ("Manager", "Cdef", "Odef")]
    company = await desk.post("/api/companies", {"name": "Acme", "manager_id": manager})
    contact = await desk.contact(company_id=company["id"], default_responsible_id=contact_default)
    assert contact["default_responsible_id"] == contact_default
    obj = await desk.object(default_responsible_id=object_default)
    assert obj["default_responsible_id"] == object_default

    by_object = await desk.ticket(object_id=obj["id"], contact_id=contact["id"])
    by_contact = await desk.ticket(contact_id=contact["id"])
    by_company = await desk.ticket(company_id=company["id"])
    named = await desk.ticket(object_id=obj["id"], responsible_id=tenant.engineer.id)
    nobody = await desk.ticket()
    assert [t["responsible_id"] for t in (by_object, by_contact, by_company, named, nobody)] == [
        object_default,
        contact_default,
        manager,
        tenant.engineer.id,
        None,
    ]
    history = (await desk.get(f"/api/tickets/{by_object['id']}/history"))["items"]
    assert history[0]["data"]["responsible_id"] == object_default

    # The object's default leaves (after handing over its tickets): the contact's default follows.
    await _patch(desk, f"/api/tickets/{by_object['id']}", {"responsible_id": tenant.engineer.id})
    assert (await _patch(desk, f"/api/employees/{object_default}", {"active": False})).status_code == 200
    after = await desk.ticket(object_id=obj["id"], contact_id=contact["id"])
    assert after["responsible_id"] == contact_default
    cleared = await _patch(desk, f"/api/objects/{obj['id']}", {"default_responsible_id": None}, desk.headers)
    assert cleared.status_code == 200 and cleared.json()["default_responsible_id"] is None


async def _reply(desk: Desk, ticket_id: int, headers: dict[str, str], public: bool = True) -> httpx.Response:
    return await desk.client.post(
        f"/api/tickets/{ticket_id}/comments", json={"body": "On my way", "public": public}, headers=headers
    )


async def test_desk12_first_replier_becomes_responsible_when_the_account_asks(
    desk: Desk, tenant: Tenant
) -> None:
    """DESK-12: with ``first_reply_assigns`` on, the first employee's public reply to an unassigned
    ticket makes them responsible (history says so); a private note or a later reply by someone
    else changes nothing; with the option off, replies assign nobody."""
    before = await desk.ticket()
    assert (await _reply(desk, before["id"], tenant.dispatcher.headers)).status_code == 201
    assert (await desk.get(f"/api/tickets/{before['id']}"))["responsible_id"] is None

    assert (await _patch(desk, "/api/account", {"first_reply_assigns": True})).json()["first_reply_assigns"]
    ticket = await desk.ticket()
    assert (await _reply(desk, ticket["id"], tenant.admin.headers, public=False)).status_code == 201
    assert (await desk.get(f"/api/tickets/{ticket['id']}"))["responsible_id"] is None
    assert (await _reply(desk, ticket["id"], tenant.dispatcher.headers)).status_code == 201
    assert (await _reply(desk, ticket["id"], tenant.admin.headers)).status_code == 201
    assert (await desk.get(f"/api/tickets/{ticket['id']}"))["responsible_id"] == tenant.dispatcher.id
    assignments = [
        e for e in (await desk.get(f"/api/tickets/{ticket['id']}/history"))["items"] if e["kind"] == "assignment"
    ]
    assert [(e["actor_id"], e["data"]) for e in assignments] == [
        (tenant.dispatcher.id, {"responsible_id": [None, tenant.dispatcher.id], "reason": "first_reply"})
    ]


async def test_desk12_two_first_replies_at_once_assign_exactly_one(desk: Desk, tenant: Tenant) -> None:
    """DESK-12 race (run on PostgreSQL too): two employees reply to the same unassigned ticket at
    the same moment; exactly one becomes responsible and history records one assignment."""
    await _patch(desk, "/api/account", {"first_reply_assigns": True})
    for _ in range(3):
        ticket = await desk.ticket()
        replies = await asyncio.gather(
            _reply(desk, ticket["id"], tenant.dispatcher.headers),
            _reply(desk, ticket["id"], tenant.admin.headers),
        )
        assert [r.status_code for r in replies] == [201, 201]
        responsible = (await desk.get(f"/api/tickets/{ticket['id']}"))["responsible_id"]
        assert responsible in (tenant.dispatcher.id, tenant.admin.id)
        history = (await desk.get(f"/api/tickets/{ticket['id']}/history"))["items"]
        assert [e["actor_id"] for e in history if e["kind"] == "assignment"] == [responsible]
