"""Real ``hub serve`` processes for the benchmarks that need SQLite too or several hubs of their
own (no dependency on ``tests/``): a :class:`Hub` owns a data directory, a database (a SQLite file,
or a PostgreSQL database made fresh by :func:`hub.devkit.fresh_database`), a loopback port, a
seeded account (``hub.devkit.make_tenant``) and a ``python -m hub.cli serve`` subprocess running
its workers in-process. What the tests share with the benchmarks is in ``hub.devkit``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from bench._floors import cpu_seconds, peak_rss_mb
from hub.db import Database
from hub.devkit import (
    LOCAL_SERVER,
    TEST_SECRET,
    Tenant,
    asyncpg_dsn,
    free_port,
    fresh_database,
    make_settings,
    make_tenant,
    wait_ready,
)
from hub.migrate import upgrade

__all__ = ["PG_SERVER", "SECRET", "Hub", "Tenant", "asyncpg_dsn", "free_port", "fresh_database"]

PG_SERVER = LOCAL_SERVER
SECRET = TEST_SECRET  # the hubs' HUB_SECRET_KEY: the seeded actors' tokens are signed with it


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
        """Migrate the database (SQLite) and create an account with one employee of each role
        (before the process starts); their access tokens are signed with the hub's secret."""
        if self.is_sqlite:
            await asyncio.to_thread(upgrade, self.database_url)
        db = Database(self.database_url)
        try:
            self.tenant = await make_tenant(
                db, make_settings(self.database_url, self.data_dir), account_name, slug
            )
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
        assert self.process is not None, f"{self.name} was not started"
        await wait_ready(self.base_url, self.process, self.log_path, timeout)

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

    def peak_rss_mb(self) -> float:
        """VmHWM of the running process, in MiB (0 when it is not running)."""
        return peak_rss_mb(self.process.pid) if self.process is not None else 0.0

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far (0 when it is not running)."""
        return cpu_seconds(self.process.pid) if self.process is not None else 0.0
