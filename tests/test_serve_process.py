"""`hub serve` as operators run it: a real server process on loopback (issue 12).

The client address the sender checks use (PAY-6), the access log, the request id, and refusals
to listen told in one line before anything says "listening".
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from hub.db import Database
from hub.devkit import HubProcess, Tenant, make_settings, make_tenant

FORGED = {"X-Forwarded-For": "185.71.76.5"}  # inside YooKassa's network; we are 127.0.0.1


def _environment(database_url: str) -> dict[str, str]:
    # The embedded SQLite has one process: its live events stay in it.
    return {"HUB_CHANNELS_BACKEND": "memory"} if database_url.startswith("sqlite") else {}


@pytest.fixture
async def served(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[HubProcess, Tenant]]:
    db = Database(database_url)
    try:
        tenant = await make_tenant(db, make_settings(database_url, tmp_path / "seed"), "Alpha Security")
    finally:
        await db.dispose()
    hub = HubProcess(database_url, tmp_path / "served", **_environment(database_url))
    try:
        await hub.wait_ready()
        yield hub, tenant
    finally:
        hub.stop()


def _log_lines(hub: HubProcess) -> list[dict[str, object]]:
    lines = []
    for raw in hub.log_path.read_text().splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


async def test_a_forged_forwarded_for_from_loopback_is_not_the_sender(
    served: tuple[HubProcess, Tenant],
) -> None:
    """PAY-6, issue 12 defect 1: with HUB_TRUSTED_PROXIES empty, a request from 127.0.0.1 that
    claims in X-Forwarded-For to come from YooKassa's network is refused by the sender check, and
    the administrators' callback log records the real peer, 127.0.0.1 (the server itself must not
    rewrite the client address from the header)."""
    hub, tenant = served
    async with httpx.AsyncClient(base_url=hub.base_url, headers=tenant.admin.headers) as http:
        created = await http.post(
            "/api/payment-accounts",
            json={
                "provider": "yookassa",
                "name": "YooKassa",
                "credentials": {"shop_id": "123456", "secret_key": "test_secret"},
                "allowed_networks": ["185.71.76.0/27"],
            },
        )
        assert created.status_code == 201, created.text
        path = httpx.URL(created.json()["webhook_url"]).path
        note = {"type": "notification", "event": "payment.succeeded", "object": {"id": "p-1", "status": "x"}}
        answer = await http.post(path, json=note, headers=FORGED)
        assert answer.status_code == 403, answer.text
        assert answer.json()["code"] == "sender_not_allowed"
        log = (await http.get("/api/intake/events", params={"source": "payments"})).json()["items"]
    assert [(e["remote_addr"], e["state"]) for e in log] == [("127.0.0.1", "rejected")]


async def test_every_request_is_one_access_line_with_its_request_id(
    served: tuple[HubProcess, Tenant],
) -> None:
    """Issue 12, operability: one structured line per request (method, path template, status,
    duration, account, request id), 401s and 404s included; the request id is the caller's
    X-Request-ID when given, else a new one, and comes back in the response header."""
    hub, tenant = served
    async with httpx.AsyncClient(base_url=hub.base_url) as http:
        mine = await http.get("/api/auth/me", headers={**tenant.admin.headers, "X-Request-ID": "trace-42"})
        anonymous = await http.get("/api/employees")
        unknown = await http.get("/api/no-such-thing")
        ticket = await http.get("/api/tickets/999999", headers=tenant.dispatcher.headers)
    assert mine.headers["x-request-id"] == "trace-42"
    generated = {r.headers["x-request-id"] for r in (anonymous, unknown, ticket)}
    assert len(generated) == 3 and "trace-42" not in generated
    hub.stop()  # flushes the log
    access = {line["request_id"]: line for line in _log_lines(hub) if line.get("event") == "access"}
    assert access["trace-42"] | {"duration_ms": 0} == access["trace-42"] | {
        "method": "GET",
        "path": "/api/auth/me",
        "status": 200,
        "account": tenant.id,
        "caller": f"employee:{tenant.admin.id}",
        "duration_ms": 0,
    }
    assert isinstance(access["trace-42"]["duration_ms"], float)
    assert access[anonymous.headers["x-request-id"]]["status"] == 401
    assert access[unknown.headers["x-request-id"]]["status"] == 404
    ticket_line = access[ticket.headers["x-request-id"]]
    assert (ticket_line["path"], ticket_line["status"]) == ("/api/tickets/{ticket_id}", 404)


def _serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HUB_DATA_DIR": str(tmp_path), "HUB_SECRET_KEY": "k" * 40}
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "serve", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_port_out_of_range_is_refused_in_one_line(tmp_path: Path) -> None:
    """Issue 12 defect 6: `hub serve --port 99999` neither listens nor says it does."""
    served = _serve(tmp_path, "--port", "99999")
    assert served.returncode != 0
    assert "listening" not in served.stdout
    assert served.stderr.strip().splitlines() == [
        "hub serve: --port 99999 is not a TCP port: choose one from 1 to 65535"
    ]


def test_a_port_in_use_is_told_before_anything_says_listening(tmp_path: Path) -> None:
    """Issue 12 defect 6: a port another program holds: one line naming it, no "listening"."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        served = _serve(tmp_path, "--port", str(port))
    assert served.returncode != 0
    assert "listening" not in served.stdout
    lines = served.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port} is already in use" in lines[0], served.stderr


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def _live_clients(http: httpx.AsyncClient) -> float:
    return _samples((await http.get("/metrics")).text)[("hub_live_stream_clients", frozenset())]


async def test_metrics_show_live_streams_jobs_and_the_pool(served: tuple[HubProcess, Tenant]) -> None:
    """Issue 12, operability: a running server's /metrics counts open live streams (TEL-4
    pop-ups), its background jobs' rounds and their duration, and its database pool's use."""
    hub, tenant = served
    async with httpx.AsyncClient(base_url=hub.base_url, timeout=10) as http:
        assert await _live_clients(http) == 0
        async with http.stream("GET", "/api/telephony/stream", headers=tenant.dispatcher.headers) as stream:
            lines = stream.aiter_lines()
            assert (await anext(lines)).startswith(":")  # connected
            assert await _live_clients(http) == 1
        for _ in range(50):  # the server notices the closed stream moments later
            if await _live_clients(http) == 0:
                break
            await asyncio.sleep(0.1)
        assert await _live_clients(http) == 0
        samples = _samples((await http.get("/metrics")).text)
    assert samples[("hub_job_runs_total", frozenset({("job", "outbox"), ("outcome", "ok")}))] >= 1
    assert samples[("hub_job_duration_seconds_count", frozenset({("job", "outbox")}))] >= 1
    assert samples[("hub_db_pool_connections", frozenset({("state", "size")}))] >= 1


async def test_an_unexpected_error_is_logged_once_with_its_traceback(
    served: tuple[HubProcess, Tenant], database_url: str
) -> None:
    """Issue 12, operability: a request that fails inside the hub (here its database lost a
    table) answers 500 problem JSON and is logged once with its traceback, under the request id
    the caller gets back; its access line says 500."""
    hub, tenant = served
    engine = create_async_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(text("ALTER TABLE price_items RENAME TO price_items_away"))
    try:
        async with httpx.AsyncClient(base_url=hub.base_url) as http:
            failed = await http.get("/api/price-list", headers=tenant.admin.headers)
    finally:
        async with engine.begin() as connection:
            await connection.execute(text("ALTER TABLE price_items_away RENAME TO price_items"))
        await engine.dispose()
    assert failed.status_code == 500 and failed.json()["code"] == "internal_error"
    request_id = failed.headers["x-request-id"]
    hub.stop()
    lines = [line for line in _log_lines(hub) if line.get("request_id") == request_id]
    assert [(line["event"], line.get("status")) for line in lines] == [
        ("unhandled_error", None),
        ("access", 500),
    ]
    assert "Traceback" in str(lines[0]["exception"]) and "price_items" in str(lines[0]["exception"])
    assert sum("Traceback" in raw for raw in hub.log_path.read_text().splitlines()) == 1
