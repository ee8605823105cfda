"""An example for every schema of the published OpenAPI document (issue 12).

Each component schema without one gets an ``example`` built from the schema itself: the first
value of an enum, a fixed time for ``date-time``, a plausible value for the hub's common field
names, and nested objects and lists filled the same way (to a small depth). So every operation's
request and answer show a complete, valid-looking body in ``/docs`` without hand-writing one per
Struct; a hand-written ``example`` on a schema is kept as it is.
"""

from __future__ import annotations

from typing import Any

__all__ = ["add_examples"]

MAX_DEPTH = 3
_BY_NAME: dict[str, Any] = {
    "title": "Lift stuck between floors 3 and 4",
    "description": "The lift stopped with nobody inside; the display shows E12.",
    "body": "Technician on the way, arriving within the hour.",
    "comment": "Confirmed by phone with the client.",
    "name": "Alpha Security",
    "email": "dispatch@alpha.example",
    "phone": "+7 916 555 00 11",
    "mobile": "+7 916 555 00 11",
    "from_number": "+7 916 555 00 11",
    "to_number": "101",
    "address": "Lenina 12, Moscow",
    "currency": "RUB",
    "amount": "1500.00",
    "total": "1500.00",
    "login": "dispatcher@alpha",
    "slug": "alpha",
    "code": "SVC-01",
    "region": "RU",
    "url": "https://hub.example/api",
    "next_cursor": None,
}
_BY_FORMAT = {
    "date-time": "2026-12-02T09:30:00Z",
    "date": "2026-12-02",
    "time": "09:30:00",
    "email": "dispatch@alpha.example",
    "uri": "https://hub.example/api",
    "uuid": "7d3b1c0e-3f7a-4c1e-9a57-2f4b1f0d9c11",
}


def add_examples(components: dict[str, Any]) -> None:
    for schema in components.values():
        if isinstance(schema, dict) and "example" not in schema and "examples" not in schema:
            value = _example(schema, components, 0, None)
            if value is not None:
                schema["example"] = value


def _example(schema: dict[str, Any], components: dict[str, Any], depth: int, name: str | None) -> Any:
    if "$ref" in schema:
        if depth >= MAX_DEPTH:
            return None
        target = components.get(schema["$ref"].rsplit("/", 1)[-1], {})
        return target.get("example") or _example(target, components, depth + 1, name)
    if "example" in schema:
        return schema["example"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(key, []) if o.get("type") != "null"]
        if options:
            return _example(options[0], components, depth, name)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or "properties" in schema:
        return {
            prop: _example(sub, components, depth + 1, prop)
            for prop, sub in schema.get("properties", {}).items()
        }
    if kind == "array":
        item = _example(schema.get("items", {}), components, depth + 1, name)
        return [] if item is None else [item]
    return _scalar(schema, kind, name)


def _scalar(schema: dict[str, Any], kind: Any, name: str | None) -> Any:
    if kind == "boolean":
        return False
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        return max(1, int(low) + (1 if "exclusiveMinimum" in schema else 0))
    if kind == "string":
        if schema.get("format") in _BY_FORMAT:
            return _BY_FORMAT[schema["format"]]
        if name in _BY_NAME:
            return _BY_NAME[name]
        return "string" if not name else name.replace("_", " ")
    return None
