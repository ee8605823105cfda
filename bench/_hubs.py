"""Real ``hub serve`` processes for the benchmarks (no dependency on ``tests/``).

A :class:`Hub` owns a data directory, a database (a SQLite file, or a PostgreSQL database made fresh
by :func:`fresh_database`), a loopback port, seeded accounts with bearer tokens, and a
``python -m hub.cli serve`` subprocess running its outbox worker in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from hub.accounts.schemas import EmployeeCreate
from hub.accounts.service import create_account, create_employee
from hub.auth.principal import Principal
from hub.auth.tokens import issue_access_token
from hub.db import Database
from hub.migrate import upgrade

__all__ = ["PG_SERVER", "SECRET", "Actor", "Hub", "Tenant", "asyncpg_dsn", "free_port", "fresh_database"]

PG_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"
SECRET = "bench-secret-key-that-is-long-enough-0123456789"
PASSWORD = "correct horse battery"
TOKEN_SECONDS = 6 * 3600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy URL as a DSN asyncpg accepts."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def fresh_database(url: str, migrate: bool = True) -> None:
    """Create the PostgreSQL database if needed, empty its public schema, and (by default) migrate it."""
    server, name = url.rsplit("/", 1)
    conn = await asyncpg.connect(asyncpg_dsn(server) + "/postgres", timeout=10)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()
    if migrate:
        await asyncio.to_thread(upgrade, url)


@dataclass
class Actor:
    id: int
    role: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Tenant:
    id: int
    name: str
    admin: Actor
    dispatcher: Actor


class Hub:
    """One hub: a database, one seeded account, and a ``hub serve`` process."""

    def __init__(self, name: str, root: Path, database_url: str | None = None, **env: str) -> None:
        self.name = name
        self.data_dir = root / name
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.database_url = database_url or f"sqlite+aiosqlite:///{self.data_dir / 'hub.db'}"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "hub.log"
        self.tenant: Tenant | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> str:
        return self.database_url.split("///", 1)[1]

    async def seed(self, account_name: str, slug: str) -> Tenant:
        """Migrate the database and create an account with an administrator and a dispatcher
        (before the process starts); their access tokens are issued with the hub's secret."""
        if self.is_sqlite:
            await asyncio.to_thread(upgrade, self.database_url)
        db = Database(self.database_url)
        actors: dict[str, Actor] = {}
        try:
            async with db.sessionmaker() as session, session.begin():
                account = await create_account(session, name=account_name, slug=slug)
                for role, extension in (("administrator", "100"), ("dispatcher", "101")):
                    employee = await create_employee(
                        session,
                        account.id,
                        EmployeeCreate(
                            name=f"{role.title()} {account_name}",
                            email=f"{role}@{slug}.test",
                            role=role,
                            password=PASSWORD,
                            extension=extension,
                        ),
                        log2_n=10,
                    )
                    principal = Principal("employee", account.id, employee.id, employee.name, role=role)
                    actors[role] = Actor(
                        employee.id, role, issue_access_token(principal, SECRET, TOKEN_SECONDS)
                    )
                self.tenant = Tenant(account.id, account.name, actors["administrator"], actors["dispatcher"])
        finally:
            await db.dispose()
        return self.tenant

    def start(self) -> None:
        environment = {
            **os.environ,
            "HUB_DATABASE_URL": self.database_url,
            "HUB_SECRET_KEY": SECRET,
            "HUB_PASSWORD_LOG2_N": "10",
            "HUB_DATA_DIR": str(self.data_dir),
            "HUB_HOST": "127.0.0.1",
            "HUB_PORT": str(self.port),
            "HUB_PUBLIC_URL": self.base_url,
            "HUB_ALLOW_INSECURE_PARTNERS": "true",
            "HUB_WORKER_IN_PROCESS": "true",
            **self.env,
        }
        for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            environment.pop(proxy, None)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "serve"],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2, trust_env=False) as http:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-3000:]}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def _proc(self, name: str) -> str:
        if self.process is None:
            return ""
        with contextlib.suppress(OSError):
            return Path(f"/proc/{self.process.pid}/{name}").read_text()
        return ""

    def peak_rss_mb(self) -> float:
        """VmHWM of the running process, in MiB (0 when it is not running)."""
        for line in self._proc("status").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far."""
        stat = self._proc("stat")
        if not stat:
            return 0.0
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
