"""MON-5: the app sees status changes as they happen, over Server-Sent Events per app user."""

from __future__ import annotations

import httpx
from litestar import Litestar

from tests.conftest import Tenant
from tests.monitoring.helpers import dispatcher_ticket, make_site, monitoring_ticket, set_status, update
from tests.telephony.server import SseReader, serve


async def test_status_changes_reach_every_object_user_live_and_nobody_else(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-5: when the dispatcher assigns an engineer or changes the status, each user of the
    object gets the change on their SSE stream at once (no description in the frame); a user of
    another object gets nothing."""
    db = app.state.db
    site = await make_site(client, tenant)
    elsewhere = await make_site(client, tenant)
    outsider = elsewhere.user
    ticket_id = await dispatcher_ticket(db, tenant, site)
    own_ticket = await dispatcher_ticket(db, tenant, elsewhere)
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        async with (
            http.stream("GET", "/api/app/stream", headers=site.user.headers) as user_stream,
            http.stream("GET", "/api/app/stream", headers=outsider.headers) as outsider_stream,
        ):
            assert user_stream.status_code == 200
            assert user_stream.headers["content-type"].startswith("text/event-stream")
            reader, other = SseReader(user_stream), SseReader(outsider_stream)
            await reader.connected()
            await other.connected()
            await update(db, tenant, ticket_id, {"responsible_id": tenant.engineer.id})
            frame = await reader.next()
            assert frame.event == "ticket_updated"
            assert (frame.data["ticket_id"], frame.data["engineer"]) == (ticket_id, tenant.engineer.name)
            await set_status(db, tenant, ticket_id, "in_progress")
            frame = await reader.next()
            assert frame.event == "ticket_status"
            assert (frame.data["status"], frame.data["status_label"]) == ("in_progress", "in_progress")
            assert "description" not in frame.data
            last_seen = frame.id
            # The outsider's first frame is about its own object, not the ones before it.
            await update(db, tenant, own_ticket, {"responsible_id": tenant.engineer.id})
            frame = await other.next()
            assert frame.data["ticket_id"] == own_ticket
        # A reconnecting app catches up with what it missed (Last-Event-ID).
        await set_status(db, tenant, ticket_id, "resolved")
        headers = {**site.user.headers, "Last-Event-ID": str(last_seen)}
        async with http.stream("GET", "/api/app/stream", headers=headers) as again:
            frame = await SseReader(again).next()
            assert (frame.event, frame.data["status"]) == ("ticket_status", "resolved")


async def test_new_tickets_and_changes_reach_the_admins_stream_too(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-5 (and MON-2): an object admin's stream, like a plain user's, gets a ticket the
    monitoring centre or another user has just created (no description in the frame) and then its
    status changes."""
    db = app.state.db
    site = await make_site(client, tenant)
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        async with (
            http.stream("GET", "/api/app/stream", headers=site.admin.headers) as admin_stream,
            http.stream("GET", "/api/app/stream", headers=site.user.headers) as user_stream,
        ):
            admin, user = SseReader(admin_stream), SseReader(user_stream)
            await admin.connected()
            await user.connected()
            ticket_id = await monitoring_ticket(client, site)
            for reader in (admin, user):
                frame = await reader.next()
                assert (frame.event, frame.data["ticket_id"]) == ("ticket_created", ticket_id)
                assert frame.data["status_label"] == "processing" and "description" not in frame.data
            made = await client.post(
                f"/api/app/objects/{site.object_id}/tickets",
                json={"description": "Keypad dead"},
                headers=site.user.headers,
            )
            assert made.status_code == 201, made.text
            frame = await admin.next()
            assert (frame.event, frame.data["ticket_id"]) == ("ticket_created", made.json()["id"])
            await update(db, tenant, ticket_id, {"responsible_id": tenant.engineer.id})
            await set_status(db, tenant, ticket_id, "in_progress")
            assert (await admin.next()).event == "ticket_updated"
            frame = await admin.next()
            assert (frame.event, frame.data["ticket_id"], frame.data["status"]) == (
                "ticket_status",
                ticket_id,
                "in_progress",
            )
