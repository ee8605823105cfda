"""Tickets through the HTTP API: fields, workflow refusals, comments, history, activity, rating."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from hub.db import Database, utcnow
from hub.desk import service
from hub.desk.actors import Actor
from hub.desk.events import CommentAdded, StatusChanged, TicketCreated, TicketUpdated, _subscribers
from hub.desk.schemas import TicketCreate
from tests.conftest import Tenant
from tests.desk.conftest import Desk


async def test_ticket_fields_and_sequential_numbers(desk: Desk, tenant: Tenant, other_tenant: Tenant) -> None:
    """DESK-3: per-account sequential numbers and every ticket field, stored and shown."""
    company = await desk.company()
    contact = await desk.contact(company_id=company["id"])
    obj = await desk.object(company_id=company["id"])
    due = (utcnow() + timedelta(hours=2)).isoformat()
    first = await desk.ticket(
        title="Gate does not open",
        description="Since morning",
        type="incident",
        priority="high",
        source="incoming_call",
        contact_id=contact["id"],
        object_id=obj["id"],
        responsible_id=tenant.engineer.id,
        executor_ids=[tenant.dispatcher.id, tenant.admin.id],
        observer_ids=[tenant.admin.id],
        reaction_due_at=due,
        resolution_due_at=due,
        repair_date="2026-12-01",
    )
    second = await desk.ticket()
    assert (first["number"], second["number"]) == (1, 2)
    assert first["company_id"] == company["id"]  # taken from the object
    assert first["executor_ids"] == sorted([tenant.dispatcher.id, tenant.admin.id])
    assert first["observer_ids"] == [tenant.admin.id]
    assert first["repair_date"] == "2026-12-01"
    assert first["status"] == "open" and first["created_by_kind"] == "employee"
    # Another account starts at 1 again.
    other = Desk(desk.client, other_tenant)
    assert (await other.ticket())["number"] == 1


async def test_more_than_four_executors_and_foreign_refs_refused(
    desk: Desk, tenant: Tenant, other_tenant: Tenant
) -> None:
    """DESK-3: at most 4 executors; another account's contact is refused like a missing one (DESK-1)."""
    response = await desk.client.post(
        "/api/tickets", json={"title": "x", "executor_ids": [1, 2, 3, 4, 5]}, headers=desk.headers
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    foreign = await Desk(desk.client, other_tenant).contact(name="Foreign")
    response = await desk.client.post(
        "/api/tickets", json={"title": "x", "contact_id": foreign["id"]}, headers=desk.headers
    )
    assert response.status_code == 422 and response.json()["code"] == "contact_not_found"


async def test_concurrent_creation_gives_distinct_numbers(
    db: Database, tenant: Tenant, client: httpx.AsyncClient
) -> None:
    """DESK-3: numbers stay unique and gap-free when tickets are created at the same time."""
    actor = Actor("employee", tenant.dispatcher.id, "D")

    async def one(i: int) -> int:
        async with db.sessionmaker() as session, session.begin():
            ticket = await service.create_ticket(session, tenant.id, actor, TicketCreate(title=f"t{i}"))
            return ticket.number

    numbers = await asyncio.gather(*(one(i) for i in range(12)))
    assert sorted(numbers) == list(range(1, 13))


async def test_workflow_refusals_are_problem_json(desk: Desk, tenant: Tenant) -> None:
    """DESK-4: in_progress needs a responsible, pending needs until and a comment, cancelled a
    comment; other transitions are refused with transition_not_allowed; an employee cannot close a
    resolved ticket by hand (a rating confirms it); closed is final."""
    t = await desk.ticket()
    tid = t["id"]
    assert (await desk.status(tid, "in_progress", 422))["code"] == "responsible_required"
    assert (await desk.status(tid, "resolved", 422))["code"] == "responsible_required"
    assert (await desk.status(tid, "pending", 422, comment="wait"))["code"] == "until_required"
    until = (utcnow() + timedelta(hours=1)).isoformat()
    assert (await desk.status(tid, "pending", 422, until=until))["code"] == "comment_required"
    past = (utcnow() - timedelta(hours=1)).isoformat()
    assert (await desk.status(tid, "pending", 422, until=past, comment="x"))["code"] == "until_in_past"
    assert (await desk.status(tid, "cancelled", 422))["code"] == "comment_required"
    refused = await desk.status(tid, "closed", 409)
    assert refused["code"] == "transition_not_allowed" and "in_progress" in refused["allowed"]
    assert (await desk.status(tid, "nonsense", 400))["code"] == "validation_error"

    response = await desk.client.patch(
        f"/api/tickets/{tid}", json={"responsible_id": tenant.engineer.id}, headers=desk.headers
    )
    assert response.status_code == 200
    await desk.status(tid, "in_progress")
    pending = await desk.status(tid, "pending", until=until, comment="Waiting for parts")
    assert pending["status_before_pending"] == "in_progress" and pending["pending_until"]
    await desk.status(tid, "resolved")
    await desk.status(tid, "reopened")
    await desk.status(tid, "resolved")
    # Closing is the client's confirmation, a rating or the auto-close timeout, or a dispatcher's
    # decision with a comment (DESK-4, tested in test_staff_close.py).
    assert (await desk.status(tid, "closed", 422))["code"] == "comment_required"
    closed = await desk.post(f"/api/tickets/{tid}/rating", {"score": 5}, status=200)
    assert closed["status"] == "closed" and closed["closed_at"]
    assert (await desk.status(tid, "reopened", 409))["code"] == "transition_not_allowed"
    history = (await desk.get(f"/api/tickets/{tid}/history"))["items"]
    changes = [(h["data"]["from"], h["data"]["to"]) for h in history if h["kind"] == "status_changed"]
    assert changes == [
        ("open", "in_progress"),
        ("in_progress", "pending"),
        ("pending", "resolved"),
        ("resolved", "reopened"),
        ("reopened", "resolved"),
        ("resolved", "closed"),
    ]
    assert [h for h in history if h["kind"] == "status_changed"][1]["data"]["comment"] == "Waiting for parts"


async def test_client_may_only_confirm_or_reopen(db: Database, tenant: Tenant, desk: Desk) -> None:
    """DESK-4: a client (contact) confirms or reopens a resolved ticket and nothing else; the
    history shows no client name (DESK-7)."""
    contact = await desk.contact()
    t = await desk.ticket(responsible_id=tenant.engineer.id, contact_id=contact["id"])
    client_actor = Actor("contact", contact["id"], "Ivan Petrov")
    async with db.sessionmaker() as session, session.begin():
        try:
            await service.change_status(session, tenant.id, t["id"], client_actor, "in_progress")
        except Exception as exc:
            assert getattr(exc, "code", None) == "transition_not_allowed_for_client"
        else:
            raise AssertionError("a client moved a ticket to in_progress")
    await desk.status(t["id"], "resolved")
    async with db.sessionmaker() as session, session.begin():
        await service.change_status(
            session, tenant.id, t["id"], client_actor, "reopened", comment="Still broken"
        )
    history = (await desk.get(f"/api/tickets/{t['id']}/history"))["items"]
    reopened = history[-1]
    assert reopened["actor_kind"] == "contact"
    assert reopened["actor_name"] is None and reopened["actor_id"] is None


async def test_comments_needs_reply_and_important(db: Database, tenant: Tenant, desk: Desk) -> None:
    """DESK-6: public and private comments with author kinds; a client's public comment flags
    needs_reply, an employee's public reply clears it; important clears when an employee opens it."""
    contact = await desk.contact()
    t = await desk.ticket(contact_id=contact["id"])
    tid = t["id"]
    async with db.sessionmaker() as session, session.begin():
        await service.add_comment(
            session,
            tenant.id,
            tid,
            Actor("contact", contact["id"], "Ivan"),
            "Any news?",
            public=True,
            important=True,
        )
    listed = await desk.get("/api/tickets", needs_reply="true")
    assert [i["id"] for i in listed["items"]] == [tid]
    assert listed["items"][0]["flags"]["important"] is True
    private = await desk.post(f"/api/tickets/{tid}/comments", {"body": "Call him back", "public": False})
    assert private["public"] is False and private["author_kind"] == "employee"
    assert (await desk.get("/api/tickets", needs_reply="true"))["items"]  # a private note is no reply
    opened = await desk.get(f"/api/tickets/{tid}")
    assert opened["flags"]["important"] is True  # shown as it was when opened...
    assert (await desk.get(f"/api/tickets/{tid}"))["flags"]["important"] is False  # ...then cleared
    await desk.post(f"/api/tickets/{tid}/comments", {"body": "Engineer is on the way", "public": True})
    assert not (await desk.get("/api/tickets", needs_reply="true"))["items"]
    comments = (await desk.get(f"/api/tickets/{tid}/comments"))["items"]
    assert [(c["author_kind"], c["public"], c["important"]) for c in comments] == [
        ("contact", True, False),
        ("employee", False, False),
        ("employee", True, False),
    ]
    # The public reply started the ticket: reaction clock stopped (DESK-5).
    assert (await desk.get(f"/api/tickets/{tid}"))["reacted_at"] is not None


async def test_events_are_emitted(db: Database, tenant: Tenant, desk: Desk) -> None:
    """The desk emits TicketCreated (with its context; call_id is bound by telephony, TEL-5), StatusChanged, CommentAdded (with
    pass_to_partner) and TicketUpdated for other domains to react to."""
    seen: list[tuple[str, object]] = []

    async def spy(session: object, event: object) -> None:
        if isinstance(event, TicketCreated):
            seen.append(("created", event.context.get("origin")))
        elif isinstance(event, StatusChanged):
            seen.append(("status", (event.old_status, event.new_status)))
        elif isinstance(event, CommentAdded):
            seen.append(("comment", event.context.get("pass_to_partner")))
        elif isinstance(event, TicketUpdated):
            seen.append(("updated", sorted(event.changes)))

    for kind in (TicketCreated, StatusChanged, CommentAdded, TicketUpdated):
        _subscribers.setdefault(kind, []).append(spy)
    try:
        async with db.sessionmaker() as session, session.begin():
            actor = Actor("employee", tenant.dispatcher.id, "D")
            ticket = await service.create_ticket(
                session, tenant.id, actor, TicketCreate(title="x"), context={"origin": 77}
            )
            await service.update_ticket(
                session, tenant.id, ticket.id, actor, {"responsible_id": tenant.engineer.id}
            )
            await service.change_status(session, tenant.id, ticket.id, actor, "in_progress")
        await desk.post(f"/api/tickets/{ticket.id}/comments", {"body": "to partner", "pass_to_partner": True})
    finally:
        for kind in (TicketCreated, StatusChanged, CommentAdded, TicketUpdated):
            _subscribers[kind].remove(spy)
    assert seen == [
        ("created", 77),
        ("updated", ["responsible_id"]),
        ("status", ("open", "in_progress")),
        ("comment", True),
    ]


async def test_history_of_assignment_rating_and_generic_kinds(
    db: Database, tenant: Tenant, desk: Desk
) -> None:
    """DESK-7: assignment, status with comment, rating and kinds other domains record."""
    contact = await desk.contact()
    t = await desk.ticket(contact_id=contact["id"])
    tid = t["id"]
    response = await desk.client.patch(
        f"/api/tickets/{tid}",
        json={
            "responsible_id": tenant.engineer.id,
            "executor_ids": [tenant.admin.id],
            "priority": "critical",
        },
        headers=desk.headers,
    )
    assert response.status_code == 200, response.text
    await desk.status(tid, "resolved", comment="Fixed the sensor")
    async with db.sessionmaker() as session, session.begin():
        ticket = await service.get_ticket(session, tenant.id, tid)
        await service.record_history(session, ticket, Actor.system("pbx"), "call_bound", {"call_id": 5})
    rated = await desk.post(f"/api/tickets/{tid}/rating", {"score": 5, "comment": "Quick"}, status=200)
    assert rated["status"] == "closed" and rated["rating_score"] == 5
    again = await desk.client.post(f"/api/tickets/{tid}/rating", json={"score": 4}, headers=desk.headers)
    assert again.status_code == 409 and again.json()["code"] == "already_rated"
    history = (await desk.get(f"/api/tickets/{tid}/history"))["items"]
    kinds = [h["kind"] for h in history]
    assert kinds == [
        "created",
        "assignment",
        "updated",
        "status_changed",
        "call_bound",
        "rated",
        "status_changed",
    ]
    assignment = history[1]
    assert assignment["data"]["responsible_id"] == [None, tenant.engineer.id]
    assert assignment["actor_name"] == tenant.dispatcher.name and assignment["created_at"]
    assert history[-1]["data"]["reason"] == "rating"


async def test_contact_activity_feed(db: Database, tenant: Tenant, other_tenant: Tenant, desk: Desk) -> None:
    """DESK-8: a contact's tickets and ratings (and what other domains add) newest first."""
    contact = await desk.contact()
    first = await desk.ticket(contact_id=contact["id"], title="First", responsible_id=tenant.engineer.id)
    await desk.ticket(contact_id=contact["id"], title="Second")
    await desk.status(first["id"], "resolved")
    await desk.post(f"/api/tickets/{first['id']}/rating", {"score": 4}, status=200)
    async with db.sessionmaker() as session, session.begin():
        await service.add_activity(session, tenant.id, contact["id"], "call", 99, "Incoming call, 2 min")
    feed = (await desk.get(f"/api/contacts/{contact['id']}/activity"))["items"]
    assert [(e["kind"], e["summary"]) for e in feed] == [
        ("call", "Incoming call, 2 min"),
        ("rating", "Rated ticket #1: 4/5"),
        ("ticket", "Ticket #2: Second"),
        ("ticket", "Ticket #1: First"),
    ]
    feed_path = f"/api/contacts/{contact['id']}/activity"
    head = await desk.get(feed_path, limit=2)
    page = await desk.get(feed_path, limit=2, cursor=head["next_cursor"])
    assert [e["id"] for e in page["items"]] == [feed[2]["id"], feed[3]["id"]]
    assert page["next_cursor"] is None
    other = Desk(desk.client, other_tenant)
    assert (await other.get(f"/api/contacts/{contact['id']}/activity", expect=404))[
        "code"
    ] == "contact_not_found"


async def test_foreign_ticket_is_not_found(desk: Desk, other_tenant: Tenant) -> None:
    """DESK-1 for the desk: another account's ticket id is a 404 ticket_not_found everywhere."""
    t = await desk.ticket()
    other = Desk(desk.client, other_tenant)
    for path in ("", "/comments", "/history", "/files"):
        assert (await other.get(f"/api/tickets/{t['id']}{path}", expect=404))["code"] == "ticket_not_found"
    response = await desk.client.post(
        f"/api/tickets/{t['id']}/status", json={"status": "cancelled", "comment": "x"}, headers=other.headers
    )
    assert response.status_code == 404


async def test_responsible_cannot_be_removed_in_progress_or_resolved(desk: Desk, tenant: Tenant) -> None:
    """DESK-4: in_progress and resolved need a responsible employee, so removing it there is
    refused with 422 responsible_required (and the ticket keeps it); while open it may go."""
    t = await desk.ticket(responsible_id=tenant.engineer.id)
    tid = t["id"]
    path = f"/api/tickets/{tid}"
    for status in ("in_progress", "resolved"):
        await desk.status(tid, status)
        response = await desk.client.patch(path, json={"responsible_id": None}, headers=desk.headers)
        assert response.status_code == 422 and response.json()["code"] == "responsible_required"
        assert (await desk.get(path))["responsible_id"] == tenant.engineer.id
    await desk.status(tid, "reopened")
    response = await desk.client.patch(path, json={"responsible_id": None}, headers=desk.headers)
    assert response.status_code == 200 and response.json()["responsible_id"] is None


async def test_feed_gets_tickets_linked_later_and_pages_by_time(
    db: Database, tenant: Tenant, desk: Desk
) -> None:
    """DESK-8: a ticket whose contact is set (or changed) later enters that contact's feed; the
    feed is newest first by time even when an entry is written late (a call logged when it
    ended), and paging follows that order without skipping or repeating entries."""
    contact = await desk.contact()
    t = await desk.ticket(title="Linked later")
    response = await desk.client.patch(
        f"/api/tickets/{t['id']}", json={"contact_id": contact["id"]}, headers=desk.headers
    )
    assert response.status_code == 200, response.text
    feed = (await desk.get(f"/api/contacts/{contact['id']}/activity"))["items"]
    assert [(e["kind"], e["ref_id"]) for e in feed] == [("ticket", t["id"])]
    newer = await desk.ticket(title="Newer", contact_id=contact["id"])
    async with db.sessionmaker() as session, session.begin():
        # Written last, but the call happened before both tickets.
        await service.add_activity(
            session, tenant.id, contact["id"], "call", 7, "Earlier call", now=utcnow() - timedelta(days=1)
        )
    feed = (await desk.get(f"/api/contacts/{contact['id']}/activity"))["items"]
    assert [e["ref_id"] for e in feed] == [newer["id"], t["id"], 7]
    feed_path = f"/api/contacts/{contact['id']}/activity"
    first = await desk.get(feed_path, limit=1)
    rest = await desk.get(feed_path, limit=5, cursor=first["next_cursor"])
    assert [e["ref_id"] for e in first["items"] + rest["items"]] == [newer["id"], t["id"], 7]
    assert rest["next_cursor"] is None
    second = await desk.get(feed_path, limit=1, cursor=(await desk.get(feed_path, limit=2))["next_cursor"])
    assert [e["ref_id"] for e in second["items"]] == [7]
