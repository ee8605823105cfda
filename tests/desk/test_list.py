"""DESK-9 lists: filters, the new view, text search, keyset paging, flags per ticket."""

from __future__ import annotations

from typing import Any

from hub.db import Database
from hub.desk import service
from tests.conftest import Tenant
from tests.desk.conftest import Desk


async def ids(desk: Desk, **params: Any) -> list[int]:
    page = await desk.get("/api/tickets", **params)
    return [item["id"] for item in page["items"]]


async def test_filters_and_new_view(desk: Desk, tenant: Tenant) -> None:
    """DESK-9: status (several), responsible, object, company, contact, source filters and the new
    view (open + reopened)."""
    company = await desk.company()
    contact = await desk.contact(company_id=company["id"])
    obj = await desk.object()
    a = await desk.ticket(source="email", object_id=obj["id"], responsible_id=tenant.engineer.id)
    b = await desk.ticket(source="visit", contact_id=contact["id"])
    c = await desk.ticket(source="email", responsible_id=tenant.engineer.id)
    await desk.status(c["id"], "in_progress")
    d = await desk.ticket(responsible_id=tenant.engineer.id)
    await desk.status(d["id"], "resolved")
    await desk.status(d["id"], "reopened")
    e = await desk.ticket()
    await desk.status(e["id"], "cancelled", comment="duplicate")

    assert await ids(desk, view="new") == [d["id"], b["id"], a["id"]]
    assert await ids(desk, status=["in_progress", "cancelled"]) == [e["id"], c["id"]]
    assert await ids(desk, responsible_id=tenant.engineer.id) == [d["id"], c["id"], a["id"]]
    assert await ids(desk, object_id=obj["id"]) == [a["id"]]
    assert await ids(desk, company_id=company["id"]) == [b["id"]]
    assert await ids(desk, contact_id=contact["id"]) == [b["id"]]
    assert await ids(desk, source="email") == [c["id"], a["id"]]
    assert await ids(desk, source="email", responsible_id=tenant.engineer.id, status="open") == [a["id"]]
    assert await ids(desk, view="new", status="cancelled") == []
    bad = await desk.get("/api/tickets", expect=400, cursor="abc")
    assert bad["code"] == "invalid_cursor"


async def test_keyset_paging_is_stable_while_tickets_are_added(desk: Desk) -> None:
    """DESK-9: keyset paging: every ticket exactly once even when new ones arrive between pages."""
    made = [(await desk.ticket(title=f"T{i}"))["id"] for i in range(7)]
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = await desk.get("/api/tickets", **params)
        seen += [item["id"] for item in page["items"]]
        await desk.ticket(title="arrives meanwhile")
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(made, reverse=True)


async def test_search_by_number_client_address_title_and_phone(desk: Desk) -> None:
    """DESK-9: text search by ticket number, client name, object address, title; a phone suffix
    finds the client's tickets."""
    company = await desk.company(name="Rogа & Kopyta LLC", phones=["+7 495 111 22 33"])
    contact = await desk.contact(name="Maria Sidorova", phone="+7 916 555 44 33")
    obj = await desk.object(number="OB-77", address="12 Tverskaya Street")
    t1 = await desk.ticket(title="Smoke detector", company_id=company["id"])
    t2 = await desk.ticket(title="Camera offline", contact_id=contact["id"])
    t3 = await desk.ticket(title="Door sensor", object_id=obj["id"])
    assert await ids(desk, q=str(t2["number"])) == [t2["id"]]
    assert await ids(desk, q=f"#{t3['number']}") == [t3["id"]]
    assert await ids(desk, q="sidorova") == [t2["id"]]
    assert await ids(desk, q="TVERSKAYA") == [t3["id"]]
    assert await ids(desk, q="ob-77") == [t3["id"]]
    assert await ids(desk, q="smoke") == [t1["id"]]
    assert await ids(desk, q="kopyta") == [t1["id"]]
    assert await ids(desk, q="555-44-33") == [t2["id"]]
    assert await ids(desk, q="111 22 33") == [t1["id"]]
    assert await ids(desk, q="nothing like this") == []
    assert await ids(desk, q="100%_") == []  # LIKE wildcards are plain characters


async def test_flags_shown_per_ticket(db: Database, desk: Desk, tenant: Tenant) -> None:
    """DESK-9: flags per ticket in the list: needs reply, important, SLA, and other domains' ext_flags
    (payment, partner) set through set_ext_flag."""
    t = await desk.ticket()
    async with db.sessionmaker() as session, session.begin():
        ticket = await service.get_ticket(session, tenant.id, t["id"])
        service.set_ext_flag(ticket, "payment", {"invoice": "unpaid", "amount": "100.00"})
        service.set_ext_flag(ticket, "partner", {"status": "in_progress"})
    async with db.sessionmaker() as session, session.begin():
        ticket = await service.get_ticket(session, tenant.id, t["id"])
        service.set_ext_flag(ticket, "partner", None)
    item = (await desk.get("/api/tickets"))["items"][0]
    assert item["ext_flags"] == {"payment": {"invoice": "unpaid", "amount": "100.00"}}
    assert item["flags"] == {
        "needs_reply": False,
        "important": False,
        "sla_reaction_breached": False,
        "sla_resolution_breached": False,
        "sla_reply_overdue": False,
    }
    assert await ids(desk, important="true") == []
    assert await ids(desk, sla_breached="false") == [t["id"]]


async def test_desk_9_important_first_my_tickets_and_every_flag_a_filter(
    desk: Desk, tenant: Tenant, db: Database
) -> None:
    """DESK-9, DESK-6: important-first ordering (keyset-paged), the *my tickets* view
    (responsible or executor) and the flags other domains show (invoice, refund, payment
    attention, partner status) usable as filters."""
    a = await desk.ticket(responsible_id=tenant.dispatcher.id)
    b = await desk.ticket(executor_ids=[tenant.dispatcher.id])
    c = await desk.ticket(responsible_id=tenant.engineer.id)
    d = await desk.ticket()
    await desk.post(f"/api/tickets/{b['id']}/comments", {"body": "Call the client back!", "important": True})
    assert await ids(desk, order="important_first") == [b["id"], d["id"], c["id"], a["id"]]
    pages: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"order": "important_first", "limit": 1}
        if cursor:
            params["cursor"] = cursor
        page = await desk.get("/api/tickets", **params)
        pages += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [b["id"], d["id"], c["id"], a["id"]]
    assert await ids(desk, view="mine") == [b["id"], a["id"]]

    async with db.sessionmaker() as session, session.begin():
        for ticket_id, key, value in (
            (a["id"], "payment", {"invoice": "paid", "refund": "requested"}),
            (c["id"], "payment", {"invoice": "issued"}),
            (c["id"], "payment_attention", {"reason": "paid_after_cancel"}),
            (d["id"], "partner", {"name": "Beta", "status": "in_progress"}),
        ):
            ticket = await service.get_ticket(session, tenant.id, ticket_id)
            service.set_ext_flag(ticket, key, value)
    assert await ids(desk, invoice="paid") == [a["id"]]
    assert await ids(desk, invoice=["paid", "issued"]) == [c["id"], a["id"]]
    assert await ids(desk, refund="requested") == [a["id"]]
    assert await ids(desk, payment_attention="true") == [c["id"]]
    assert await ids(desk, partner="true") == [d["id"]]
    assert await ids(desk, partner="false") == [c["id"], b["id"], a["id"]]
    assert await ids(desk, partner_status="in_progress") == [d["id"]]
    assert await ids(desk, important="true") == [b["id"]]
    bad = await desk.get("/api/tickets", expect=400, order="important_first", cursor="7")
    assert bad["code"] == "invalid_cursor"
