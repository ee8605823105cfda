"""DESK-4: a dispatcher or administrator closes a resolved ticket with a comment (e.g. the client
confirmed by phone); an engineer's click is no confirmation. Issue 12 defect 2: object admins
without an app login no longer leave a ticket unclosable."""

from __future__ import annotations

import httpx
from litestar import Litestar

from tests.conftest import Tenant
from tests.desk.conftest import Desk
from tests.monitoring.helpers import make_site, resolve


async def test_desk_4_dispatcher_and_administrator_close_a_resolved_ticket_with_a_comment(
    desk: Desk, tenant: Tenant, client: httpx.AsyncClient
) -> None:
    """DESK-4: without a comment 422 comment_required; an engineer 403 confirmation_required;
    a dispatcher (and an administrator) with a comment: closed, the comment in the history."""
    for closer in (tenant.dispatcher, tenant.admin):
        made = await desk.ticket(responsible_id=tenant.engineer.id)
        await desk.status(made["id"], "resolved")
        path = f"/api/tickets/{made['id']}/status"
        bare = await client.post(path, json={"status": "closed"}, headers=closer.headers)
        assert bare.status_code == 422 and bare.json()["code"] == "comment_required"
        engineer = await client.post(
            path, json={"status": "closed", "comment": "done"}, headers=tenant.engineer.headers
        )
        assert engineer.status_code == 403 and engineer.json()["code"] == "confirmation_required"
        closed = await client.post(
            path, json={"status": "closed", "comment": "Client confirmed by phone"}, headers=closer.headers
        )
        assert closed.status_code == 200 and closed.json()["status"] == "closed", closed.text
        history = (await desk.get(f"/api/tickets/{made['id']}/history"))["items"]
        last = history[-1]
        assert (last["kind"], last["actor_id"], last["data"]["comment"]) == (
            "status_changed",
            closer.id,
            "Client confirmed by phone",
        )


async def test_desk_4_object_admins_without_the_app_leave_the_rating_to_staff(
    app: Litestar, desk: Desk, tenant: Tenant, client: httpx.AsyncClient
) -> None:
    """DESK-4, MON-7 (issue 12 defect 2): when the object's admins are contacts without an app
    login, staff may record the client's rating (which closes the ticket)."""
    site = await make_site(client, tenant)
    obj = await desk.object(number="OB-NOAPP")
    offline = await desk.contact(name="Admin without the app")
    joined = await client.post(
        f"/api/objects/{obj['id']}/users",
        json={"contact_id": offline["id"], "role": "admin"},
        headers=tenant.admin.headers,
    )
    assert joined.status_code == 201, joined.text
    made = await desk.ticket(object_id=obj["id"], responsible_id=tenant.engineer.id)
    await desk.status(made["id"], "resolved")
    rated = await desk.post(f"/api/tickets/{made['id']}/rating", {"score": 5}, status=200)
    assert rated["status"] == "closed"
    # With an admin who has the app, the rating stays theirs (MON-7).
    other = await desk.ticket(object_id=site.object_id, responsible_id=tenant.engineer.id)
    await resolve(app.state.db, tenant, other["id"])
    refused = await client.post(
        f"/api/tickets/{other['id']}/rating", json={"score": 5}, headers=tenant.dispatcher.headers
    )
    assert refused.status_code == 403 and refused.json()["code"] == "rating_in_app_only"
