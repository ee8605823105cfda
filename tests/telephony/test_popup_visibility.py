"""DESK-12 on TEL-4 pop-ups: a ringing engineer's pop-up lists only the caller's tickets they may see."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from hub.db import Database
from hub.live import LiveEvent, until_logged
from hub.telephony.service import employee_channel
from tests.conftest import Tenant
from tests.telephony.conftest import Clients, Pbx


async def _ticket(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> int:
    response = await client.post(
        "/api/tickets", json={"title": "Intercom", **body}, headers=tenant.admin.headers
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def _popup_tickets(db: Database, tenant: Tenant, employee_id: int) -> set[int]:
    """The tickets listed by the employee's last pop-up (open and recent)."""
    await until_logged(db)
    async with db.sessionmaker() as session:
        data = await session.scalar(
            select(LiveEvent.data)
            .where(
                LiveEvent.channel == employee_channel(tenant.id, employee_id),
                LiveEvent.event_type == "call.ringing",
            )
            .order_by(LiveEvent.id.desc())
            .limit(1)
        )
    assert data is not None, "no pop-up"
    return {t["id"] for rows in data["tickets"].values() for t in rows}


async def test_desk12_popup_lists_only_the_tickets_the_engineer_may_see(
    client: httpx.AsyncClient, db: Database, tenant: Tenant, pbx: Pbx, clients: Clients
) -> None:
    """DESK-12, TEL-4: the dispatcher's pop-up lists every ticket of the caller, the engineer's only
    theirs; with the account's see-all option the engineer's lists every one too."""
    theirs = await _ticket(client, tenant, contact_id=clients.contact_id, responsible_id=tenant.engineer.id)
    hidden = await _ticket(client, tenant, contact_id=clients.contact_id, responsible_id=tenant.dispatcher.id)
    ring = {"event": "ringing", "from_number": "8 (912) 345-67-89", "extensions": ["101", "102"]}
    assert (await pbx.hub(call_id="v-1", **ring)).status_code == 200
    assert await _popup_tickets(db, tenant, tenant.dispatcher.id) == {theirs, hidden}
    assert await _popup_tickets(db, tenant, tenant.engineer.id) == {theirs}

    response = await client.patch(
        "/api/account", json={"engineers_see_all": True}, headers=tenant.admin.headers
    )
    assert response.status_code == 200, response.text
    assert (await pbx.hub(call_id="v-2", **ring)).status_code == 200
    assert await _popup_tickets(db, tenant, tenant.engineer.id) == {theirs, hidden}
