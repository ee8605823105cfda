"""DESK-1: no credential of one account can read, change or even detect another account's data.

The walker visits EVERY route of the app and every HTTP method. For a route with path parameters
it creates the objects in tenant B (factories in tests/isolation_factories.py, one per parameter
name) and calls the route with every kind of credential of tenant A (administrator, dispatcher,
engineer, client-app user, PBX / monitoring / script API keys). Each answer must be a problem JSON
refusal identical to the answer for an id that exists nowhere, at least one of them a 404, never a
2xx, a 500 or a 403 other than a role guard's; and the whole database is unchanged afterwards. A
route whose parameter has no factory fails the test, so new routes cannot skip this.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, find
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.response import ServerSentEvent, Stream
from litestar.routes import HTTPRoute
from sqlalchemy import select

from hub.db import Database
from hub.models import Base
from hub.settings import Settings
from tests.conftest import PASSWORD, Tenant
from tests.isolation_factories import (
    BODIES,
    EXCLUDED_CHECKS,
    FACTORIES,
    PUBLIC_PATHS,
    QUERIES,
    STREAMING,
    World,
)

# Refusals by a role guard: they depend on who calls, never on which object is named.
GUARD_CODES = {
    "role_required",
    "employees_only",
    "app_users_only",
    "integration_key_required",
    "forbidden",
    "permission_required",  # a permission granted to roles or employees (DESK-12, PAY-7)
}
# Columns that legitimately change when A's own credentials are used.
VOLATILE = {("api_keys", "last_used_at")}
PRINCIPALS = ("administrator", "dispatcher", "engineer", "app_user", "pbx", "monitoring", "script")


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # OpenAPI form: /api/objects/{object_id}/users
    params: dict[str, type]
    handler: Any

    @property
    def excluded(self) -> bool:
        return bool(self.handler.opt.get("exclude_from_auth"))

    @property
    def public(self) -> bool:
        return self.path.startswith(PUBLIC_PATHS)

    @property
    def streaming(self) -> bool:
        if self.path in STREAMING:
            return True
        annotation = self.handler.parsed_fn_signature.return_type.annotation
        return isinstance(annotation, type) and issubclass(annotation, (Stream, ServerSentEvent))

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def endpoints(app: Litestar) -> Iterator[Endpoint]:
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        params = {name: definition.type for name, definition in route.path_parameters.items()}
        for method, (handler, _) in route.route_handler_map.items():
            if method in ("OPTIONS", "HEAD") and not handler.include_in_schema:
                continue  # Litestar's automatic OPTIONS answer: no data behind it
            yield Endpoint(str(method), route.path_format, params, handler)


# --- request building from the app's own OpenAPI document -------------------------------------


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def _string(schema: dict[str, Any]) -> str:
    fmt = schema.get("format")
    low, high = schema.get("minLength", 1), schema.get("maxLength", 64)
    if fmt == "date-time":
        return (datetime.now(UTC) + timedelta(days=1)).isoformat()
    if fmt == "date":
        return (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    if fmt == "email":
        return "iso@example.com"
    if fmt in ("uri", "url"):
        return "https://example.com/iso"
    if fmt == "uuid":
        return str(uuid.uuid4())
    if "pattern" in schema:
        strategy = st.from_regex(schema["pattern"], fullmatch=True).filter(lambda s: low <= len(s) <= high)
        found: str = find(
            strategy,
            lambda _: True,
            settings=hsettings(database=None, max_examples=200, suppress_health_check=list(HealthCheck)),
        )
        return found
    return ("iso" * 100)[: max(low, min(high, 8))]


def sample(spec: dict[str, Any], schema: dict[str, Any], own: dict[str, Any], name: str = "") -> Any:
    """A minimal valid value: required fields only, the caller's own ids where a field names one."""
    schema = _resolve(spec, schema)
    if name in own:
        return own[name]
    # A schema's example stands for a scalar; objects are built here (required fields, own ids).
    scalar = schema.get("type") not in ("object", "array") and "properties" not in schema
    if scalar and schema.get("examples"):
        return schema["examples"][0]
    if scalar and "example" in schema:
        return schema["example"]
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            branches = [b for b in schema[key] if _resolve(spec, b).get("type") != "null"]
            return sample(spec, branches[0], own, name)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {key: sample(spec, props.get(key, {}), own, key) for key in schema.get("required", [])}
    if kind == "array":
        return [sample(spec, schema.get("items", {}), own, name) for _ in range(schema.get("minItems", 0))]
    if kind == "string":
        return _string(schema)
    if kind in ("integer", "number"):
        value = max(schema.get("minimum", 1), 1)
        return min(value, schema.get("maximum", value))
    if kind == "boolean":
        return False
    return None


def operation(spec: dict[str, Any], ep: Endpoint) -> dict[str, Any]:
    op: dict[str, Any] = spec["paths"].get(ep.path, {}).get(ep.method.lower(), {})
    return op


def query_of(spec: dict[str, Any], ep: Endpoint, own: dict[str, Any]) -> dict[str, Any]:
    query = dict(QUERIES.get((ep.method, ep.path), {}))
    for param in operation(spec, ep).get("parameters", []):
        if param.get("in") == "query" and param.get("required") and param["name"] not in query:
            query[param["name"]] = sample(spec, param.get("schema", {}), own, param["name"])
    return query


async def body_of(w: World, spec: dict[str, Any], ep: Endpoint, own: dict[str, Any]) -> dict[str, Any]:
    """``json=``/``files=`` keyword arguments for the request (empty when it takes no body)."""
    if (ep.method, ep.path) in BODIES:
        return {"json": await BODIES[(ep.method, ep.path)](w, w.a)}
    content = operation(spec, ep).get("requestBody", {}).get("content", {})
    if "application/json" in content:
        return {"json": sample(spec, content["application/json"].get("schema", {}), own)}
    if "multipart/form-data" in content:
        schema = _resolve(spec, content["multipart/form-data"].get("schema", {}))
        files, data = {}, {}
        for key, prop in schema.get("properties", {}).items():
            prop = _resolve(spec, prop)
            if prop.get("format") == "binary" or prop.get("contentMediaType") or prop.get("type") == "array":
                files[key] = ("isolation.txt", b"isolation", "text/plain")
            elif key in schema.get("required", []):
                data[key] = str(sample(spec, prop, own, key))
        return {"files": files or {"file": ("isolation.txt", b"isolation", "text/plain")}, "data": data}
    return {}


def url_of(ep: Endpoint, values: dict[str, Any]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), ep.path)


def missing_value(kind: type) -> Any:
    return 987_654_321_987 if kind is int else f"no-such-{uuid.uuid4().hex}"


def problem_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


async def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (so any change by a refused request shows)."""
    result: dict[str, list[tuple[Any, ...]]] = {}
    async with db.sessionmaker() as session:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.c if (table.name, c.name) not in VOLATILE]
            rows = await session.execute(select(*columns).order_by(*table.primary_key.columns))
            result[table.name] = [tuple(row) for row in rows]
    return result


# --- the world: two tenants with every kind of object and credential --------------------------


async def _principals(w: World, t: Tenant) -> dict[str, dict[str, str]]:
    headers = {
        "administrator": t.admin.headers,
        "dispatcher": t.dispatcher.headers,
        "engineer": t.engineer.headers,
    }
    contact = await w.post(t, "/api/contacts", {"name": f"App user {w.secret(t)}"})
    login = f"app-{uuid.uuid4().hex[:8]}"
    await w.post(t, f"/api/contacts/{contact['id']}/app-user", {"login": login, "password": PASSWORD})
    tokens = await w.client.post(
        "/api/auth/login", json={"account": t.slug, "login": login, "password": PASSWORD, "kind": "app_user"}
    )
    assert tokens.status_code == 200, tokens.text
    headers["app_user"] = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
    for kind in ("pbx", "monitoring", "script"):
        created = await w.post(t, "/api/api-keys", {"name": f"{kind} key", "kind": kind})
        headers[kind] = {"X-Api-Key": created["key"]}
    return headers


@pytest.fixture
def bare_world(
    app: Litestar,
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant: Tenant,
    other_tenant: Tenant,
) -> World:
    """Two tenants, nothing made yet (a test may put objects of its own in first, DESK-12)."""
    return World(app=app, client=client, db=db, settings=settings, a=tenant, b=other_tenant)


@pytest.fixture
async def world(bare_world: World) -> World:
    w = bare_world
    for t in (w.a, w.b):
        for name in FACTORIES:
            await w.id_of(t, name)
    for kind, headers in (await _principals(w, w.a)).items():
        w.principals[(w.a.id, kind)] = headers
    return w


async def _spec(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/docs/openapi.json")
    assert response.status_code == 200
    spec: dict[str, Any] = response.json()
    return spec


async def _own_ids(w: World) -> dict[str, Any]:
    return {name: await w.id_of(w.a, name) for name in FACTORIES}


# --- the tests ---------------------------------------------------------------------------------


async def test_every_route_with_ids_hides_other_accounts_objects(world: World) -> None:
    """DESK-1: for every route with path parameters and every credential kind of account A, B's objects
    answer exactly like objects that do not exist (a 404 problem, never 2xx/403/500), and nothing of B
    changes."""
    w = world
    spec = await _spec(w.client)
    own = await _own_ids(w)
    failures: list[str] = []
    walked = 0
    for ep in endpoints(w.app):
        if not ep.params or ep.excluded or ep.public:
            continue
        unknown = [name for name in ep.params if name not in FACTORIES]
        if unknown:
            failures.append(f"{ep}: no factory in tests/isolation_factories.py for {unknown}")
            continue
        if ep.streaming:
            continue
        b_values = {name: await w.id_of(w.b, name) for name in ep.params}
        missing = {name: missing_value(kind) for name, kind in ep.params.items()}
        before = await snapshot(w.db)
        statuses: dict[str, int] = {}
        for who in PRINCIPALS:
            headers = w.principals[(w.a.id, who)]
            extra = await body_of(w, spec, ep, own)
            query = query_of(spec, ep, own)
            theirs = await w.client.request(
                ep.method, url_of(ep, b_values), headers=headers, params=query, **extra
            )
            extra = await body_of(w, spec, ep, own)
            nowhere = await w.client.request(
                ep.method, url_of(ep, missing), headers=headers, params=query, **extra
            )
            statuses[who] = theirs.status_code
            where = f"{ep} as A's {who}"
            if theirs.status_code < 400 or theirs.status_code >= 500:
                failures.append(f"{where}: B's object answered {theirs.status_code} {theirs.text[:200]}")
                continue
            if not theirs.headers.get("content-type", "").startswith("application/problem+json"):
                failures.append(f"{where}: refusal is not problem JSON: {theirs.headers.get('content-type')}")
            if (theirs.status_code, problem_code(theirs)) != (nowhere.status_code, problem_code(nowhere)):
                failures.append(
                    f"{where}: B's object is detectable: {theirs.status_code}/{problem_code(theirs)} "
                    f"vs {nowhere.status_code}/{problem_code(nowhere)} for a missing one"
                )
            if theirs.status_code == 403 and problem_code(theirs) not in GUARD_CODES:
                failures.append(f"{where}: 403 {problem_code(theirs)} (must be 404)")
            if w.secret(w.b) in theirs.text:
                failures.append(f"{where}: the refusal shows B's data")
        if 404 not in statuses.values():
            failures.append(
                f"{ep}: no credential of A reached the lookup (statuses {statuses}); "
                "add a sample body to BODIES in tests/isolation_factories.py"
            )
        if await snapshot(w.db) != before:
            failures.append(f"{ep}: the database changed after A's refused requests")
        walked += 1
    assert not failures, "\n".join(failures)
    assert walked >= 10


async def test_lists_never_show_other_accounts_rows(world: World) -> None:
    """DESK-1: every list/search route (GET without path parameters), called by every credential kind of
    A, even with B's ids in its filters, never returns anything of B."""
    w = world
    spec = await _spec(w.client)
    own = await _own_ids(w)
    theirs = {name: await w.id_of(w.b, name) for name in FACTORIES}
    failures: list[str] = []
    listed = 0
    for ep in endpoints(w.app):
        if ep.method != "GET" or ep.params or ep.excluded or ep.public or ep.streaming:
            continue
        names = {p["name"] for p in operation(spec, ep).get("parameters", []) if p.get("in") == "query"}
        for who in PRINCIPALS:
            headers = w.principals[(w.a.id, who)]
            plain = query_of(spec, ep, own)
            filtered = plain | {name: theirs[name] for name in names if name in theirs}
            for query in (plain, filtered):
                response = await w.client.get(ep.path, headers=headers, params=query)
                if response.status_code >= 500:
                    failures.append(f"{ep} as A's {who}: {response.status_code}")
                if w.secret(w.b) in response.text:
                    failures.append(f"{ep} as A's {who} with {query}: shows B's rows")
                if response.status_code == 200:
                    listed += 1
    assert not failures, "\n".join(failures)
    assert listed > 0


async def test_routes_outside_auth_keep_accounts_apart(world: World) -> None:
    """DESK-1: routes that authenticate themselves (webhooks, PBX URL token, hub-to-hub) each have a
    check that account A's token, key or signature cannot reach account B's data."""
    unchecked = sorted(
        {ep.path for ep in endpoints(world.app) if ep.excluded and not ep.public} - set(EXCLUDED_CHECKS)
    )
    assert not unchecked, f"routes excluded from auth without an isolation check: {unchecked}"
    for path, check in EXCLUDED_CHECKS.items():
        await check(world)
        assert path  # the check ran without raising


def test_every_route_has_a_guard(app: Litestar) -> None:
    """DESK-1: every route not excluded from auth has at least one role guard."""
    unguarded = [
        str(ep)
        for ep in endpoints(app)
        if not ep.excluded and not ep.public and not ep.handler.resolve_guards()
    ]
    assert not unguarded, f"routes without a guard: {unguarded}"


def test_every_path_parameter_has_a_factory(app: Litestar) -> None:
    """DESK-1: the isolation walker can create an object for every path parameter of the app."""
    missing = sorted(
        {
            f"{name} ({ep.path})"
            for ep in endpoints(app)
            if not ep.public and not ep.excluded
            for name in ep.params
        }
        - {f"{name} ({ep.path})" for ep in endpoints(app) for name in ep.params if name in FACTORIES}
    )
    assert not missing, f"path parameters without an isolation factory: {missing}"


# Body fields that name another row, and the factory that makes such a row.
BODY_REFS = {
    "responsible_id": "employee_id",
    "manager_id": "employee_id",
    "executor_ids": "employee_id",
    "observer_ids": "employee_id",
    "object_id": "object_id",
    "contact_id": "contact_id",
    "company_id": "company_id",
    "ticket_id": "ticket_id",
}
WRITERS = ("administrator", "dispatcher")


def _body_refs(spec: dict[str, Any], ep: Endpoint) -> list[str]:
    content = operation(spec, ep).get("requestBody", {}).get("content", {})
    schema = _resolve(spec, content.get("application/json", {}).get("schema", {}))
    return [name for name in schema.get("properties", {}) if name in BODY_REFS]


async def test_bodies_naming_other_accounts_rows_are_refused(world: World) -> None:
    """DESK-1: every POST/PATCH whose JSON body names another row (responsible, executors,
    observers, object, contact, company, manager, ticket), sent by A's writers with B's id in that
    field, is refused exactly like an id that exists nowhere (404/422 problem, the same code), shows
    nothing of B and changes nothing."""
    w = world
    spec = await _spec(w.client)
    own = await _own_ids(w)
    failures: list[str] = []
    checked: set[str] = set()
    for ep in endpoints(w.app):
        if ep.method not in ("POST", "PATCH") or ep.excluded or ep.public:
            continue
        fields = _body_refs(spec, ep)
        if not fields or any(name not in FACTORIES for name in ep.params):
            continue
        url = url_of(ep, {name: own[name] for name in ep.params})
        for field in fields:
            theirs_id = await w.id_of(w.b, BODY_REFS[field])
            nowhere_id = missing_value(int)
            for who in WRITERS:
                headers = w.principals[(w.a.id, who)]
                base = (await body_of(w, spec, ep, own)).get("json") or {}
                answers = []
                for ref in (theirs_id, nowhere_id):
                    body = {**base, field: [ref] if field.endswith("_ids") else ref}
                    before = await snapshot(w.db)
                    response = await w.client.request(ep.method, url, headers=headers, json=body)
                    answers.append((response.status_code, problem_code(response)))
                    where = f"{ep} as A's {who} with {field}={ref}"
                    # A role guard refuses before the body is read: the same for any id.
                    guarded = response.status_code == 403 and problem_code(response) in GUARD_CODES
                    if response.status_code not in (404, 409, 422) and not guarded:
                        failures.append(f"{where}: {response.status_code} {response.text[:200]}")
                    if w.secret(w.b) in response.text:
                        failures.append(f"{where}: the refusal shows B's data")
                    if await snapshot(w.db) != before:
                        failures.append(f"{where}: the database changed")
                if answers[0] != answers[1]:
                    failures.append(f"{ep} {field}: B's row is detectable: {answers[0]} vs {answers[1]}")
            checked.add(f"{ep.method} {ep.path}")
    assert not failures, "\n".join(failures)
    # At least the ticket and people writes are covered.
    for must in (
        "POST /api/tickets",
        "PATCH /api/tickets/{ticket_id}",
        "POST /api/contacts",
        "POST /api/objects",
    ):
        assert must in checked, (must, sorted(checked))
