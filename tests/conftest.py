"""Shared fixtures: a migrated database per test (SQLite always, PostgreSQL when
``HUB_TEST_DATABASE_URL`` is set), a tiny app per test, and account factories."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from hub.app import create_app, shutdown
from hub.db import Database
from hub.devkit import PASSWORD as PASSWORD
from hub.devkit import TEST_SECRET as TEST_SECRET
from hub.devkit import Tenant as Tenant
from hub.devkit import make_settings as make_settings
from hub.devkit import make_tenant as make_tenant
from hub.migrate import upgrade
from hub.models import Base
from hub.settings import Settings

PG_URL = os.environ.get("HUB_TEST_DATABASE_URL", "")


def _sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database migrated once per session: a SQLite file to copy, or the PostgreSQL URL."""
    if PG_URL:
        asyncio.run(_reset_pg_schema(PG_URL))
        upgrade(PG_URL)
        return PG_URL
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(_sqlite_url(path))
    return str(path)


async def _reset_pg_schema(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


async def _truncate_pg(url: str) -> None:
    engine = create_async_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture
def database_url(migrated_template: str, tmp_path: Path) -> str:
    if PG_URL:
        asyncio.run(_truncate_pg(PG_URL))
        return PG_URL
    path = tmp_path / "hub.db"
    shutil.copyfile(migrated_template, path)
    return _sqlite_url(path)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "data")


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings, run_background_jobs=False)


@pytest.fixture
async def client(app: Litestar) -> AsyncGenerator[httpx.AsyncClient, None]:
    """An HTTP client that runs the app in the test's own event loop.

    Background jobs do not run here: tests drive them explicitly through ``app.state.jobs``.
    """
    app.state.settings.files_dir.mkdir(parents=True, exist_ok=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        yield c
    await shutdown(app)


@pytest.fixture
async def db(app: Litestar) -> AsyncGenerator[Database, None]:
    """The app's own database handle (use inside tests that also use ``client``)."""
    yield app.state.db


@pytest.fixture
async def tenant(db: Database, settings: Settings, client: httpx.AsyncClient) -> Tenant:
    return await make_tenant(db, settings, "Alpha Security")


@pytest.fixture
async def other_tenant(db: Database, settings: Settings, client: httpx.AsyncClient) -> Tenant:
    return await make_tenant(db, settings, "Beta Lifts")


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    yield
