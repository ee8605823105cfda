"""Real ``hub serve`` processes for the exchange's end-to-end tests and benchmark: each hub has
its own data directory and SQLite database (or its own PostgreSQL database), its own loopback
port and public URL, and runs its outbox worker in-process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from hub.db import Database
from hub.migrate import upgrade
from tests.conftest import TEST_SECRET, Tenant, make_settings, make_tenant
from tests.telephony.server import free_port

__all__ = ["HubProcess", "start_hub"]


class HubProcess:
    """One hub: a database, seeded accounts, and a ``hub serve`` process that can be restarted."""

    def __init__(self, name: str, root: Path, database_url: str | None = None, **env: str) -> None:
        self.name = name
        self.data_dir = root / name
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.database_url = database_url or f"sqlite+aiosqlite:///{self.data_dir / 'hub.db'}"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.tenants: list[Tenant] = []
        self.log_path = self.data_dir / "hub.log"

    async def seed(self, *account_names: str) -> list[Tenant]:
        """Migrate the database and create accounts (before the process starts)."""
        await asyncio.to_thread(upgrade, self.database_url)
        db = Database(self.database_url)
        try:
            settings = make_settings(self.database_url, self.data_dir)
            for name in account_names:
                self.tenants.append(await make_tenant(db, settings, name))
        finally:
            await db.dispose()
        return self.tenants

    def start(self) -> None:
        environment = {
            **os.environ,
            "HUB_DATABASE_URL": self.database_url,
            "HUB_SECRET_KEY": TEST_SECRET,
            "HUB_PASSWORD_LOG2_N": "10",
            "HUB_DATA_DIR": str(self.data_dir),
            "HUB_HOST": "127.0.0.1",
            "HUB_PORT": str(self.port),
            "HUB_PUBLIC_URL": self.base_url,
            "HUB_ALLOW_INSECURE_PARTNERS": "true",
            "HUB_WORKER_IN_PROCESS": "true",
            "HUB_OUTBOX_POLL_SECONDS": "0.2",
            "HUB_OUTBOX_INITIAL_DELAY_SECONDS": "0.2",
            "HUB_OUTBOX_MAX_DELAY_SECONDS": "1.0",
            "HUB_OUTBOX_MAX_ATTEMPTS": "1000",
            **self.env,
        }
        for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            environment.pop(proxy, None)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "serve"], env=environment, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    async def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as http:
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

    async def restart(self) -> None:
        self.stop()
        self.start()
        await self.wait_ready()


@contextlib.asynccontextmanager
async def start_hub(name: str, root: Path, *accounts: str, database_url: str | None = None):  # type: ignore[no-untyped-def]
    hub = HubProcess(name, root, database_url)
    await hub.seed(*accounts)
    hub.start()
    try:
        await hub.wait_ready()
        yield hub
    finally:
        hub.stop()
