"""What the test suite and the benchmarks share: settings and accounts for a fresh database,
and real ``hub serve`` processes on loopback with databases of their own. Not used by the hub itself.

``bench/`` never imports ``tests/``; both import from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import asyncpg
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from hub.accounts.schemas import EmployeeCreate
from hub.accounts.service import create_account, create_employee
from hub.auth.principal import Principal
from hub.auth.tokens import issue_access_token
from hub.db import Database
from hub.migrate import upgrade
from hub.settings import DatabaseSettings, FileSettings, SecuritySettings, ServerSettings, Settings

__all__ = [
    "LOCAL_SERVER",
    "PASSWORD",
    "TEST_SECRET",
    "TOKEN_URI",
    "Actor",
    "HubProcess",
    "Tenant",
    "asyncpg_dsn",
    "free_port",
    "fresh_database",
    "hub_processes",
    "make_settings",
    "make_tenant",
    "private_key_pem",
    "private_pg_url",
    "service_account",
    "wait_ready",
]

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
TOKEN_URI = "https://oauth2.test/token"


def make_settings(database_url: str, data_dir: Path, **server: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        database=DatabaseSettings(url=database_url),
        server=ServerSettings(worker_in_process=False, **server),
        files=FileSettings(),
        security=SecuritySettings(secret_key=TEST_SECRET, password_log2_n=10),
    )


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


async def make_tenant(
    db: Database, settings: Settings, name: str | None = None, slug: str | None = None
) -> Tenant:
    n = next(_tenant_counter)
    slug = slug or f"acc{n}"
    actors: dict[str, Actor] = {}
    async with db.sessionmaker() as session, session.begin():
        account = await create_account(session, name=name or f"Account {n}", slug=slug)
        roles: tuple[tuple[Literal["administrator", "dispatcher", "engineer"], str], ...] = (
            ("administrator", "100"),
            ("dispatcher", "101"),
            ("engineer", "102"),
        )
        for role, extension in roles:
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@lru_cache(maxsize=1)
def private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def service_account() -> dict[str, Any]:
    return {
        "project_id": "hub-test",
        "client_email": "push@hub-test.iam.gserviceaccount.com",
        "private_key": private_key_pem(),
        "private_key_id": "k1",
        "token_uri": TOKEN_URI,
    }


LOCAL_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"


def private_pg_url(name: str) -> str:
    """A database of its own on the test PostgreSQL server (HUB_TEST_DATABASE_URL's, else local)."""
    base = os.environ.get("HUB_TEST_DATABASE_URL", "").rsplit("/", 1)[0] or LOCAL_SERVER
    return f"{base}/{name}"


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy URL as a DSN asyncpg accepts."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def fresh_database(url: str, migrate: bool = True) -> None:
    """Create the database if needed, empty it and (by default) migrate it. Raises (loudly) when
    the server cannot be reached: these tests must not silently skip."""
    server, name = url.rsplit("/", 1)
    dsn = asyncpg_dsn(server) + "/postgres"
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise RuntimeError(
            f"PostgreSQL at {dsn} is unreachable; multi-process tests need it: {exc!r}"
        ) from exc
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()
    if migrate:
        await asyncio.to_thread(upgrade, url)


async def wait_ready(
    base_url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 60.0
) -> None:
    """Until the ``hub serve`` process on ``base_url`` answers ``/ready`` (its log's tail when it
    exits or times out)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base_url, timeout=2, trust_env=False) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"hub exited: {log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if (await http.get("/ready")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"hub on {base_url} not ready: {log_path.read_text()[-3000:]}")


class HubProcess:
    def __init__(self, url: str, data_dir: Path, *serve_args: str, **env: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir / f"hub-{self.port}.log"
        environment = {
            **os.environ,
            "HUB_DATABASE_URL": url,
            "HUB_CHANNELS_BACKEND": "postgres",
            "HUB_SECRET_KEY": TEST_SECRET,
            "HUB_PASSWORD_LOG2_N": "10",
            "HUB_DATA_DIR": str(data_dir),
            "HUB_HOST": "127.0.0.1",
            "HUB_PORT": str(self.port),
            "HUB_WORKER_IN_PROCESS": "true",  # the intake worker applies PBX events
            **env,
        }
        for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            environment.pop(proxy, None)
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "serve", *serve_args],
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    async def wait_ready(self, timeout: float = 60.0) -> None:
        await wait_ready(self.base_url, self.process, self.log_path, timeout)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


@contextlib.asynccontextmanager
async def hub_processes(
    url: str, data_dir: Path, count: int = 2, **env: str
) -> AsyncIterator[list[HubProcess]]:
    processes = [HubProcess(url, data_dir / f"p{i}", **env) for i in range(count)]
    try:
        await asyncio.gather(*(p.wait_ready() for p in processes))
        yield processes
    finally:
        for p in processes:
            p.stop()
