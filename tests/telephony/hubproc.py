"""Real hub processes for multi-process tests and the benchmark: a private PostgreSQL database,
``hub serve`` subprocesses on it with the PostgreSQL channels backend."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from hub.migrate import upgrade
from tests.conftest import TEST_SECRET
from tests.telephony.server import free_port

LOCAL_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"


def private_pg_url(name: str) -> str:
    """A database of its own on the test PostgreSQL server (HUB_TEST_DATABASE_URL's, else local)."""
    base = os.environ.get("HUB_TEST_DATABASE_URL", "").rsplit("/", 1)[0] or LOCAL_SERVER
    return f"{base}/{name}"


async def fresh_database(url: str) -> None:
    """Create the database if needed, empty it and migrate it. Raises (loudly) when the server
    cannot be reached: these tests must not silently skip."""
    server, name = url.rsplit("/", 1)
    dsn = server.replace("postgresql+asyncpg://", "postgresql://", 1) + "/postgres"
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
    await asyncio.to_thread(upgrade, url)


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
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"hub exited: {self.log_path.read_text()[-2000:]}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise TimeoutError(f"hub on {self.base_url} not ready: {self.log_path.read_text()[-2000:]}")

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
