"""What the published OpenAPI document tells a reader beyond the shapes (issue 12).

Applied by :func:`hub.openapi.polished_schema` after the Struct schemas are in place:

- tag descriptions, and a description for every operation (lists say how they page);
- the error statuses an operation can answer, each with the problem schema: 401/403 for signed-in
  routes, 404 where the path names a row, 422 where a body can be refused by the domain rules;
- ``date-time``/``date`` formats on Struct fields (msgspec's JSON Schema leaves them out), and the
  ticket's status, priority, type and source values;
- readable names for the generic page components (``TicketListItemPage``).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any, get_args

import msgspec
from msgspec import inspect

from hub.openapi_examples import add_examples

__all__ = ["TAG_DESCRIPTIONS", "document"]

TAG_DESCRIPTIONS = {
    "system": "Liveness and readiness probes.",
    "auth": "Sign-in (employees, app users), token refresh, the signed-in principal.",
    "accounts": "The account, its employees and integration API keys.",
    "people": "Client companies, contacts, service objects, their users and the phone match (DESK-2, TEL-3).",
    "desk": "Tickets: workflow, comments, files, history, client activity, lists (DESK-3..9).",
    "telephony": "Calls, caller match, pop-ups, binding calls to tickets, click-to-call (TEL-*).",
    "telephony: PBX intake": "The PBX's event contract (contracts/telephony.py).",
    "exchange": "Partner connections and passing tickets between hubs (EX-*).",
    "exchange protocol": "Hub-to-hub protocol endpoints (contracts/EXCHANGE.md).",
    "payments: price list": "Price list lines (PAY-1).",
    "payments: providers": "Payment provider connections (PAY-5).",
    "payments: invoices": "Invoices on tickets and their payment (PAY-2..4, PAY-8).",
    "payments: refunds": "Refund requests and their decisions (PAY-7).",
    "payments: callbacks": "The administrators' log of provider callbacks (PAY-6).",
    "payments: provider callbacks": "Where payment providers post their notifications.",
    "payments: client app": "The client app's invoices.",
    "notifications": "Notification channels, per-event rules and extra contact points (DESK-10).",
    "client app": "The client app: objects, their tickets, ratings, live updates (MON-*).",
    "monitoring": "The monitoring centre's ticket contract (contracts/monitoring.py).",
    "outbox": "What the hub sends, dead letters and retries.",
    "intake": "What the hub received from other systems, and retries.",
}
_PAGE_NOTE = (
    " Answers one page `{items, next_cursor}`: pass `next_cursor` as `cursor` for the next page "
    "(null on the last); `limit` sets the page size (1..200, default 50). Unknown query parameters "
    "are refused with 400 `unknown_query_parameter`."
)
_ERRORS = {
    "401": "Not signed in, or the token or key is invalid (`unauthorized`)",
    "403": "Signed in without the role this operation needs (`forbidden`)",
    "404": "No such row in the caller's account (`*_not_found`)",
    "422": "Well-formed, but the domain rules refuse it (see `code`)",
}
_PUBLIC = re.compile(
    r"^/(health|ready|metrics|docs|static)|^/api/(webhooks|exchange/(handshake|inbox))|/pbx/|/cti"
)
_PROBLEM = {"content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _is_page(schema: dict[str, Any], components: dict[str, Any]) -> bool:
    ref = schema.get("$ref", "")
    target = components.get(ref.rsplit("/", 1)[-1], {}) if ref else schema
    return set(target.get("properties", {})) == {"items", "next_cursor"}


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in schema.get("paths", {}).items()
        for method, op in item.items()
        if isinstance(op, dict) and "responses" in op
    ]


def _describe(path: str, method: str, op: dict[str, Any], components: dict[str, Any]) -> None:
    summary = op.get("summary") or f"{method.upper()} {path}"
    description = op.get("description") or f"{summary}."
    ok = op["responses"].get("200", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if method == "get" and _is_page(ok, components) and "`next_cursor`" not in description:
        description += _PAGE_NOTE
    op["description"] = description


def _errors(path: str, method: str, op: dict[str, Any]) -> None:
    responses = op["responses"]
    wanted = []
    if path.startswith("/api/") and not _PUBLIC.search(path):
        wanted += ["401", "403"]
    if "{" in path:
        wanted.append("404")
    if "requestBody" in op:
        wanted.append("422")
    for status in wanted:
        responses.setdefault(status, {"description": _ERRORS[status], **copy.deepcopy(_PROBLEM)})


def _time_formats(components: dict[str, Any], structs: dict[str, type[msgspec.Struct]]) -> None:
    for name, cls in structs.items():
        properties = components.get(name, {}).get("properties")
        if not properties:
            continue
        info = inspect.type_info(cls)
        for field in getattr(info, "fields", ()):
            fmt = _format_of(field.type)
            prop = properties.get(field.encode_name)
            if fmt is None or prop is None:
                continue
            for node in [prop, *prop.get("anyOf", []), *prop.get("oneOf", [])]:
                if node.get("type") == "string":
                    node["format"] = fmt


def _ticket_enums(components: dict[str, Any]) -> None:
    """The ticket reads carry the values of the desk's enums (stored as plain strings)."""
    from hub.desk.schemas import PriorityName, SourceName, StatusName, TypeName

    enums = {"status": StatusName, "priority": PriorityName, "type": TypeName, "source": SourceName}
    for name in ("TicketRead", "TicketListItem"):
        properties = components.get(name, {}).get("properties", {})
        for field, alias in enums.items():
            if properties.get(field) == {"type": "string"}:
                properties[field] = {"type": "string", "enum": list(get_args(alias))}


def _format_of(t: inspect.Type) -> str | None:
    if isinstance(t, inspect.DateTimeType):
        return "date-time"
    if isinstance(t, inspect.DateType):
        return "date"
    if isinstance(t, inspect.UnionType):
        return next((f for f in map(_format_of, t.types) if f), None)
    return None


def _page_names(schema: dict[str, Any]) -> dict[str, Any]:
    """``Page_hub.desk.schemas.TicketListItem_`` -> ``TicketListItemPage``, references included."""
    components = schema["components"]["schemas"]
    renames = {
        name: re.sub(r"^Page_(?:[\w]+\.)*(\w+)_$", r"\1Page", name)
        for name in components
        if name.startswith("Page_")
    }
    text = json.dumps(schema)
    for old, new in renames.items():
        text = text.replace(f'"#/components/schemas/{old}"', f'"#/components/schemas/{new}"')
    renamed: dict[str, Any] = json.loads(text)
    for old, new in renames.items():
        page = renamed["components"]["schemas"].pop(old)
        page["description"] = "One page of a list; `next_cursor` is null on the last page."
        renamed["components"]["schemas"][new] = page
    return renamed


def document(schema: dict[str, Any], structs: dict[str, type[msgspec.Struct]]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    _time_formats(components, structs)
    _ticket_enums(components)
    for path, method, op in _operations(schema):
        _describe(path, method, op, components)
        _errors(path, method, op)
    used = sorted({t for _, _, op in _operations(schema) for t in op.get("tags", [])})
    schema["tags"] = [{"name": t, "description": TAG_DESCRIPTIONS.get(t, t)} for t in used]
    renamed = _page_names(schema)
    add_examples(renamed["components"]["schemas"])
    return renamed
