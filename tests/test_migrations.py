"""Schema changes go through migrations: the migrated schema equals the models on SQLite and
PostgreSQL, ``hub migrate`` works from the command line, and ``hub serve`` refuses an unmigrated
PostgreSQL (issue 2, "Database")."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from hub.migrate import alembic_config, upgrade
from hub.models import Base
from tests.conftest import PG_URL, TEST_SECRET
from tests.telephony.hubproc import private_pg_url


def _hub_command() -> list[str]:
    """The installed ``hub`` console script (the CLI entry a user runs)."""
    script = Path(sys.executable).parent / "hub"
    found = str(script) if script.exists() else shutil.which("hub")
    assert found, "the `hub` console script is not installed (pip install -e .)"
    return [found]


def _env(database_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return env | {
        "HUB_DATABASE_URL": database_url,
        "HUB_DATA_DIR": str(data_dir),
        "HUB_SECRET_KEY": TEST_SECRET,
        "HUB_PASSWORD_LOG2_N": "10",
    }


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def _schema_diff(url: str) -> tuple[list[Any], set[str]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(_differences)
            heads = await connection.run_sync(
                lambda c: set(MigrationContext.configure(c).get_current_heads())
            )
    finally:
        await engine.dispose()
    return diff, heads


def _at_heads(url: str, current: set[str]) -> bool:
    """Whether the database's heads cover every head of the code (a branch head another branch
    depends on is applied without being listed in alembic_version)."""
    script = ScriptDirectory.from_config(alembic_config(url))
    applied = {r.revision for r in script.revision_map.iterate_revisions(tuple(current), "base") if r}
    return bool(current) and set(script.get_heads()) <= applied


async def _recreate_database(url: str) -> None:
    """Drop and create the database named in ``url`` (connecting to the server's ``postgres`` database)."""
    target = make_url(url)
    admin = create_async_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
            await connection.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        await admin.dispose()


@pytest.fixture
def scratch_pg() -> Iterator[str]:
    """A PostgreSQL database of its own (next to the test database, or on the local server when
    the suite runs on SQLite), empty. An unreachable server fails the test: PostgreSQL is the
    production database, so its migrations are checked in every run."""
    name = make_url(PG_URL).database if PG_URL else "test"
    scratch = private_pg_url(f"{name}_migrations")
    asyncio.run(_recreate_database(scratch))
    yield scratch


def test_migrated_sqlite_equals_the_models(tmp_path: Path) -> None:
    """Upgrading an empty SQLite file to every head gives exactly the schema of the models."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    upgrade(url)
    diff, heads = asyncio.run(_schema_diff(url))
    assert diff == [], f"models and migrations differ on SQLite: {diff}"
    assert _at_heads(url, heads)


def test_migrated_postgresql_equals_the_models(scratch_pg: str) -> None:
    """Upgrading an empty PostgreSQL database to every head gives exactly the schema of the models."""
    upgrade(scratch_pg)
    diff, heads = asyncio.run(_schema_diff(scratch_pg))
    assert diff == [], f"models and migrations differ on PostgreSQL: {diff}"
    assert _at_heads(scratch_pg, heads)
    upgrade(scratch_pg)  # a second run is a no-op


def test_hub_migrate_command(tmp_path: Path) -> None:
    """`hub migrate` applies every migration to the configured database and can be run again."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    for _ in range(2):
        done = subprocess.run(
            [*_hub_command(), "migrate"], env=_env(url, tmp_path), capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert "database migrated" in done.stdout
    _, heads = asyncio.run(_schema_diff(url))
    assert _at_heads(url, heads)


def test_hub_serve_refuses_unmigrated_postgresql(scratch_pg: str, tmp_path: Path) -> None:
    """`hub serve` on a PostgreSQL database that was not migrated stops with a message naming
    `hub migrate` instead of serving an old schema; after `hub migrate` the check passes."""
    env = _env(scratch_pg, tmp_path) | {"HUB_PORT": "0"}
    refused = subprocess.run(
        [*_hub_command(), "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode != 0
    assert "hub migrate" in refused.stderr
    assert "listening" not in refused.stdout

    from hub.cli import _check_migrated
    from hub.settings import load_settings

    migrated = subprocess.run(
        [*_hub_command(), "migrate"], env=env, capture_output=True, text=True, timeout=120
    )
    assert migrated.returncode == 0, migrated.stderr
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        asyncio.run(_check_migrated(load_settings()))  # returns instead of exiting
    finally:
        os.environ.clear()
        os.environ.update(saved)
