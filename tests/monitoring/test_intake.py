"""MON-1: the monitoring centre opens service tickets by object number with its integration key."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from litestar import Litestar
from sqlalchemy import create_engine, func, select, text

from contracts.monitoring import SCHEMA_DIR, schemas
from hub.desk.models import Ticket, TicketEvent
from hub.migrate import alembic_config
from tests.conftest import PG_URL, Tenant
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


async def _intake_events(client: httpx.AsyncClient, tenant: Tenant, **params: str) -> list[dict[str, Any]]:
    listed = await client.get(
        "/api/intake/events", params={"source": "monitoring", **params}, headers=tenant.admin.headers
    )
    assert listed.status_code == 200, listed.text
    return list(listed.json()["items"])


async def test_each_request_is_an_intake_event_the_administrators_see(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Issue 11: a request that opened a ticket is an applied intake event holding the ticket; its
    repetition adds none; a malformed one is recorded as rejected like every sender's refusals."""
    site = await make_site(client, tenant)
    body = {"object_number": site.number, "operator_name": "Op", "description": "Door 2 open"}
    headers = {**site.monitoring, "Idempotency-Key": "alarm-77"}
    made = await client.post("/api/monitoring/tickets", json=body, headers=headers)
    again = await client.post("/api/monitoring/tickets", json=body, headers=headers)
    assert (made.status_code, again.status_code) == (201, 200)
    bad = await client.post("/api/monitoring/tickets", json={"object_number": site.number}, headers=headers)
    assert bad.status_code == 400 and bad.json()["code"] == "validation_error"

    applied, rejected = (
        await _intake_events(client, tenant, state="done"),
        await _intake_events(client, tenant, state="rejected"),
    )
    assert [(e["outcome"], e["order_key"]) for e in applied] == [("applied", f"{tenant.id}:{site.number}")]
    detail = await client.get(f"/api/intake/events/{applied[0]['id']}", headers=tenant.admin.headers)
    assert detail.json()["result"]["ticket_id"] == made.json()["ticket_id"]
    assert json.loads(detail.json()["body"]) == body
    assert [(e["outcome"], e["error_code"]) for e in rejected] == [("rejected", "validation_error")]


async def test_a_refused_request_is_recorded_and_its_key_may_be_sent_again(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-1 through the pipeline: an alarm for an object the account does not have yet is refused
    (404, recorded as rejected); sent again with the same key once the object exists, it opens the
    ticket, as it always could."""
    site = await make_site(client, tenant)
    body = {"object_number": "NEW-1", "operator_name": "Op", "description": "Fire panel fault"}
    headers = {**site.monitoring, "Idempotency-Key": "alarm-early"}
    refused = await client.post("/api/monitoring/tickets", json=body, headers=headers)
    assert refused.status_code == 404 and refused.json()["code"] == "object_not_found"
    assert refused.headers["content-type"].startswith("application/problem+json")
    events = await _intake_events(client, tenant)
    assert [(e["state"], e["outcome"], e["error_code"]) for e in events] == [
        ("done", "rejected", "object_not_found")
    ]
    made = await client.post(
        "/api/objects",
        json={"number": "NEW-1", "name": "Annex", "address": "2 Guarded St"},
        headers=tenant.admin.headers,
    )
    assert made.status_code == 201, made.text
    opened = await client.post("/api/monitoring/tickets", json=body, headers=headers)
    assert opened.status_code == 201 and opened.json()["object_number"] == "NEW-1"
    again = await client.post("/api/monitoring/tickets", json=body, headers=headers)
    assert again.status_code == 200 and again.json()["ticket_id"] == opened.json()["ticket_id"]


@pytest.mark.skipif(not PG_URL, reason="a race between transactions needs PostgreSQL")
async def test_the_same_alarm_sent_at_once_many_times_opens_one_ticket_on_postgresql(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Issue 11 "each created once": ten copies of one alarm at the same moment, each on its own
    connection, give one ticket: one 201, the rest 200 with that ticket and duplicate=true;
    other alarms sent alongside each open their own."""
    site = await make_site(client, tenant)
    body = {"object_number": site.number, "operator_name": "Op", "description": "Intrusion zone 1"}
    same = {**site.monitoring, "Idempotency-Key": "alarm-race"}
    posts = [client.post("/api/monitoring/tickets", json=body, headers=same) for _ in range(10)]
    posts += [
        client.post(
            "/api/monitoring/tickets", json=body, headers={**site.monitoring, "Idempotency-Key": f"o-{n}"}
        )
        for n in range(5)
    ]
    answers = await asyncio.gather(*posts)
    raced, others = answers[:10], answers[10:]
    assert sorted(a.status_code for a in raced) == [200] * 9 + [201]
    assert len({a.json()["ticket_id"] for a in raced}) == 1
    assert all(a.json()["duplicate"] is (a.status_code == 200) for a in raced)
    assert [a.status_code for a in others] == [201] * 5
    assert await _tickets(app) == 6
    assert len(await _intake_events(client, tenant)) == 6


def test_keys_seen_before_the_upgrade_still_name_their_tickets(tmp_path: Path) -> None:
    """MON-1 across the move to the pipeline: an Idempotency-Key recorded before it becomes an
    applied intake event holding its ticket, so the sender's retry is answered with that ticket."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    config = alembic_config(url)
    command.upgrade(config, "heads")
    command.downgrade(config, "monitoring@monitoring_0001")
    plain = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with plain.begin() as connection:  # raw rows: the old table's foreign keys are not checked here
        connection.execute(
            text(
                "INSERT INTO monitoring_requests (account_id, idempotency_key, body_hash, ticket_id, created_at)"
                " VALUES (7, 'alarm-old', 'h1', 42, '2026-11-30 10:00:00')"
            )
        )
    command.upgrade(config, "heads")
    with plain.connect() as connection:
        moved = connection.execute(
            text(
                "SELECT source, account_id, dedupe_key, replay_key, state, outcome, result FROM intake_events"
            )
        ).all()
    plain.dispose()
    assert [tuple(row[:6]) for row in moved] == [("monitoring", 7, "7:alarm-old", "h1", "done", "applied")]
    assert json.loads(moved[0][6]) == {"ticket_id": 42}
