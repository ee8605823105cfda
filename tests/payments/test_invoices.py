"""PAY-1 price list, PAY-2/PAY-3 invoices and their states, PAY-4 lock, PAY-8 flags."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.payments.conftest import World
from tests.payments.providers import FakeStandard


async def test_price_list(world: World) -> None:
    """PAY-1: sections, unique codes, VAT, archiving; only administrators change it."""
    item = await world.price("WORK-1", "1499.99", section="work", vat_rate="20")
    assert (item["section"], item["code"], item["unit"], item["price"], item["vat_rate"]) == (
        "work",
        "WORK-1",
        "pcs",
        "1499.99",
        "20",
    )
    dup = await world.client.post(
        "/api/price-list",
        json={**{k: item[k] for k in ("section", "code", "name", "unit")}, "price": "1"},
        headers=world.tenant.admin.headers,
    )
    assert dup.status_code == 409 and dup.json()["code"] == "price_code_taken"
    for bad in ("-1", "NaN", "1e20", "0.00001"):
        refused = await world.client.post(
            "/api/price-list",
            json={
                "section": "service",
                "code": f"B{bad}",
                "name": "x",
                "unit": "h",
                "price": bad,
            },
            headers=world.tenant.admin.headers,
        )
        assert refused.status_code == 400, (bad, refused.text)
    engineer = await world.client.post(
        "/api/price-list",
        json={
            "section": "service",
            "code": "E1",
            "name": "x",
            "unit": "h",
            "price": "1",
        },
        headers=world.tenant.engineer.headers,
    )
    assert engineer.status_code == 403
    archived = await world.client.patch(
        f"/api/price-list/{item['id']}", json={"archived": True}, headers=world.tenant.admin.headers
    )
    assert archived.status_code == 200 and archived.json()["archived"] is True
    assert [i["code"] for i in (await world.get("/api/price-list"))["items"]] == []
    assert [i["code"] for i in (await world.get("/api/price-list?include_archived=true"))["items"]] == [
        "WORK-1"
    ]
    ticket_id = await world.ticket()
    refused = await world.client.post(
        "/api/invoices",
        json={"ticket_id": ticket_id, "lines": [{"price_item_id": item["id"]}]},
        headers=world.staff,
    )
    assert refused.status_code == 409 and refused.json()["code"] == "price_item_archived"


async def test_invoice_lines_totals_and_states(world: World, far: Any) -> None:
    """PAY-2, PAY-3, PAY-8: lines copy the price list, totals are exact, only drafts change, a
    provider-paid invoice is immutable, clients never see drafts."""
    sw = FakeStandard()
    account = await world.connect("standard", sw.credentials)
    item = await world.price("KEY", "333.33")
    ticket_id = await world.ticket()
    invoice = await world.invoice(
        ticket_id,
        [
            {"price_item_id": item["id"], "quantity": "3", "discount_percent": "12.5"},  # 874.99125 -> 874.99
            {"name": "Travel", "unit_price": "0.015", "quantity": "1"},  # 0.015 -> 0.02
        ],
    )
    assert invoice["status"] == "draft" and Decimal(invoice["total"]) == Decimal("875.01")
    assert [line["code"] for line in invoice["lines"]] == ["KEY", ""]
    assert (await world.flags(ticket_id) or {})["invoice"] == "not_issued"
    hidden = await world.client.get(f"/api/invoices/{invoice['id']}", headers=world.app_headers)
    assert hidden.status_code == 404
    line = invoice["lines"][1]
    changed = await world.client.patch(
        f"/api/invoices/{invoice['id']}/lines/{line['id']}", json={"quantity": "2"}, headers=world.staff
    )
    assert Decimal(changed.json()["total"]) == Decimal("875.02")
    for bad in ({"quantity": "0"}, {"discount_percent": "101"}, {"unit_price": "-5"}):
        refused = await world.client.patch(
            f"/api/invoices/{invoice['id']}/lines/{line['id']}", json=bad, headers=world.staff
        )
        assert refused.status_code == 400, refused.text
    empty = await world.invoice(ticket_id, [])
    refused = await world.client.post(f"/api/invoices/{empty['id']}/issue", headers=world.staff)
    assert refused.status_code == 409 and refused.json()["code"] == "invoice_empty"

    issued = await world.issued(ticket_id, [{"price_item_id": item["id"]}])
    assert issued["payment_url"].startswith("https://pay.example.test/checkout/")
    mine = await world.get("/api/app/invoices", headers=world.app_headers)
    assert [i["id"] for i in mine] == [issued["id"]]
    locked = await world.client.post(
        f"/api/invoices/{issued['id']}/lines", json={"name": "x", "unit_price": "1"}, headers=world.staff
    )
    assert locked.status_code == 409 and locked.json()["code"] == "invoice_not_draft"
    paid = await world.callback(
        account,
        sw.event(
            "payment.succeeded",
            {
                "invoice_ref": issued["payment_ref"],
                "amount": "333.33",
                "currency": "RUB",
            },
        ),
    )
    assert paid.status_code == 204
    for path in ("lines", "mark-paid", "make-unpaid", "issue"):
        body = {"name": "x", "unit_price": "1"} if path == "lines" else {}
        refused = await world.client.post(
            f"/api/invoices/{issued['id']}/{path}", json=body, headers=world.staff
        )
        assert refused.status_code == 409, (path, refused.text)
        assert refused.json()["code"] in ("invoice_immutable", "invoice_transition_not_allowed")
    flags = await world.flags(ticket_id)
    assert flags == {"invoice": "paid", "invoice_id": issued["id"], "amount": "333.33", "currency": "RUB"}
    kinds = await world.history_kinds(ticket_id)
    assert {"invoice_created", "invoice_issued", "invoice_paid"} <= set(kinds)
    # PAY-8 in the ticket list; DESK-8 the client's activity feed
    listed = await world.get("/api/tickets")
    items = listed["items"]
    row = next(t for t in items if t["id"] == ticket_id)
    assert row["ext_flags"]["payment"]["invoice"] == "paid"
    feed = (await world.get(f"/api/contacts/{world.contact_id}/activity"))["items"]
    assert {"invoice_issued", "invoice_paid"} <= {entry["kind"] for entry in feed}


async def _other_base_data(world: World) -> dict[str, Any]:
    """A real value of each base-data field, different from the ticket's."""
    admin = world.tenant.admin.headers
    company = await world.client.post("/api/companies", json={"name": "Other company"}, headers=admin)
    obj = await world.client.post("/api/objects", json={"number": "077", "name": "Warehouse"}, headers=admin)
    contact = await world.client.post("/api/contacts", json={"name": "Someone else"}, headers=admin)
    assert {company.status_code, obj.status_code, contact.status_code} == {201}, (company.text, obj.text)
    return {
        "type": "incident",
        "object_id": obj.json()["id"],
        "company_id": company.json()["id"],
        "contact_id": contact.json()["id"],
    }


async def _patch(world: World, ticket_id: int, changes: dict[str, Any]) -> Any:
    return await world.client.patch(f"/api/tickets/{ticket_id}", json=changes, headers=world.staff)


async def _status(world: World, ticket_id: int, body: dict[str, Any]) -> None:
    answer = await world.client.post(f"/api/tickets/{ticket_id}/status", json=body, headers=world.staff)
    assert answer.status_code == 200, answer.text


async def test_base_data_lock(world: World, far: Any) -> None:
    """PAY-4 through the API: type, object, company and contact cannot change once an invoice is
    issued (back to draft: they can again), nor once the ticket is resolved or cancelled; other
    fields still can."""
    sw = FakeStandard()
    await world.connect("standard", sw.credentials)
    item = await world.price("KEY", "100")
    other = await _other_base_data(world)
    ticket_id = await world.ticket()
    invoice = await world.issued(ticket_id, [{"price_item_id": item["id"]}])
    for name, value in other.items():
        refused = await _patch(world, ticket_id, {name: value})
        assert refused.status_code == 409 and refused.json()["code"] == "ticket_base_data_locked", name
    assert (await _patch(world, ticket_id, {"title": "Spare key, two copies"})).status_code == 200
    await world.act(f"/api/invoices/{invoice['id']}/make-unpaid")
    allowed = await _patch(world, ticket_id, {"contact_id": other["contact_id"]})
    assert allowed.status_code == 200, allowed.text

    resolved = await world.ticket()
    await _patch(world, resolved, {"responsible_id": world.tenant.dispatcher.id})
    await _status(world, resolved, {"status": "resolved"})
    for name, value in other.items():
        refused = await _patch(world, resolved, {name: value})
        assert refused.status_code == 409 and refused.json()["code"] == "ticket_base_data_locked", name
        assert refused.json()["reason"] == "ticket_closed"
    assert (await _patch(world, resolved, {"title": "Done: spare key"})).status_code == 200

    cancelled = await world.ticket()
    await _status(world, cancelled, {"status": "cancelled", "comment": "Resident changed their mind"})
    for name, value in other.items():
        refused = await _patch(world, cancelled, {name: value})
        # A cancelled ticket is final: the desk refuses every change, base data included.
        assert refused.status_code == 409 and refused.json()["code"] == "ticket_final", name
