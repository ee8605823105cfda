"""Ticket creation is a hot path (the monitoring centre, the pop-up, the app): it costs a fixed,
small number of statements whatever the ticket carries, so a regression fails here."""

from __future__ import annotations

import httpx
from litestar import Litestar
from sqlalchemy import select

from hub.live import LiveEvent, until_logged
from hub.monitoring.subscribers import app_channel
from tests.conftest import Tenant
from tests.desk.conftest import Desk
from tests.monitoring.helpers import make_site
from tests.notifications.helpers import configure, messages
from tests.statements import counting_statements

# 11: one of them picks the SLA rule and the account's SLA settings (DESK-5), even when none is set.
MAX_CREATE_STATEMENTS = 11
# On PostgreSQL a publishing transaction's live events get their log ids in a short pass after its
# commit (hub/live.py: no hub-wide lock inside the request): the lock, the move, the insert.
MAX_SEQUENCING_STATEMENTS = 3
_SEQUENCING = ("pg_advisory_xact_lock", "FROM live_staged", "INTO live_events")


async def test_creating_a_full_ticket_takes_at_most_eleven_statements(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant, desk: Desk
) -> None:
    """DESK-3 (throughput): a ticket with object, company, contact, responsible, executors and
    observers, whose object has app users to tell live (MON-5) and whose account sends e-mail
    (DESK-10), is created in at most eleven statements, sign-in check included; and it is all there."""
    await configure(
        client,
        tenant,
        "email",
        {"host": "127.0.0.1", "port": 25, "sender": "desk@alpha.test", "security": "none"},
    )
    site = await make_site(client, tenant)
    company = await desk.company()
    contact = await desk.contact(company_id=company["id"])
    app.state.subject_cache.forget()  # the request checks its sign-in afresh
    with counting_statements(app.state.db) as statements:
        made = await desk.ticket(
            title="Gate does not open",
            contact_id=contact["id"],
            object_id=site.object_id,
            company_id=company["id"],
            responsible_id=tenant.engineer.id,
            executor_ids=[tenant.dispatcher.id, tenant.admin.id],
            observer_ids=[tenant.admin.id],
        )
        await until_logged(app.state.db)  # the after-commit pass, counted apart
    sequencing = [s for s in statements if any(part in s for part in _SEQUENCING)]
    request = [s for s in statements if s not in sequencing]
    assert len(request) <= MAX_CREATE_STATEMENTS, "\n\n".join(request)
    assert len(sequencing) <= MAX_SEQUENCING_STATEMENTS, "\n\n".join(sequencing)
    assert made["company_id"] == company["id"] and made["object_id"] == site.object_id
    assert made["executor_ids"] == sorted([tenant.dispatcher.id, tenant.admin.id])
    assert made["observer_ids"] == [tenant.admin.id]
    # Found by the object's address, the client's and the company's names (search text, DESK-9).
    for words in ("guarded st", "ivan", "acme"):
        found = await desk.get("/api/tickets", q=words)
        assert [t["id"] for t in found["items"]] == [made["id"]], words
    # Its history, the client's feed, the staff's notifications and the app users' live frames.
    history = (await desk.get(f"/api/tickets/{made['id']}/history"))["items"]
    assert [h["kind"] for h in history] == ["created"]
    feed = (await desk.get(f"/api/contacts/{contact['id']}/activity"))["items"]
    assert [a["ref_id"] for a in feed] == [made["id"]]
    told = {m.payload["to"] for m in await messages(app.state.db) if m.payload["event"] == "new_ticket"}
    assert told == {tenant.admin.email, tenant.engineer.email}
    async with app.state.db.sessionmaker() as session:
        frames = await session.scalars(
            select(LiveEvent.channel).where(LiveEvent.event_type == "ticket_created")
        )
        assert set(frames) == {
            app_channel(tenant.id, user.contact_id) for user in (site.admin, site.admin2, site.user)
        }
