"""Issue 12, one API convention on the desk: ticket sort and paging, tickets by number, text search
over descriptions and public comments, history with names, status-change comments in the thread."""

from __future__ import annotations

from typing import Any

from tests.conftest import Tenant
from tests.desk.conftest import Desk


async def _walk(desk: Desk, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list, page by page, following ``next_cursor``."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(50):
        page = await desk.get(path, **params, **({"cursor": cursor} if cursor else {}))
        assert set(page) == {"items", "next_cursor"}
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the pages never ended")


async def test_ticket_sort_orders_and_pages_without_gaps(desk: Desk) -> None:
    """DESK-9, issue 12: ``sort`` by priority, number or last change, ascending or with ``-``
    descending; paging through a sorted list gives every ticket once in that order."""
    made = [
        await desk.ticket(title=f"T{i}", priority=priority)
        for i, priority in enumerate(["low", "critical", "normal", "high", "critical", "low"])
    ]
    by_priority = await _walk(desk, "/api/tickets", sort="-priority", limit=2)
    rank = {"low": 0, "normal": 1, "high": 2, "critical": 3}
    assert [(t["priority"], t["id"]) for t in by_priority] == sorted(
        ((t["priority"], t["id"]) for t in made), key=lambda p: (-rank[p[0]], -p[1])
    )
    by_number = await _walk(desk, "/api/tickets", sort="number", limit=4)
    assert [t["number"] for t in by_number] == sorted(t["number"] for t in made)
    await desk.client.patch(f"/api/tickets/{made[0]['id']}", json={"title": "Touched"}, headers=desk.headers)
    recent = await _walk(desk, "/api/tickets", sort="-updated_at", limit=5)
    assert recent[0]["id"] == made[0]["id"] and len(recent) == len(made)
    default = await _walk(desk, "/api/tickets", limit=4)
    assert [t["id"] for t in default] == sorted((t["id"] for t in made), reverse=True)


async def test_cursors_belong_to_their_list_and_order(desk: Desk) -> None:
    """Issue 12: a cursor is opaque; one made up, or given out for another order, is a 400
    ``invalid_cursor`` problem, never a wrong page or a 500."""
    for _ in range(3):
        await desk.ticket()
    by_number = await desk.get("/api/tickets", sort="number", limit=1)
    refused = await desk.get("/api/tickets", expect=400, sort="-updated_at", cursor=by_number["next_cursor"])
    assert refused["code"] == "invalid_cursor"
    for junk in ("abc", "W10", "WyJpZCIsInRleHQiXQ", "!!"):
        assert (await desk.get("/api/tickets", expect=400, cursor=junk))["code"] == "invalid_cursor", junk


async def test_unknown_query_parameters_are_refused(desk: Desk) -> None:
    """Issue 12: a misspelt filter is a 400 ``unknown_query_parameter`` that names it, instead of
    a silently unfiltered list."""
    refused = await desk.get("/api/tickets", expect=400, stauts="open")
    assert refused["code"] == "unknown_query_parameter" and refused["unknown"] == ["stauts"]
    assert "status" in refused["allowed"]
    assert (await desk.get("/api/companies", expect=400, after_id=1))["code"] == "unknown_query_parameter"
    assert (await desk.get("/api/tickets/by-number/1", expect=400, x=1))["code"] == "unknown_query_parameter"


async def test_ticket_by_number(desk: Desk, other_tenant: Tenant) -> None:
    """Issue 12: ``GET /api/tickets/by-number/{n}`` finds the account's ticket #n; another
    account's numbers and numbers nobody has are 404 ``ticket_not_found``."""
    first = await desk.ticket(title="First")
    second = await desk.ticket(title="Second")
    found = await desk.get(f"/api/tickets/by-number/{second['number']}")
    assert (found["id"], found["title"]) == (second["id"], "Second")
    assert (await desk.get(f"/api/tickets/by-number/{first['number']}"))["id"] == first["id"]
    other = Desk(desk.client, other_tenant)
    assert (await other.get(f"/api/tickets/by-number/{first['number']}", expect=404))["code"] == (
        "ticket_not_found"
    )
    for missing in (999, 2**40):
        assert (await desk.get(f"/api/tickets/by-number/{missing}", expect=404))["code"] == "ticket_not_found"


async def test_text_search_covers_description_and_public_comments(desk: Desk, other_tenant: Tenant) -> None:
    """DESK-9, issue 12: ``q`` finds words of the description and of public comments; a private
    note's words do not find the ticket, and another account's tickets are never found."""
    by_description = await desk.ticket(title="Panel", description="Siren wire cut near the north gate")
    by_comment = await desk.ticket(title="Camera")
    await desk.post(
        f"/api/tickets/{by_comment['id']}/comments", {"body": "Replaced the PSU_7 fuse", "public": True}
    )
    private = await desk.ticket(title="Lock")
    await desk.post(f"/api/tickets/{private['id']}/comments", {"body": "Secret keypad code", "public": False})
    other = Desk(desk.client, other_tenant)
    await other.ticket(title="Theirs", description="Siren wire cut as well")

    async def found(q: str) -> list[int]:
        return [t["id"] for t in (await desk.get("/api/tickets", q=q))["items"]]

    assert await found("north GATE") == [by_description["id"]]
    assert await found("psu_7") == [by_comment["id"]]
    assert await found("psu%7") == []  # LIKE wildcards are text, not patterns
    assert await found("keypad") == []
    assert await found("siren wire") == [by_description["id"]]


async def test_history_names_people_and_status_comments_join_the_thread(desk: Desk, tenant: Tenant) -> None:
    """DESK-7, issue 12: history entries carry the names of the employees they mention (actor,
    responsible, executors) next to the ids; a comment given with a status change is also in the
    comment thread, as a staff note."""
    ticket = await desk.ticket(responsible_id=tenant.engineer.id)
    patched = await desk.client.patch(
        f"/api/tickets/{ticket['id']}",
        json={"responsible_id": tenant.admin.id, "executor_ids": [tenant.engineer.id]},
        headers=desk.headers,
    )
    assert patched.status_code == 200, patched.text
    await desk.status(ticket["id"], "in_progress")
    await desk.status(
        ticket["id"], "pending", comment="Waiting for the spare part", until="2099-01-01T00:00:00Z"
    )
    history = (await desk.get(f"/api/tickets/{ticket['id']}/history"))["items"]
    assignment = next(h for h in history if h["kind"] == "assignment")
    assert assignment["names"] == {
        str(tenant.dispatcher.id): tenant.dispatcher.name,
        str(tenant.engineer.id): tenant.engineer.name,
        str(tenant.admin.id): tenant.admin.name,
    }
    pending = next(h for h in history if h["kind"] == "status_changed" and h["data"]["to"] == "pending")
    assert pending["data"]["comment"] == "Waiting for the spare part"
    assert pending["names"] == {str(tenant.dispatcher.id): tenant.dispatcher.name}
    thread = (await desk.get(f"/api/tickets/{ticket['id']}/comments"))["items"]
    assert [(c["body"], c["public"], c["author_id"]) for c in thread] == [
        ("Waiting for the spare part", False, tenant.dispatcher.id)
    ]
