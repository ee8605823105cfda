"""Two hubs in one test: in-process apps joined by an HTTP router (fast), or real ``hub serve``
processes (tests/exchange/hubproc.py). Hub-to-hub traffic always goes through the outbox worker
and the partner's real HTTP endpoints."""

from __future__ import annotations

import shutil
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar

from hub.app import create_app, shutdown
from hub.db import Database
from hub.exchange.service import mirror_public_files
from hub.outbox.worker import drain_outbox
from hub.settings import Settings
from tests.conftest import PG_URL, Tenant, _sqlite_url, make_settings, make_tenant
from tests.exchange import desk


class Router(httpx.AsyncBaseTransport):
    """Routes requests by host to in-process apps; a host can be taken down (connection refused)."""

    def __init__(self) -> None:
        self.apps: dict[str, Litestar] = {}
        self.down: set[str] = set()
        self.requests: list[httpx.Request] = []
        # Called with each request before it is delivered; may return a Response to use instead.
        self.tap: Any = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        host = request.url.host
        if host in self.down or host not in self.apps:
            raise httpx.ConnectError(f"{host} is down", request=request)
        if self.tap is not None:
            replaced = await self.tap(request)
            if replaced is not None:
                return replaced
        return await httpx.ASGITransport(app=self.apps[host]).handle_async_request(request)


@dataclass
class Hub:
    name: str
    app: Litestar
    client: httpx.AsyncClient
    db: Database
    settings: Settings
    tenants: list[Tenant] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.settings.server.public_url


async def drain(*hubs: Hub, rounds: int = 20) -> None:
    """Deliver everything queued on every hub until no hub has anything left to send."""
    for _ in range(rounds):
        moved = 0
        for hub in hubs:
            moved += await mirror_public_files(hub.db, hub.settings)  # the periodic job's round
            moved += await drain_outbox(hub.app.state.jobs)
        if moved == 0:
            return
    raise AssertionError("outboxes did not settle")


@pytest.fixture
def router() -> Router:
    return Router()


async def _make_hub(
    name: str, migrated_template: str, tmp_path: Path, router: Router, database_url: str | None = None
) -> Hub:
    if database_url is None:
        if PG_URL:
            database_url = PG_URL
        else:
            path = tmp_path / f"{name}.db"
            shutil.copyfile(migrated_template, path)
            database_url = _sqlite_url(path)
    # One PostgreSQL database holds both hubs' rows, so they share one file store too (as the
    # processes of one hub would); with SQLite each hub has its own.
    data_dir = tmp_path / ("data" if database_url == PG_URL else f"data-{name}")
    settings = make_settings(
        database_url,
        data_dir,
        public_url=f"http://{name}.test",
        allow_insecure_partners=True,
    )
    app = create_app(settings, run_background_jobs=False)
    settings.files_dir.mkdir(parents=True, exist_ok=True)
    app.state.jobs.http = httpx.AsyncClient(transport=router)
    router.apps[f"{name}.test"] = app
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}.test")
    return Hub(name, app, client, app.state.db, settings)


@pytest.fixture
async def two_hubs(
    migrated_template: str, database_url: str, tmp_path: Path, router: Router
) -> AsyncGenerator[tuple[Hub, Hub], None]:
    """Hub ``a`` (account "Alpha Security") and hub ``b`` (account "Beta Lifts"), separate SQLite
    databases (on PostgreSQL: one database, separate accounts)."""
    a = await _make_hub("hub-a", migrated_template, tmp_path, router, database_url)
    b = await _make_hub("hub-b", migrated_template, tmp_path, router)
    a.tenants.append(await make_tenant(a.db, a.settings, "Alpha Security"))
    b.tenants.append(await make_tenant(b.db, b.settings, "Beta Lifts"))
    try:
        yield a, b
    finally:
        for hub in (a, b):
            await hub.client.aclose()
            await hub.app.state.jobs.http.aclose()
        await shutdown(b.app)
        await shutdown(a.app)


@pytest.fixture
async def one_hub(
    migrated_template: str, database_url: str, tmp_path: Path, router: Router
) -> AsyncGenerator[Hub, None]:
    """One hub with three accounts (A, B, C): exchange between accounts of the same hub."""
    hub = await _make_hub("hub-one", migrated_template, tmp_path, router, database_url)
    for name in ("Alpha Security", "Beta Lifts", "Gamma Doors"):
        hub.tenants.append(await make_tenant(hub.db, hub.settings, name))
    try:
        yield hub
    finally:
        await hub.client.aclose()
        await hub.app.state.jobs.http.aclose()
        await shutdown(hub.app)


async def pair(issuer_hub: Hub, issuer: Tenant, acceptor_hub: Hub, acceptor: Tenant) -> tuple[int, int]:
    """EX-1/EX-2 through the API: returns (issuer's connection id, acceptor's connection id)."""
    issued = await issuer_hub.client.post("/api/exchange/pairing-keys", json={}, headers=issuer.admin.headers)
    assert issued.status_code == 201, issued.text
    connected = await acceptor_hub.client.post(
        "/api/exchange/connections", json={"key": issued.json()["key"]}, headers=acceptor.admin.headers
    )
    assert connected.status_code == 201, connected.text
    listed = await issuer_hub.client.get("/api/exchange/connections", headers=issuer.admin.headers)
    issuer_side = [c for c in listed.json()["items"] if c["uuid"] == connected.json()["uuid"]]
    assert len(issuer_side) == 1
    return int(issuer_side[0]["id"]), int(connected.json()["id"])


async def shared_ticket(a: Hub, b: Hub) -> tuple[Tenant, Tenant, dict[str, Any], dict[str, Any], int, int]:
    """A and B paired, one of A's tickets transferred to B: (alpha, beta, original, B's copy,
    A's connection id, B's connection id)."""
    alpha, beta = a.tenants[0], b.tenants[0]
    a_conn, b_conn = await pair(a, alpha, b, beta)
    original = await desk.new_ticket(a.client, alpha)
    await desk.transfer(a.client, alpha, original["id"], a_conn)
    await drain(a, b)
    copy = next(t for t in await desk.tickets(b.client, beta) if t["source"] == "partner")
    return alpha, beta, original, copy, a_conn, b_conn
