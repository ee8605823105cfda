"""MON-1: the monitoring centre opens service tickets by object number with its integration key."""

from __future__ import annotations

import asyncio
import json

import httpx
from litestar import Litestar
from sqlalchemy import func, select

from contracts.monitoring import SCHEMA_DIR, schemas
from hub.desk.models import Ticket, TicketEvent
from tests.conftest import Tenant
from tests.monitoring.helpers import make_site


async def _tickets(app: Litestar) -> int:
    async with app.state.db.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Ticket)) or 0)


def test_json_schema_files_match_the_contract() -> None:
    """MON-1: the exported JSON Schema files are what the contract Structs produce."""
    for name, schema in schemas().items():
        on_disk = json.loads((SCHEMA_DIR / name).read_text())
        assert on_disk == json.loads(json.dumps(schema)), (
            f"{name} is stale: run python -m contracts.monitoring"
        )


async def test_monitoring_key_opens_ticket_for_object_number_with_operator_and_source(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-1: a ticket for the object found by its number, source monitoring, the operator's name
    on the ticket and in its history, visible in the dispatchers' list."""
    site = await make_site(client, tenant)
    body = {
        "object_number": site.number,
        "operator_name": "Operator Ivanova",
        "description": "Zone 3 sensor reports tamper every night",
        "priority": "high",
        "external_ref": "CO-card-7781",
    }
    made = await client.post("/api/monitoring/tickets", json=body, headers=site.monitoring)
    assert made.status_code == 201, made.text
    result = made.json()
    assert (
        result["status"] == "open" and result["object_number"] == site.number and result["duplicate"] is False
    )
    async with app.state.db.sessionmaker() as session:
        ticket = await session.get(Ticket, result["ticket_id"])
        assert ticket is not None
        assert (ticket.source, ticket.operator_name, ticket.object_id) == (
            "monitoring",
            "Operator Ivanova",
            site.object_id,
        )
        assert (ticket.created_by_kind, ticket.priority, ticket.number) == (
            "monitoring",
            "high",
            result["number"],
        )
        history = list(await session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)))
    created = next(e for e in history if e.kind == "created")
    assert created.actor_kind == "monitoring" and created.actor_name == "Operator Ivanova"
    assert any(e.kind == "monitoring_ref" and e.data == {"external_ref": "CO-card-7781"} for e in history)
    listed = await client.get(
        "/api/tickets", params={"source": "monitoring"}, headers=tenant.dispatcher.headers
    )
    assert listed.status_code == 200, listed.text
    row = next(t for t in listed.json()["items"] if t["id"] == result["ticket_id"])
    assert (row["source"], row["object_id"], row["status"]) == ("monitoring", site.object_id, "open")
    others = await client.get(
        "/api/tickets", params={"source": "client_app"}, headers=tenant.dispatcher.headers
    )
    assert all(t["id"] != result["ticket_id"] for t in others.json()["items"])


async def test_unknown_object_number_is_404_and_creates_nothing(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-1: an object number the account does not have is a 404 problem; nothing is created."""
    site = await make_site(client, tenant)
    response = await client.post(
        "/api/monitoring/tickets",
        json={"object_number": "NO-SUCH", "operator_name": "Op", "description": "x"},
        headers={**site.monitoring, "Idempotency-Key": "k-404"},
    )
    assert response.status_code == 404 and response.json()["code"] == "object_not_found"
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await _tickets(app) == 0
    bad = await client.post(
        "/api/monitoring/tickets", json={"object_number": site.number}, headers=site.monitoring
    )
    assert bad.status_code in (400, 422) and "code" in bad.json()
    assert await _tickets(app) == 0


async def test_only_the_monitoring_key_may_post(client: httpx.AsyncClient, tenant: Tenant) -> None:
    """MON-1: the intake is authenticated by the account's monitoring integration key."""
    site = await make_site(client, tenant)
    body = {"object_number": site.number, "operator_name": "Op", "description": "x"}
    assert (await client.post("/api/monitoring/tickets", json=body)).status_code == 401
    assert (
        await client.post("/api/monitoring/tickets", json=body, headers={"X-Api-Key": "mon_bogus"})
    ).status_code == 401
    script = await client.post(
        "/api/api-keys", json={"name": "s", "kind": "script"}, headers=tenant.admin.headers
    )
    wrong_kind = await client.post(
        "/api/monitoring/tickets", json=body, headers={"X-Api-Key": script.json()["key"]}
    )
    assert wrong_kind.status_code == 403 and wrong_kind.json()["code"] == "integration_key_required"
    app_user = await client.post("/api/monitoring/tickets", json=body, headers=site.user.headers)
    assert app_user.status_code == 403


async def test_same_idempotency_key_gives_one_ticket_also_when_concurrent(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-1: the same request with the same Idempotency-Key creates one ticket (sequential and
    concurrent); the key with a different body is refused."""
    site = await make_site(client, tenant)
    body = {"object_number": site.number, "operator_name": "Op", "description": "Battery low"}
    headers = {**site.monitoring, "Idempotency-Key": "evt-1"}
    first = await client.post("/api/monitoring/tickets", json=body, headers=headers)
    again = await client.post("/api/monitoring/tickets", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["ticket_id"] == first.json()["ticket_id"] and again.json()["duplicate"] is True
    other = await client.post(
        "/api/monitoring/tickets", json={**body, "description": "else"}, headers=headers
    )
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"

    together = {**site.monitoring, "Idempotency-Key": "evt-2"}
    answers = await asyncio.gather(
        *(client.post("/api/monitoring/tickets", json=body, headers=together) for _ in range(3))
    )
    assert sorted(a.status_code for a in answers) == [200, 200, 201]
    assert len({a.json()["ticket_id"] for a in answers}) == 1
    assert await _tickets(app) == 2
