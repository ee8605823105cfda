"""DESK-11, MON-4, DESK-3: every client-app route that names a ticket, walked (like the tenancy
walk of tests/test_isolation.py) with a client of the same account who may not see the ticket:
an internal ticket of their own object, and a ticket of an object they do not use. Each answer
is the 404 a ticket that exists nowhere gets, and nothing changes."""

from __future__ import annotations

from typing import Any

import httpx
from litestar import Litestar

from hub.db import Database
from tests.conftest import Tenant
from tests.monitoring.helpers import dispatcher_ticket, make_site, staff_comment
from tests.notifications.helpers import make_app_user
from tests.test_isolation import endpoints, missing_value, problem_code, snapshot, url_of

_BODIES = {
    "comments": {"json": {"body": "x"}},
    "files": {"files": {"file": ("a.txt", b"a", "text/plain")}},
    "reopen": {"json": {"comment": "x"}},
    "cancel": {"json": {"comment": "x"}},
    "rating": {"json": {"score": 5, "comment": "x"}},
}


def _body(method: str, path: str) -> dict[str, Any]:
    return dict(_BODIES.get(path.rsplit("/", 1)[-1], {})) if method == "POST" else {}


async def test_desk_11_client_routes_hide_tickets_the_client_may_not_see(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-11: a hidden ticket answers every client route exactly like a missing one."""
    db: Database = app.state.db
    site = await make_site(client, tenant)
    elsewhere = await make_site(client, tenant, phone=None)
    internal = await dispatcher_ticket(db, tenant, site, type="internal", title="Staff only")
    foreign = await dispatcher_ticket(db, tenant, elsewhere, title="Other object")
    for ticket_id in (internal, foreign):
        await staff_comment(client, tenant, ticket_id, "hidden words", public=True)
    walker = await make_app_user(client, tenant, "Walker")
    joined = await client.post(
        f"/api/objects/{site.object_id}/users",
        json={"contact_id": walker.contact_id, "role": "admin"},
        headers=tenant.admin.headers,
    )
    assert joined.status_code == 201
    walked, failures = 0, []
    for ep in endpoints(app):
        if not ep.path.startswith("/api/app/tickets/{ticket_id}") or ep.streaming:
            continue
        nowhere = missing_value(int)
        before = await snapshot(db)
        for ticket_id in (internal, foreign):
            values = {name: ticket_id if name == "ticket_id" else 1 for name in ep.params}
            extra = _body(ep.method, ep.path)
            hidden = await client.request(ep.method, url_of(ep, values), headers=walker.headers, **extra)
            missing = await client.request(
                ep.method, url_of(ep, {**values, "ticket_id": nowhere}), headers=walker.headers, **extra
            )
            seen = (hidden.status_code, problem_code(hidden))
            if seen != (404, "ticket_not_found") or seen != (missing.status_code, problem_code(missing)):
                failures.append(f"{ep} on {ticket_id}: {seen} vs missing {missing.status_code}")
            if "hidden words" in hidden.text or "Staff only" in hidden.text:
                failures.append(f"{ep} on {ticket_id}: shows the hidden ticket")
        if await snapshot(db) != before:
            failures.append(f"{ep}: the database changed")
        walked += 1
    assert not failures, "\n".join(failures)
    assert walked >= 9
