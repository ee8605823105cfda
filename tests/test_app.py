"""The app shell: health, readiness, metrics, problem JSON for every error, settings, CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute

from hub.settings import ConfigurationError, load_settings
from tests.conftest import PASSWORD, Tenant
from tests.isolation_factories import WEB_PAGES


async def test_health_and_ready_answer_without_credentials(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    assert (await client.get("/ready")).json() == {"status": "ready"}


async def test_metrics_are_exposed_in_prometheus_format(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await client.get("/api/auth/me", headers=tenant.admin.headers)
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert 'path="/api/auth/me",status_code="200"' in metrics.text


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/no-such-route", 404, "not_found"),
        ("DELETE", "/api/auth/login", 405, "method_not_allowed"),
        ("GET", "/api/employees", 401, "unauthorized"),
    ],
)
async def test_errors_are_problem_json_with_a_stable_code(
    client: httpx.AsyncClient, method: str, path: str, status: int, code: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code and body["status"] == status and body["title"]


async def test_malformed_json_and_unknown_fields_are_validation_problems(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    broken = await client.post(
        "/api/auth/login", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400 and broken.json()["code"] == "bad_request"
    extra = await client.post(
        "/api/auth/login", json={"account": tenant.slug, "login": "a@b.c", "password": "x", "admin": True}
    )
    assert extra.status_code == 400 and extra.json()["code"] == "validation_error"


async def test_oversized_body_is_refused_with_problem_json(client: httpx.AsyncClient, tenant: Tenant) -> None:
    huge = b'{"account": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    response = await client.post(
        "/api/auth/login", content=huge, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


# Not part of the JSON API: the docs themselves, static files, the HTML console, Prometheus text.
NOT_API = ("/docs", "/static", "/console", "/metrics")
# The web app's pages (HTML for browsers, ISSUE 13) are not API operations.
# Success answers still documented as an empty schema by their domains (event streams, provider-
# specific webhook replies); reported to their owners, to be removed from here once documented.
SCHEMA_PENDING = {
    "GET /api/telephony/stream",
    "GET /api/app/stream",
    "POST /api/webhooks/payments/{provider}/{key}",
    "POST /api/webhooks/payments/{provider}/{key}/{kind}",
}


def _has_schema(response: dict[str, Any]) -> bool:
    content = response.get("content") or {}
    return bool(content) and all(media.get("schema") for media in content.values())


async def test_openapi_documents_every_route(app: Litestar, client: httpx.AsyncClient) -> None:
    """Every route of the app (method and path; docs and static files aside) is in the OpenAPI
    document, and each operation documents its success answer: a 2xx with a content schema
    (a 204 or a redirect-free empty answer has none)."""
    spec = (await client.get("/docs/openapi.json")).json()
    assert "BearerToken" in spec["components"]["securitySchemes"]
    documented = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    served = {
        (str(method), route.path_format)
        for route in app.routes
        if isinstance(route, HTTPRoute)
        and not route.path_format.startswith(NOT_API)
        and route.path_format not in WEB_PAGES
        for method, (handler, _) in route.route_handler_map.items()
        if method not in ("OPTIONS", "HEAD")
    }
    assert served - documented == set()
    assert documented - served == set()
    undocumented = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            success = {code: r for code, r in op.get("responses", {}).items() if code.startswith("2")}
            if f"{method.upper()} {path}" in SCHEMA_PENDING:
                continue
            if not success or not all(code == "204" or _has_schema(r) for code, r in success.items()):
                undocumented.append(f"{method.upper()} {path}: {sorted(op.get('responses', {}))}")
    assert not undocumented, "\n".join(undocumented)


def test_bad_settings_fail_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HUB_DATABASE_URL", "mysql://nope")
    with pytest.raises(ConfigurationError, match="HUB_DATABASE_URL"):
        load_settings()
    monkeypatch.delenv("HUB_DATABASE_URL")
    monkeypatch.setenv("HUB_PORT", "eighty")
    with pytest.raises(ConfigurationError, match="HUB_PORT"):
        load_settings()
    monkeypatch.delenv("HUB_PORT")
    monkeypatch.setenv("HUB_SECRET_KEY", "short")
    with pytest.raises(ConfigurationError, match="HUB_SECRET_KEY"):
        load_settings()


def test_secret_key_is_generated_once_and_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HUB_SECRET_KEY", raising=False)
    first = load_settings().security.secret_key
    assert load_settings().security.secret_key == first
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0


def test_cli_account_create_then_sign_in(tmp_path: Path) -> None:
    """`hub account create` on the embedded SQLite migrates it and makes an administrator who can sign in."""
    env = {**os.environ, "HUB_DATA_DIR": str(tmp_path), "HUB_PASSWORD_LOG2_N": "10"}
    env.pop("HUB_DATABASE_URL", None)
    hub = [sys.executable, "-m", "hub.cli"]
    created = subprocess.run(
        [
            *hub,
            "account",
            "create",
            "--name",
            "Gamma",
            "--slug",
            "gamma",
            "--admin-email",
            "boss@gamma.test",
            "--admin-password",
            PASSWORD,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    again = subprocess.run(
        [
            *hub,
            "account",
            "create",
            "--name",
            "Gamma",
            "--slug",
            "gamma",
            "--admin-email",
            "x@gamma.test",
            "--admin-password",
            PASSWORD,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # A clear one-line message, not a traceback.
    assert again.returncode == 1 and "already exists" in again.stderr
    assert "Traceback" not in again.stderr
    assert again.stderr.strip().splitlines()[-1].startswith("hub account create:")
    assert (tmp_path / "hub.db").exists()


def test_serve_host_and_port_make_the_public_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`hub serve --host/--port`: the public URL (docs line, links, pairing keys) follows the
    CLI address unless HUB_PUBLIC_URL is set."""
    from hub.cli import _serving_at

    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HUB_PUBLIC_URL", raising=False)
    monkeypatch.delenv("HUB_HOST", raising=False)
    monkeypatch.delenv("HUB_PORT", raising=False)
    served = _serving_at(load_settings(), "0.0.0.0", 9123).server
    assert (served.host, served.port, served.public_url) == ("0.0.0.0", 9123, "http://0.0.0.0:9123")
    assert _serving_at(load_settings(), None, None).server.public_url == "http://127.0.0.1:8000"
    monkeypatch.setenv("HUB_PUBLIC_URL", "https://hub.example/")
    assert _serving_at(load_settings(), "0.0.0.0", 9123).server.public_url == "https://hub.example"


async def test_a_lost_uniqueness_race_is_a_409_problem_not_a_500() -> None:
    """Bad input never gets a 500: a unique check that loses a race with a concurrent request
    (the database refuses the second insert) answers 409 problem JSON the client may retry."""
    from litestar import Litestar, post
    from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert

    from hub.errors import exception_handlers

    table = Table("t", MetaData(), Column("id", Integer, primary_key=True))
    engine = create_engine("sqlite://")
    table.metadata.create_all(engine)

    @post("/twice", sync_to_thread=False)
    def insert_twice() -> None:
        with engine.begin() as connection:
            connection.execute(insert(table).values(id=1))
            connection.execute(insert(table).values(id=1))

    app = Litestar([insert_twice], exception_handlers=exception_handlers)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post("/twice")
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "concurrent_conflict"


async def test_a_text_longer_than_its_column_is_a_400_problem_not_a_500() -> None:
    """Bad input never gets a 500: PostgreSQL refusing an over-long text (SQLSTATE 22001) answers
    400 ``value_too_long`` (SQLite does not check lengths, so the real server is used here)."""
    import asyncpg
    from litestar import Litestar, post

    from hub.errors import exception_handlers
    from tests.telephony.hubproc import private_pg_url

    dsn = private_pg_url("postgres").replace("postgresql+asyncpg://", "postgresql://", 1)

    @post("/long")
    async def insert_long() -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute("CREATE TEMP TABLE short_text (value varchar(3))")
            await connection.execute("INSERT INTO short_text VALUES ('four')")
        finally:
            await connection.close()

    app = Litestar([insert_long], exception_handlers=exception_handlers)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post("/long")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "value_too_long"
