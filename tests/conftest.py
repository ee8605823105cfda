"""Shared fixtures: a migrated database per test (SQLite always, PostgreSQL when
``HUB_TEST_DATABASE_URL`` is set), a tiny app per test, and account factories."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from hub.accounts.schemas import EmployeeCreate
from hub.accounts.service import create_account, create_employee
from hub.app import create_app, shutdown
from hub.auth.principal import Principal
from hub.auth.tokens import issue_access_token
from hub.db import Database
from hub.migrate import upgrade
from hub.models import Base
from hub.settings import (
    DatabaseSettings,
    FileSettings,
    SecuritySettings,
    ServerSettings,
    Settings,
)

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
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


def make_settings(database_url: str, data_dir: Path, **server: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        database=DatabaseSettings(url=database_url),
        server=ServerSettings(worker_in_process=False, **server),
        files=FileSettings(),
        security=SecuritySettings(secret_key=TEST_SECRET, password_log2_n=10),
    )


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


PASSWORD = "correct horse battery"


@dataclass
class Actor:
    id: int
    name: str
    email: str
    role: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Tenant:
    """An account with one employee of each role, ready to call the API."""

    id: int
    slug: str
    name: str
    admin: Actor
    dispatcher: Actor
    engineer: Actor
    extra: dict[str, Any] = field(default_factory=dict)


_tenant_counter = iter(range(1, 1_000_000))


async def make_tenant(db: Database, settings: Settings, name: str | None = None) -> Tenant:
    n = next(_tenant_counter)
    slug = f"acc{n}"
    actors: dict[str, Actor] = {}
    async with db.sessionmaker() as session, session.begin():
        account = await create_account(session, name=name or f"Account {n}", slug=slug)
        for role, extension in (("administrator", "100"), ("dispatcher", "101"), ("engineer", "102")):
            email = f"{role}@{slug}.test"
            employee = await create_employee(
                session,
                account.id,
                EmployeeCreate(
                    name=f"{role.title()} {n}", email=email, role=role, password=PASSWORD, extension=extension
                ),
                log2_n=settings.security.password_log2_n,
            )
            principal = Principal("employee", account.id, employee.id, employee.name, role=role)
            token = issue_access_token(principal, settings.security.secret_key, 3600)
            actors[role] = Actor(employee.id, employee.name, email, role, token)
        account_id, account_name = account.id, account.name
    return Tenant(
        account_id, slug, account_name, actors["administrator"], actors["dispatcher"], actors["engineer"]
    )


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
