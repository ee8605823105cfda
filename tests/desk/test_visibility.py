"""DESK-12: an engineer learns nothing of a ticket the role rule hides from them, on any route.

The walker builds one account whose ticket has neither the engineer as responsible, executor or
observer nor as its author, with everything that hangs on a ticket (comment, file, call binding,
invoice, line, refund, activity entry), then visits EVERY route of the app as that engineer:

- a route naming a ticket-bound object (in its path, or a ``ticket_id`` in its body) answers
  exactly like the same route naming an object that exists nowhere (a 404 problem, or the role
  guard's refusal both times), never shows the ticket, and changes nothing;
- every other GET (lists, search, call cards, the client's activity feed, filters set to the
  ticket's ids) never shows the ticket, and a ``ticket_id`` filter lists what a missing id lists.

A new route that forgets the rule fails here. The rule itself lives in hub/desk/visibility.py.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from hub.live import until_logged
from tests.conftest import Tenant
from tests.isolation_factories import FACTORIES, World
from tests.test_isolation import (
    GUARD_CODES,
    Endpoint,
    _spec,
    body_of,
    endpoints,
    missing_value,
    operation,
    problem_code,
    query_of,
    snapshot,
    url_of,
)
from tests.test_isolation import bare_world as bare_world  # the fixture, shared with the tenancy walker

MARKER = f"hidden-desk12-{uuid.uuid4().hex[:8]}"
# Path parameters that name a ticket or something that belongs to one.
TICKET_BOUND = {"ticket_id", "file_id", "invoice_id", "line_id", "refund_id"}


async def _hidden_ticket(w: World, t: Tenant) -> int:
    """A ticket of the engineer's account they take no part in: the administrator created it,
    the dispatcher is responsible, the administrator executes and observes it."""
    body = {
        "title": f"Title {MARKER}",
        "description": f"Description {MARKER}",
        "contact_id": await w.id_of(t, "contact_id"),
        "object_id": await w.id_of(t, "object_id"),
        "responsible_id": t.dispatcher.id,
        "executor_ids": [t.admin.id],
        "observer_ids": [t.admin.id],
    }
    ticket_id = int((await w.post(t, "/api/tickets", body))["id"])
    await w.post(t, f"/api/tickets/{ticket_id}/comments", {"body": f"Comment {MARKER}", "public": True})
    return ticket_id


@pytest.fixture
async def hidden(bare_world: World) -> World:
    """Account A with every kind of object, all hanging on the hidden ticket."""
    w, tenant = bare_world, bare_world.a
    w.made[(tenant.id, "ticket_id")] = await _hidden_ticket(w, tenant)
    for name in FACTORIES:
        await w.id_of(tenant, name)
    call_id, ticket_id = await w.id_of(tenant, "call_id"), await w.id_of(tenant, "ticket_id")
    await w.post(tenant, f"/api/telephony/calls/{call_id}/tickets", {"ticket_id": ticket_id})
    return w


def _shows(response: httpx.Response, ticket_id: int) -> bool:
    text = response.text.replace(" ", "")
    return MARKER in response.text or f'"ticket_id":{ticket_id}' in text


async def _request(
    w: World,
    ep: Endpoint,
    values: dict[str, Any],
    headers: dict[str, str],
    extra: dict[str, Any],
    query: dict[str, Any],
) -> httpx.Response:
    return await w.client.request(ep.method, url_of(ep, values), headers=headers, params=query, **extra)


def _refusal_failures(
    ep: Endpoint, mine: httpx.Response, nowhere: httpx.Response, ticket_id: int
) -> list[str]:
    where = f"{ep} as the engineer"
    if not 400 <= mine.status_code < 500:
        return [f"{where}: the hidden ticket's object answered {mine.status_code} {mine.text[:200]}"]
    failures = []
    if (mine.status_code, problem_code(mine)) != (nowhere.status_code, problem_code(nowhere)):
        failures.append(
            f"{where}: the hidden ticket is detectable: {mine.status_code}/{problem_code(mine)} "
            f"vs {nowhere.status_code}/{problem_code(nowhere)} for a missing one"
        )
    if mine.status_code == 403 and problem_code(mine) not in GUARD_CODES:
        failures.append(f"{where}: 403 {problem_code(mine)} (must be 404)")
    if _shows(mine, ticket_id):
        failures.append(f"{where}: the refusal shows the ticket")
    return failures


async def test_engineer_cannot_reach_a_hidden_ticket_on_any_route(hidden: World) -> None:
    """DESK-12: every route naming a hidden ticket's object, as the engineer, answers like a missing
    object (404, as for another account's) and changes nothing; the dispatcher reads the same GETs."""
    w, a = hidden, hidden.a
    spec = await _spec(w.client)
    own = {name: await w.id_of(a, name) for name in FACTORIES}
    ticket_id = own["ticket_id"]
    failures: list[str] = []
    walked: set[str] = set()
    for ep in endpoints(w.app):
        if ep.excluded or ep.public or ep.streaming:
            continue
        extra = await body_of(w, spec, ep, own)
        bound = [name for name in ep.params if name in TICKET_BOUND]
        in_body = (
            extra.get("json", {}).get("ticket_id") == ticket_id
            if isinstance(extra.get("json"), dict)
            else False
        )
        if not bound and not in_body:
            continue
        values = {name: await w.id_of(a, name) for name in ep.params}
        missing = values | {name: missing_value(ep.params[name]) for name in bound}
        missing_extra = await body_of(w, spec, ep, own)
        if in_body:
            missing_extra["json"] = missing_extra["json"] | {"ticket_id": missing_value(int)}
        query = query_of(spec, ep, own)
        await until_logged(w.db)  # the live log of earlier requests settles (PostgreSQL)
        before = await snapshot(w.db)
        mine = await _request(w, ep, values, a.engineer.headers, extra, query)
        nowhere = await _request(w, ep, missing, a.engineer.headers, missing_extra, query)
        failures += _refusal_failures(ep, mine, nowhere, ticket_id)
        await until_logged(w.db)
        if await snapshot(w.db) != before:
            failures.append(f"{ep}: the database changed after the engineer's refused request")
        # The client app's routes answer app users only (their own walk: tests/client).
        if ep.method == "GET" and not ep.path.startswith("/api/app/"):
            seen = await _request(w, ep, values, a.dispatcher.headers, {}, query)
            if seen.status_code != 200:
                failures.append(f"{ep}: the dispatcher got {seen.status_code} (the rule hides too much)")
        walked.add(str(ep))
    assert not failures, "\n".join(failures)
    ticket_routes = {str(ep) for ep in endpoints(w.app) if "ticket_id" in ep.params and not ep.excluded}
    assert ticket_routes <= walked
    assert len(walked) >= 30


async def test_engineer_lists_never_show_a_hidden_ticket(hidden: World) -> None:
    """DESK-12: ticket list, search, call list and call card, invoices, the client's activity feed
    and every other GET, even filtered by the hidden ticket's ids or searched by its title, never
    show it to the engineer; a ticket filter lists exactly what a missing ticket's does."""
    w, a = hidden, hidden.a
    spec = await _spec(w.client)
    own = {name: await w.id_of(a, name) for name in FACTORIES}
    ticket_id = own["ticket_id"]
    failures: list[str] = []
    for ep in endpoints(w.app):
        if ep.method != "GET" or ep.excluded or ep.public or ep.streaming:
            continue
        if any(name in TICKET_BOUND for name in ep.params):
            continue  # walked by the test above
        values = {name: await w.id_of(a, name) for name in ep.params}
        names = {p["name"] for p in operation(spec, ep).get("parameters", []) if p.get("in") == "query"}
        plain = query_of(spec, ep, own)
        filtered = plain | {name: own[name] for name in names if name in own}
        searched = plain | ({"q": MARKER} if "q" in names else {})
        for query in (plain, filtered, searched):
            mine = await w.client.get(url_of(ep, values), headers=a.engineer.headers, params=query)
            if mine.status_code >= 500:
                failures.append(f"{ep} as the engineer: {mine.status_code}")
            if _shows(mine, ticket_id):
                failures.append(f"{ep} as the engineer with {query}: shows the hidden ticket")
        if "ticket_id" in names:
            by_ticket = plain | {"ticket_id": ticket_id}
            nowhere_query = plain | {"ticket_id": missing_value(int)}
            mine = await w.client.get(url_of(ep, values), headers=a.engineer.headers, params=by_ticket)
            nowhere = await w.client.get(url_of(ep, values), headers=a.engineer.headers, params=nowhere_query)
            if (mine.status_code, mine.json()) != (nowhere.status_code, nowhere.json()):
                failures.append(f"{ep}: filtering by the hidden ticket differs from a missing one")
            seen = await w.client.get(url_of(ep, values), headers=a.dispatcher.headers, params=by_ticket)
            if not _shows(seen, ticket_id):
                failures.append(f"{ep}: the dispatcher's list does not show the ticket either")
    assert not failures, "\n".join(failures)
    # The rule, not an empty account: the dispatcher finds the ticket by its title.
    found = await w.client.get("/api/tickets", params={"q": MARKER}, headers=a.dispatcher.headers)
    assert [t["id"] for t in found.json()["items"]] == [ticket_id]
