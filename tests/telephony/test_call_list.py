"""TEL-6: the call list's columns and filters (date, direction, employee, missed, client, paging)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Tenant
from tests.telephony.conftest import Clients, Pbx, call_page, calls


async def _day_of_calls(pbx: Pbx) -> None:
    """Four calls on four days: answered by the engineer, missed by both, answered by the
    dispatcher, and the engineer's unanswered outgoing call."""

    async def call(day: int, call_id: str, *events: dict[str, Any]) -> None:
        for minute, event in enumerate(events):
            at = f"2026-11-0{day}T10:0{minute}:00Z"
            r = await pbx.hub(call_id=call_id, occurred_at=at, **event)
            assert r.status_code == 200, r.text

    ring = {"event": "ringing", "extensions": ["101", "102"]}
    await call(
        1,
        "a-1",
        {**ring, "from_number": "+7 912 345-67-89"},
        {"event": "answered", "extension": "102"},
        {"event": "hangup", "cause": "normalClearing", "duration": 60},
    )
    await call(2, "a-2", {**ring, "from_number": "+79990001122"}, {"event": "hangup", "cause": "noAnswer"})
    await call(
        3,
        "a-3",
        {"event": "ringing", "extensions": ["101"], "from_number": "+74951234567"},
        {"event": "answered", "extension": "101"},
        {"event": "hangup", "cause": "normalClearing"},
    )
    await call(
        4,
        "a-4",
        {"event": "outgoing", "extension": "102", "to_number": "+74951234567"},
        {"event": "hangup", "cause": "noAnswer"},
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"employee": "dispatcher", "missed": "true"}, ["a-2"]),
        ({"employee": "dispatcher"}, ["a-3", "a-2"]),
        ({"employee": "engineer"}, ["a-4", "a-2", "a-1"]),
        ({"date_from": "2026-11-02T00:00:00Z", "date_to": "2026-11-04T00:00:00+00:00"}, ["a-3", "a-2"]),
        ({"date_from": "2026-11-03T12:00:00+03:00"}, ["a-4", "a-3"]),
        ({"missed": "false"}, ["a-4", "a-3", "a-1"]),
        ({"missed": "true"}, ["a-2"]),
        ({"direction": "in", "company": True}, ["a-3", "a-1"]),
        ({"company": True}, ["a-4", "a-3", "a-1"]),
    ],
)
async def test_call_list_filters(
    client: httpx.AsyncClient,
    tenant: Tenant,
    pbx: Pbx,
    clients: Clients,
    query: dict[str, Any],
    expected: list[str],
) -> None:
    """TEL-6: each filter of the call list. An employee's calls include the ones that rang on
    their extension unanswered, so "mine and missed" shows what they missed; an outgoing call nobody
    picked up is no missed call."""
    await _day_of_calls(pbx)
    params = dict(query)
    if "employee" in params:
        params["employee_id"] = getattr(tenant, params.pop("employee")).id
    if params.pop("company", False):
        params["company_id"] = clients.company_id
    assert [c["external_id"] for c in await calls(client, tenant, **params)] == expected


async def test_call_list_columns_and_paging(
    client: httpx.AsyncClient, tenant: Tenant, pbx: Pbx, clients: Clients
) -> None:
    """TEL-6: newest first, paged with ``cursor``; the employee's name, the client, duration,
    answered/missed columns; a date without a zone is refused clearly."""
    await _day_of_calls(pbx)
    first = await call_page(client, tenant, limit=2)
    assert [c["external_id"] for c in first["items"]] == ["a-4", "a-3"]
    page = await call_page(client, tenant, limit=2, cursor=first["next_cursor"])
    rest = page["items"]
    assert [c["external_id"] for c in rest] == ["a-2", "a-1"]
    assert page["next_cursor"] is None
    a1 = rest[-1]
    assert (a1["employee_id"], a1["employee_name"]) == (tenant.engineer.id, tenant.engineer.name)
    assert a1["client"]["id"] == clients.contact_id and a1["duration_seconds"] == 60
    assert (a1["answered"], a1["missed"], a1["started_at"][:19]) == (True, False, "2026-11-01T10:00:00")
    assert rest[0]["employee_name"] is None and rest[0]["missed"] is True
    for name in ("date_from", "date_to"):
        r = await client.get(
            "/api/telephony/calls", params={name: "2026-11-02T00:00:00"}, headers=tenant.dispatcher.headers
        )
        assert (r.status_code, r.json()["code"]) == (422, "naive_datetime"), name
