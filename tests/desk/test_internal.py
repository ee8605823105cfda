"""DESK-3: an ``internal`` ticket is staff-only: the client app never shows or accepts it."""

from __future__ import annotations

import httpx

from hub.db import Database
from tests.conftest import Tenant
from tests.monitoring.helpers import dispatcher_ticket, make_site, resolve


async def test_internal_tickets_are_never_shown_to_clients(
    client: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    """DESK-3: the object's users see its service tickets in the app, but never an internal one
    (not in the list, not put on top by a deep link, not rateable once resolved)."""
    site = await make_site(client, tenant)
    internal = await dispatcher_ticket(db, tenant, site, type="internal", title="Staff-only audit")
    service = await dispatcher_ticket(db, tenant, site, title="Siren is silent")
    await resolve(db, tenant, internal)
    for who in (site.admin, site.user):
        for params in ({}, {"first": internal}):
            response = await client.get(
                f"/api/app/objects/{site.object_id}/tickets", params=params, headers=who.headers
            )
            assert response.status_code == 200, response.text
            assert [t["id"] for t in response.json()["tickets"]] == [service]
            assert "Staff-only audit" not in response.text
    rated = await client.post(
        f"/api/app/tickets/{internal}/rating", json={"score": 5}, headers=site.admin.headers
    )
    assert rated.status_code == 404, rated.text
