"""Issue 12: one API convention. Every list is a ``{items, next_cursor}`` page with ``limit`` and
``cursor``; ``/docs`` works without internet (every asset the page loads is served by the hub)."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import Tenant

# Lists that are not pages, and why: the caller match returns every match at once (at most 20, a
# pop-up's content); a ticket's partner tickets are at most a handful; the client app's lists are
# the app's published contract (MON-*), changed only with the app.
NOT_PAGED = {
    "/api/phones/match",
    "/api/telephony/match",
    "/api/exchange/tickets/{ticket_id}/partner-link",
    "/api/app/objects",
    "/api/app/invoices",
    # The client app's views of one ticket: its thread and files, whole (the app's own contract).
    "/api/app/tickets/{ticket_id}/comments",
    "/api/app/tickets/{ticket_id}/files",
    # Configuration tables an administrator edits as a whole: a handful of rows each (SLA rules
    # and holidays, permission grants, a panel's account numbers, the alarm code table).
    "/api/sla/rules",
    "/api/sla/holidays",
    "/api/permissions/grants",
    "/api/objects/{object_id}/alarm-accounts",
    "/api/alarm/rules",
}


def _schema(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


async def test_every_list_is_a_page_with_limit_and_cursor(client: httpx.AsyncClient) -> None:
    """Issue 12: no operation answers a bare array (outside the documented exceptions); every page
    takes ``limit`` and ``cursor`` and documents ``items`` and ``next_cursor``."""
    spec = (await client.get("/docs/openapi.json")).json()
    bare, unpaged = [], []
    pages = 0
    for path, item in spec["paths"].items():
        operation = item.get("get")
        if not operation or path in NOT_PAGED:
            continue
        content = operation["responses"].get("200", {}).get("content", {}).get("application/json", {})
        schema = _schema(spec, content.get("schema", {}))
        if schema.get("type") == "array":
            bare.append(path)
        elif set(schema.get("properties", {})) == {"items", "next_cursor"}:
            pages += 1
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            if not {"limit", "cursor"} <= names:
                unpaged.append(path)
    assert not bare, f"lists answering a bare array: {bare}"
    assert not unpaged, f"pages without limit/cursor: {unpaged}"
    assert pages >= 24


async def test_a_list_walks_every_row_once_in_its_order(client: httpx.AsyncClient, tenant: Tenant) -> None:
    """Issue 12: pages of ``limit`` rows follow each other through ``next_cursor`` (oldest first
    for companies) until it is null; rows added meanwhile are not repeated or skipped."""
    h = tenant.dispatcher.headers
    made = []
    for i in range(5):
        made.append((await client.post("/api/companies", json={"name": f"Co {i}"}, headers=h)).json()["id"])
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/api/companies", params=params, headers=h)).json()
        seen += [c["id"] for c in page["items"]]
        if len(seen) == 2:
            made.append((await client.post("/api/companies", json={"name": "Late"}, headers=h)).json()["id"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(made)
    too_many = await client.get("/api/companies", params={"limit": 201}, headers=h)
    assert too_many.status_code == 400 and too_many.json()["code"] == "validation_error"


async def test_docs_page_loads_only_assets_the_hub_serves(client: httpx.AsyncClient) -> None:
    """Issue 12: ``/docs`` names no outside address (a CDN leaves a blank page offline); each script,
    style and icon it loads is served by the hub, without signing in."""
    page = await client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert len(assets) >= 3
    assert not re.search(r"https?://|//[a-z]", page.text.split("<body>")[0]), "an outside address in <head>"
    for asset in assets:
        assert asset.startswith("/static/"), asset
        served = await client.get(asset)
        assert served.status_code == 200 and len(served.content) > 500, asset
    bundle = await client.get(next(a for a in assets if a.endswith("swagger-ui-bundle.js")))
    assert b"SwaggerUIBundle" in bundle.content
    assert (await client.get("/docs/openapi.json")).json()["openapi"].startswith("3.1")


async def test_phone_search_is_the_same_everywhere(client: httpx.AsyncClient, tenant: Tenant) -> None:
    """Issue 12, TEL-3, DESK-9: a number written any way, or any suffix of it at least as long as
    the account's match length, finds the same contact through ``/api/phones/match``,
    ``/api/telephony/match``, the ticket search and the contact search; both match answers use the
    same field names."""
    h = tenant.dispatcher.headers
    contact = (
        await client.post("/api/contacts", json={"name": "Olga", "phone": "+7 916 555 44 33"}, headers=h)
    ).json()
    ticket = (
        await client.post("/api/tickets", json={"title": "Gate", "contact_id": contact["id"]}, headers=h)
    ).json()
    await client.post("/api/contacts", json={"name": "Other", "phone": "+7 916 000 11 22"}, headers=h)
    for written in ("8 (916) 555-44-33", "+79165554433", "555-44-33", "9165554433"):
        answers = [
            (await client.get(path, params={"number": written}, headers=h)).json()
            for path in ("/api/phones/match", "/api/telephony/match")
        ]
        assert answers[0] == answers[1], written
        assert [(m["kind"], m["id"], m["name"]) for m in answers[0]] == [("contact", contact["id"], "Olga")]
        assert set(answers[0][0]) == {"kind", "id", "name", "field", "number", "company_id", "company_name"}
        tickets = (await client.get("/api/tickets", params={"q": written}, headers=h)).json()["items"]
        assert [t["id"] for t in tickets] == [ticket["id"]], written
        contacts = (await client.get("/api/contacts", params={"q": written}, headers=h)).json()["items"]
        assert [c["id"] for c in contacts] == [contact["id"]], written
    for too_short in ("44-33", "5554433"[1:]):
        assert (await client.get("/api/phones/match", params={"number": too_short}, headers=h)).json() == []
        assert (await client.get("/api/tickets", params={"q": too_short}, headers=h)).json()["items"] == []


async def test_openapi_documents_errors_enums_formats_and_tags(client: httpx.AsyncClient) -> None:
    """Issue 12: every operation has a description and documents its errors as problem JSON (401/403
    when signed in, 404 for a row in the path); ticket status and priority are enums; times are
    ``date-time``; every tag is described; pages have readable names."""
    spec = (await client.get("/docs/openapi.json")).json()
    problem = {"$ref": "#/components/schemas/Problem"}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert op.get("description"), f"{method} {path}"
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")) or status == "default":
                    assert response["content"]["application/problem+json"]["schema"] == problem
            if path.startswith("/api/tickets/{ticket_id}"):
                assert {"401", "403", "404"} <= set(op["responses"]), f"{method} {path}"
    ticket = spec["components"]["schemas"]["TicketRead"]["properties"]
    assert "reopened" in ticket["status"]["enum"] and ticket["priority"]["enum"][-1] == "critical"
    assert ticket["created_at"]["format"] == "date-time"
    assert all(t.get("description") for t in spec["tags"])
    assert "TicketListItemPage" in spec["components"]["schemas"]


async def test_every_schema_and_operation_shows_an_example(client: httpx.AsyncClient) -> None:
    """Issue 12: every Struct in the document carries an example, so every operation's request body
    and answer show one in /docs; times in them are ``date-time`` strings, enums take their values."""
    spec = (await client.get("/docs/openapi.json")).json()
    components = spec["components"]["schemas"]
    missing = [
        name for name, schema in components.items() if "example" not in schema and "examples" not in schema
    ]
    assert not missing, missing
    ticket = components["TicketRead"]["example"]
    assert ticket["status"] in components["TicketRead"]["properties"]["status"]["enum"]
    assert ticket["created_at"].endswith("Z")
    for path, item in spec["paths"].items():
        for method, op in item.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            answer = op["responses"].get("200", op["responses"].get("201", {}))
            shown = answer.get("content", {}).get("application/json", {}).get("schema")
            for schema in (body, shown):
                if schema and "$ref" in schema:
                    assert "example" in components[schema["$ref"].rsplit("/", 1)[1]], f"{method} {path}"
