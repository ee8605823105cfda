"""An integration calls the hub with its API key all day: its requests stay reads. The key's
``last_used_at`` (the administrators' key list) is written at most once a minute."""

from __future__ import annotations

from datetime import timedelta

import httpx
from litestar import Litestar
from sqlalchemy import update

from hub.accounts.models import ApiKey
from hub.db import utcnow
from tests.conftest import Tenant
from tests.statements import counting_statements


def _writes(statements: list[str]) -> int:
    return sum(1 for s in statements if s.lstrip().upper().startswith("UPDATE") and "last_used_at" in s)


async def _me(client: httpx.AsyncClient, key: str) -> None:
    response = await client.get("/api/auth/me", headers={"X-Api-Key": key})
    assert response.status_code == 200, response.text


async def test_last_used_is_written_at_most_once_a_minute(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-1: the first request with a key marks it used (the list shows when); more requests
    within the minute write nothing; once the mark is a minute old the next request renews it."""
    created = await client.post(
        "/api/api-keys", json={"name": "CRM", "kind": "pbx"}, headers=tenant.admin.headers
    )
    key, key_id = created.json()["key"], created.json()["api_key"]["id"]
    db = app.state.db
    with counting_statements(db) as first:
        await _me(client, key)
    with counting_statements(db) as later:
        for _ in range(5):
            await _me(client, key)
    assert (_writes(first), _writes(later)) == (1, 0), "\n\n".join(first + later)
    assert len(later) == 5, "one read per request"
    [listed] = (await client.get("/api/api-keys", headers=tenant.admin.headers)).json()["items"]
    assert listed["last_used_at"] is not None
    async with db.sessionmaker() as session, session.begin():
        await session.execute(
            update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow() - timedelta(minutes=2))
        )
    with counting_statements(db) as after_a_minute:
        await _me(client, key)
    assert _writes(after_a_minute) == 1
    [relisted] = (await client.get("/api/api-keys", headers=tenant.admin.headers)).json()["items"]
    assert relisted["last_used_at"] > listed["last_used_at"]
