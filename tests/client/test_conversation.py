"""DESK-11: the client's side of the conversation, through the client app's HTTP API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from litestar import Litestar
from sqlalchemy import select

from hub.db import Database
from hub.live import LiveEvent, until_logged
from hub.monitoring.subscribers import app_channel
from hub.outbox.models import OutboxMessage
from tests.conftest import Tenant
from tests.monitoring.helpers import (
    app_ticket,
    dispatcher_ticket,
    make_site,
    resolve,
    staff_comment,
    update,
)
from tests.notifications.helpers import configure, make_app_user


async def _upload(
    client: httpx.AsyncClient, headers: dict[str, str], path: str, name: str, **data: str
) -> httpx.Response:
    return await client.post(
        path, files={"file": (name, b"bytes of " + name.encode(), "text/plain")}, data=data, headers=headers
    )


async def _ticket(client: httpx.AsyncClient, tenant: Tenant, ticket_id: int) -> dict[str, Any]:
    got = await client.get(f"/api/tickets/{ticket_id}", headers=tenant.dispatcher.headers)
    assert got.status_code == 200, got.text
    return dict(got.json())


async def test_desk_11_client_reads_public_thread_and_public_files_only(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-11, DESK-6: the client reads the public comments and public files; private comments
    and staff files not marked public never reach the client (not even by id)."""
    site = await make_site(client, tenant)
    ticket_id = await app_ticket(client, site, site.user)
    await staff_comment(client, tenant, ticket_id, "We will come on Monday", public=True)
    await staff_comment(client, tenant, ticket_id, "Client owes us for the last visit", public=False)
    base = f"/api/tickets/{ticket_id}/files"
    private = await _upload(client, tenant.dispatcher.headers, base, "internal-notes.txt")
    public = await _upload(client, tenant.dispatcher.headers, base, "schedule.txt", public="true")
    assert private.status_code == 201 and private.json()[0]["public"] is False  # DESK-6: private by default
    assert public.status_code == 201 and public.json()[0]["public"] is True

    thread = await client.get(f"/api/app/tickets/{ticket_id}/comments", headers=site.user.headers)
    assert thread.status_code == 200, thread.text
    assert [(c["body"], c["author"], c["author_name"]) for c in thread.json()] == [
        ("We will come on Monday", "staff", tenant.dispatcher.name)
    ]
    files = await client.get(f"/api/app/tickets/{ticket_id}/files", headers=site.user.headers)
    assert [f["filename"] for f in files.json()] == ["schedule.txt"]
    got = await client.get(
        f"/api/app/tickets/{ticket_id}/files/{public.json()[0]['id']}", headers=site.user.headers
    )
    assert got.status_code == 200 and got.content == b"bytes of schedule.txt"
    hidden = await client.get(
        f"/api/app/tickets/{ticket_id}/files/{private.json()[0]['id']}", headers=site.user.headers
    )
    assert hidden.status_code == 404 and hidden.json()["code"] == "file_not_found"
    assert "owes us" not in thread.text and "internal-notes" not in files.text


async def test_desk_11_client_reply_with_files_needs_reply_and_tells_staff(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-11: the client replies with text and files; the ticket becomes *needs reply*, the
    files are public, and the staff handling it are notified (outbox)."""
    await configure(
        client,
        tenant,
        "email",
        {"host": "127.0.0.1", "port": 25, "sender": "desk@alpha.test", "security": "none"},
    )
    site = await make_site(client, tenant)
    ticket_id = await app_ticket(client, site, site.user)
    await update(app.state.db, tenant, ticket_id, {"responsible_id": tenant.engineer.id})
    await staff_comment(client, tenant, ticket_id, "Which zone?", public=True)
    assert (await _ticket(client, tenant, ticket_id))["flags"]["needs_reply"] is False

    replied = await client.post(
        f"/api/app/tickets/{ticket_id}/comments",
        json={"body": "Zone 3, photo attached"},
        headers=site.user.headers,
    )
    assert replied.status_code == 201, replied.text
    reply = replied.json()
    assert (reply["author"], reply["mine"], reply["author_name"]) == ("client", True, None)
    photo = await _upload(
        client,
        site.user.headers,
        f"/api/app/tickets/{ticket_id}/files",
        "zone3.jpg",
        comment_id=str(reply["id"]),
    )
    assert photo.status_code == 201, photo.text
    card = await _ticket(client, tenant, ticket_id)
    assert card["flags"]["needs_reply"] is True
    staff_files = await client.get(f"/api/tickets/{ticket_id}/files", headers=tenant.dispatcher.headers)
    assert [(f["filename"], f["public"], f["comment_id"]) for f in staff_files.json()["items"]] == [
        ("zone3.jpg", True, reply["id"])
    ]
    thread = (await client.get(f"/api/app/tickets/{ticket_id}/comments", headers=site.user.headers)).json()
    assert [f["filename"] for f in thread[-1]["files"]] == ["zone3.jpg"]
    async with app.state.db.sessionmaker() as session:
        mails = list(
            await session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "notify.email"))
        )
    told = [m.payload["to"] for m in mails if m.payload["event"] == "public_comment"]
    assert told == [tenant.engineer.email]
    # A file on somebody else's comment is refused (it would take on that comment's privacy).
    staff_note = await staff_comment(client, tenant, ticket_id, "private", public=False)
    refused = await _upload(
        client, site.user.headers, f"/api/app/tickets/{ticket_id}/files", "x.txt", comment_id=str(staff_note)
    )
    assert refused.status_code == 422 and refused.json()["code"] == "comment_not_found"


async def test_desk_11_client_reply_returns_a_ticket_pending_for_the_client(
    client: httpx.AsyncClient, tenant: Tenant, app: Litestar
) -> None:
    """DESK-11: staff put the ticket in pending waiting for the client; the client's reply returns
    it to its earlier state at once (a pending ticket waiting for something else stays pending)."""
    site = await make_site(client, tenant)
    ticket_id = await app_ticket(client, site, site.user)
    await update(app.state.db, tenant, ticket_id, {"responsible_id": tenant.engineer.id})
    headers = tenant.dispatcher.headers
    until = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    for status in ("in_progress",):
        assert (
            await client.post(f"/api/tickets/{ticket_id}/status", json={"status": status}, headers=headers)
        ).status_code == 200
    waiting = await client.post(
        f"/api/tickets/{ticket_id}/status",
        json={"status": "pending", "until": until, "comment": "Send us a photo", "waiting_for_client": True},
        headers=headers,
    )
    assert waiting.status_code == 200 and waiting.json()["pending_for_client"] is True
    await client.post(
        f"/api/app/tickets/{ticket_id}/comments", json={"body": "Here it is"}, headers=site.user.headers
    )
    card = await _ticket(client, tenant, ticket_id)
    assert (card["status"], card["pending_for_client"], card["flags"]["needs_reply"]) == (
        "in_progress",
        False,
        True,
    )
    history = (await client.get(f"/api/tickets/{ticket_id}/history", headers=headers)).json()["items"]
    assert history[-1]["data"] == {"from": "pending", "to": "in_progress", "reason": "client_replied"}

    parts = await client.post(
        f"/api/tickets/{ticket_id}/status",
        json={"status": "pending", "until": until, "comment": "Waiting for parts"},
        headers=headers,
    )
    assert parts.json()["pending_for_client"] is False
    await client.post(
        f"/api/app/tickets/{ticket_id}/comments", json={"body": "Any news?"}, headers=site.user.headers
    )
    assert (await _ticket(client, tenant, ticket_id))["status"] == "pending"


async def test_desk_11_client_confirms_or_reopens_a_resolved_ticket(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-11, DESK-4: the client reopens a resolved ticket (their note becomes a reply that
    needs one) and confirms it once resolved again: it closes; the history names no client."""
    db: Database = app.state.db
    site = await make_site(client, tenant)
    ticket_id = await app_ticket(client, site, site.user)
    early = await client.post(f"/api/app/tickets/{ticket_id}/confirm", headers=site.user.headers)
    assert early.status_code == 409 and early.json()["code"] == "transition_not_allowed"
    await resolve(db, tenant, ticket_id)
    shown = (await client.get(f"/api/app/tickets/{ticket_id}", headers=site.user.headers)).json()
    assert (shown["can_confirm"], shown["can_cancel"]) == (True, False)
    reopened = await client.post(
        f"/api/app/tickets/{ticket_id}/reopen",
        json={"comment": "Still beeps at night"},
        headers=site.user.headers,
    )
    assert reopened.status_code == 200 and reopened.json()["status"] == "reopened"
    card = await _ticket(client, tenant, ticket_id)
    assert card["flags"]["needs_reply"] is True
    await client.post(
        f"/api/tickets/{ticket_id}/status", json={"status": "resolved"}, headers=tenant.dispatcher.headers
    )
    confirmed = await client.post(f"/api/app/tickets/{ticket_id}/confirm", headers=site.user.headers)
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "closed"
    history = (
        await client.get(f"/api/tickets/{ticket_id}/history", headers=tenant.dispatcher.headers)
    ).json()["items"]
    by_client = [h for h in history if h["actor_kind"] == "contact"]
    assert [h["data"]["to"] for h in by_client if h["kind"] == "status_changed"] == ["reopened", "closed"]
    assert all(h["actor_name"] is None and h["actor_id"] is None for h in by_client)
    late = await client.post(
        f"/api/app/tickets/{ticket_id}/comments", json={"body": "thanks"}, headers=site.user.headers
    )
    assert late.status_code == 409 and late.json()["code"] == "ticket_final"


async def test_desk_11_client_cancels_own_ticket_only_while_nobody_took_it(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-11, seed 002 §16: the author cancels their own open ticket with no responsible; another
    user of the object may not; once someone is responsible it is refused (409 ticket_taken);
    the desk staff are told of the cancellation."""
    db: Database = app.state.db
    await configure(
        client,
        tenant,
        "email",
        {"host": "127.0.0.1", "port": 25, "sender": "desk@alpha.test", "security": "none"},
    )
    site = await make_site(client, tenant)
    first = await app_ticket(client, site, site.user)
    by_admin = await client.post(f"/api/app/tickets/{first}/cancel", json={}, headers=site.admin.headers)
    assert by_admin.status_code == 403 and by_admin.json()["code"] == "cancel_author_only"
    assert (await client.get(f"/api/app/tickets/{first}", headers=site.user.headers)).json()[
        "can_cancel"
    ] is True
    cancelled = await client.post(
        f"/api/app/tickets/{first}/cancel", json={"comment": "Found the fob"}, headers=site.user.headers
    )
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    async with db.sessionmaker() as session:
        mails = list(
            await session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "notify.email"))
        )
    told = {m.payload["to"] for m in mails if m.payload["event"] == "status_changed"}
    assert told == {tenant.admin.email, tenant.dispatcher.email}

    second = await app_ticket(client, site, site.user)  # the cancelled one freed the slot (MON-3)
    await update(db, tenant, second, {"responsible_id": tenant.engineer.id})
    taken = await client.post(f"/api/app/tickets/{second}/cancel", json={}, headers=site.user.headers)
    assert taken.status_code == 409 and taken.json()["code"] == "ticket_taken"
    assert (await _ticket(client, tenant, second))["status"] == "open"


async def test_desk_11_internal_tickets_and_plain_users_get_no_conversation(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-11, DESK-3, MON-4: an internal ticket of the object is 404 on every client route; a
    plain user of the object sees a dispatcher's ticket in the list but not its conversation
    (403), while the object's admin and the ticket's contact (a contact given access) do."""
    db: Database = app.state.db
    site = await make_site(client, tenant)
    internal = await dispatcher_ticket(db, tenant, site, type="internal", title="Staff only")
    for path in ("", "/comments", "/files"):
        hidden = await client.get(f"/api/app/tickets/{internal}{path}", headers=site.admin.headers)
        assert hidden.status_code == 404 and hidden.json()["code"] == "ticket_not_found"
    caller = await make_app_user(client, tenant, "Caller without an object")
    office = await dispatcher_ticket(db, tenant, site, contact_id=caller.contact_id)
    await staff_comment(client, tenant, office, "Engineer booked", public=True)
    plain = await client.get(f"/api/app/tickets/{office}/comments", headers=site.user.headers)
    assert plain.status_code == 403 and plain.json()["code"] == "not_in_conversation"
    for who in (site.admin, caller):
        thread = await client.get(f"/api/app/tickets/{office}/comments", headers=who.headers)
        assert [c["body"] for c in thread.json()] == ["Engineer booked"], thread.text
    stranger = await make_app_user(client, tenant, "Stranger")
    assert (await client.get(f"/api/app/tickets/{office}", headers=stranger.headers)).status_code == 404


async def test_desk_11_live_stream_carries_new_public_comments(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-11: a new public comment reaches the live stream of the conversation's parties (the
    author, the object's admins); a private comment reaches nobody's."""
    db: Database = app.state.db
    site = await make_site(client, tenant)
    ticket_id = await app_ticket(client, site, site.user)
    await staff_comment(client, tenant, ticket_id, "Internal only", public=False)
    await staff_comment(client, tenant, ticket_id, "On our way", public=True)
    await until_logged(db)
    async with db.sessionmaker() as session:
        frames = list(
            await session.scalars(select(LiveEvent).where(LiveEvent.event_type == "ticket_comment"))
        )
    parties = {app_channel(tenant.id, who.contact_id) for who in (site.user, site.admin, site.admin2)}
    assert {f.channel for f in frames} == parties
    assert {f.data["body"] for f in frames} == {"On our way"}
    assert all(f.data["ticket_id"] == ticket_id and f.data["author"] == "staff" for f in frames)


async def test_desk_11_cancel_racing_an_assignment_has_one_winner(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-11 (race): the client cancels while a dispatcher takes the ticket at the same moment:
    either it is cancelled (the assignment refused: ticket_final) or taken (the cancel refused:
    ticket_taken), never a cancelled ticket with a responsible."""
    site = await make_site(client, tenant)
    for _ in range(3):
        ticket_id = await app_ticket(client, site, site.user)
        cancel, assign = await asyncio.gather(
            client.post(f"/api/app/tickets/{ticket_id}/cancel", json={}, headers=site.user.headers),
            client.patch(
                f"/api/tickets/{ticket_id}",
                json={"responsible_id": tenant.engineer.id},
                headers=tenant.dispatcher.headers,
            ),
        )
        card = await _ticket(client, tenant, ticket_id)
        if cancel.status_code == 200:
            assert assign.status_code == 409 and assign.json()["code"] == "ticket_final"
            assert (card["status"], card["responsible_id"]) == ("cancelled", None)
        else:
            assert cancel.status_code == 409 and cancel.json()["code"] == "ticket_taken"
            assert assign.status_code == 200
            assert (card["status"], card["responsible_id"]) == ("open", tenant.engineer.id)
            await client.post(
                f"/api/tickets/{ticket_id}/status",
                json={"status": "cancelled", "comment": "next round"},
                headers=tenant.dispatcher.headers,
            )


async def test_desk_11_a_contact_given_access_lists_their_own_tickets(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-11: a contact with app access who uses no object lists the tickets they are the client
    of, newest first, in pages; not internal ones, not other clients' tickets."""
    user = await make_app_user(client, tenant, "Owner Petrov")
    other = await make_app_user(client, tenant, "Neighbour Sidorova")
    made = []
    for title, contact_id, kind in (
        ("Gate motor hums", user.contact_id, "incident"),
        ("Audit of the gate", user.contact_id, "internal"),
        ("Door closer leaks", other.contact_id, "incident"),
        ("Gate remote lost", user.contact_id, "request"),
    ):
        created = await client.post(
            "/api/tickets",
            json={"title": title, "contact_id": contact_id, "type": kind},
            headers=tenant.dispatcher.headers,
        )
        assert created.status_code == 201, created.text
        made.append(created.json()["id"])
    first = await client.get("/api/app/tickets", params={"limit": 1}, headers=user.headers)
    assert first.status_code == 200, first.text
    second = await client.get(
        "/api/app/tickets", params={"limit": 1, "cursor": first.json()["next_cursor"]}, headers=user.headers
    )
    listed = [t["id"] for t in first.json()["items"] + second.json()["items"]]
    assert listed == [made[3], made[0]] and second.json()["next_cursor"] is None
    opened = await client.get(f"/api/app/tickets/{made[3]}", headers=user.headers)
    assert opened.status_code == 200 and opened.json()["can_reply"] is True
    staff = await client.get("/api/app/tickets", headers=tenant.dispatcher.headers)
    assert staff.status_code == 403
