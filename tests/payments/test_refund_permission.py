"""PAY-7 / DESK-12: refunds are a permission an administrator grants to roles or employees."""

from __future__ import annotations

from typing import Any

from tests.payments.conftest import World
from tests.payments.test_refunds import _paid


async def _grant(world: World, **grantee: Any) -> int:
    response = await world.client.post(
        "/api/permissions/grants",
        json={"permission": "refunds", **grantee},
        headers=world.tenant.admin.headers,
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def _grants(world: World) -> list[dict[str, Any]]:
    response = await world.client.get("/api/permissions/grants", headers=world.tenant.admin.headers)
    assert response.status_code == 200, response.text
    return list(response.json())


async def test_pay7_refund_permission_is_granted_and_withdrawn_by_an_administrator(world: World) -> None:
    """PAY-7: an engineer without the permission is refused (403 ``permission_required``); granted
    by name they request refunds on the tickets they see (and are told of requests); withdrawn,
    they are refused again. Dispatchers hold it through the role's default grant, which an
    administrator can withdraw too; administrators always hold it."""
    t = world.tenant
    await world.watch_notifications()
    _, invoice = await _paid(world)
    path = f"/api/invoices/{invoice['id']}/refunds"
    body = {"reason": "Visit not made", "lines": [{"line_id": invoice["lines"][1]["id"]}]}

    refused = await world.client.post(path, json=body, headers=t.engineer.headers)
    assert refused.status_code == 403 and refused.json()["code"] == "permission_required"

    [default] = await _grants(world)
    assert (default["permission"], default["role"], default["employee_id"]) == ("refunds", "dispatcher", None)
    grant_id = await _grant(world, employee_id=t.engineer.id)
    twice = await world.client.post(
        "/api/permissions/grants",
        json={"permission": "refunds", "employee_id": t.engineer.id},
        headers=t.admin.headers,
    )
    assert twice.status_code == 409 and twice.json()["code"] == "grant_exists"

    # Granted, but the ticket is not theirs (DESK-12): like an invoice that does not exist.
    hidden = await world.client.post(path, json=body, headers=t.engineer.headers)
    assert hidden.status_code == 404 and hidden.json()["code"] == "invoice_not_found"
    made_observer = await world.client.patch(
        f"/api/tickets/{invoice['ticket_id']}", json={"observer_ids": [t.engineer.id]}, headers=world.staff
    )
    assert made_observer.status_code == 200, made_observer.text
    requested = await world.act(path, body, headers=t.engineer.headers, expect=201)
    assert requested["status"] == "requested" and requested["requested_by_kind"] == "employee"

    # Employees with the permission are told of a client's request: the engineer now too.
    await world.act(path, {"reason": "The other key", "full": True}, headers=world.app_headers, expect=201)
    told = [who for event, who, _ in await world.notified() if event == "refund_requested"][-1]
    assert ("employee", t.engineer.id) in told and ("employee", t.dispatcher.id) in told

    rejected = await world.act(
        f"/api/refunds/{requested['id']}/reject", {"reason": "Keys fit"}, headers=t.engineer.headers
    )
    assert rejected["status"] == "rejected"

    withdrawn = await world.client.delete(f"/api/permissions/grants/{grant_id}", headers=t.admin.headers)
    assert withdrawn.status_code == 204
    again = await world.client.post(path, json=body, headers=t.engineer.headers)
    assert again.status_code == 403 and again.json()["code"] == "permission_required"

    # The dispatchers' grant withdrawn: dispatchers are refused; the administrator still decides.
    await world.client.delete(f"/api/permissions/grants/{default['id']}", headers=t.admin.headers)
    pending = [
        r for r in (await world.get(f"/api/invoices/{invoice['id']}/refunds"))["items"] if r["status"] == "requested"
    ]
    decide = f"/api/refunds/{pending[0]['id']}/reject"
    by_dispatcher = await world.client.post(decide, json={"reason": "No"}, headers=t.dispatcher.headers)
    assert by_dispatcher.status_code == 403 and by_dispatcher.json()["code"] == "permission_required"
    assert (await world.act(decide, {"reason": "No"}, headers=t.admin.headers))["status"] == "rejected"
    # A role can be granted back; only administrators grant.
    await _grant(world, role="dispatcher")
    by_engineer = await world.client.post(
        "/api/permissions/grants",
        json={"permission": "refunds", "role": "engineer"},
        headers=t.engineer.headers,
    )
    assert by_engineer.status_code == 403
    neither = await world.client.post(
        "/api/permissions/grants", json={"permission": "refunds"}, headers=t.admin.headers
    )
    assert neither.status_code == 422 and neither.json()["code"] == "grantee_required"
