"""Effects only after commit (the rule every outbox wake-up, live event and stored file relies on),
also when a service uses a savepoint to try something and undo it; and a pool that survives
PostgreSQL dropping its connections."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest
from litestar import Litestar
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from hub.db import after_commit, after_rollback
from tests.conftest import PG_URL, Tenant


def _session() -> Session:
    session = Session(create_engine("sqlite://"))
    session.execute(text("SELECT 1"))
    return session


def test_a_released_savepoint_is_not_the_commit() -> None:
    session = _session()
    ran: list[str] = []
    after_commit(session, lambda: ran.append("outer"))
    with session.begin_nested():
        after_commit(session, lambda: ran.append("inside savepoint"))
    assert ran == [], "callbacks ran when the savepoint was released, before the real commit"
    session.commit()
    assert ran == ["outer", "inside savepoint"]


def test_a_rolled_back_savepoint_drops_only_its_own_effects() -> None:
    session = _session()
    ran: list[str] = []
    undone: list[str] = []
    after_commit(session, lambda: ran.append("kept"))
    after_rollback(session, lambda: undone.append("outer file"))
    savepoint = session.begin_nested()
    after_commit(session, lambda: ran.append("dropped"))
    after_rollback(session, lambda: undone.append("savepoint file"))
    with session.begin_nested():
        after_commit(session, lambda: ran.append("dropped too"))
    savepoint.rollback()
    assert undone == ["savepoint file"]
    session.commit()
    assert ran == ["kept"]
    assert undone == ["savepoint file"], "a committed change's file must stay"


def test_a_rollback_drops_every_effect_and_undoes_every_file() -> None:
    session = _session()
    ran: list[str] = []
    undone: list[str] = []
    after_commit(session, lambda: ran.append("never"))
    after_rollback(session, lambda: undone.append("outer"))
    session.begin_nested()
    after_rollback(session, lambda: undone.append("savepoint"))
    session.rollback()
    assert ran == []
    assert sorted(undone) == ["outer", "savepoint"]
    session.execute(text("SELECT 1"))
    session.commit()
    assert ran == []


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL: HUB_TEST_DATABASE_URL")
async def test_the_hub_survives_postgresql_dropping_its_connections(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """A restart, a failover or an idle kill closes the hub's pooled connections: the next request
    still works, with no ping per request to find out. The pool hands out no connection the
    server has closed; a close the process has not read yet when the request comes fails that one
    request, and the retry works. Of three kills, at most one may need that retry."""
    headers = tenant.dispatcher.headers
    retries = 0
    for round_ in range(3):
        made = await client.post("/api/tickets", json={"title": f"Before {round_}"}, headers=headers)
        assert made.status_code == 201, made.text
        await _drop_every_connection_but_this_one()
        app.state.subject_cache.forget()  # the sign-in check needs a connection too
        after = await client.post("/api/tickets", json={"title": f"After {round_}"}, headers=headers)
        if after.status_code == 500:
            retries += 1
            after = await client.post("/api/tickets", json={"title": f"After {round_}"}, headers=headers)
        assert after.status_code == 201, after.text
    assert retries <= 1


async def _drop_every_connection_but_this_one() -> None:
    admin = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        killed = await admin.fetch(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        assert killed, "the hub had pooled connections to drop"
        while await admin.fetchval(  # until the server has closed them (not a wait for time)
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", [r["pid"] for r in killed]
        ):
            await asyncio.sleep(0.01)
    finally:
        await admin.close()
