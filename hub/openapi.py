"""Makes the published OpenAPI document say exactly what the API does.

Litestar's generator loses some msgspec constraints (patterns of list items, constraints under
``oneOf`` with ``null``, ``forbid_unknown_fields``) and documents its own validation-error shape,
while every error of the hub is RFC 9457 problem JSON. Clients and the schema-driven tests
(schemathesis) rely on the document, so it is corrected once, when it is first built:

- request/response Struct components are replaced by msgspec's own JSON Schema of the Struct;
- every operation documents its errors as problem JSON (the 400 and a ``default`` response).
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec
from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin

from hub.openapi_docs import document

__all__ = ["PROBLEM_SCHEMA", "polish_openapi", "polished_schema"]

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; branch on `code`, never on `title` or `detail`.",
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "required": ["type", "title", "status", "code"],
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_PROBLEM_RESPONSE = {
    "description": "Problem details (RFC 9457)",
    "content": {"application/problem+json": {"schema": _PROBLEM_REF}},
}
_METHODS = ("get", "put", "post", "patch", "delete", "head", "options")


def _hub_structs() -> dict[str, type[msgspec.Struct]]:
    """Every Struct class defined by the hub, by name (names used twice are left alone)."""
    found: dict[str, type[msgspec.Struct] | None] = {}
    pending: list[type[msgspec.Struct]] = list(msgspec.Struct.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if not cls.__module__.startswith("hub."):
            continue
        found[cls.__name__] = None if cls.__name__ in found and found[cls.__name__] is not cls else cls
    return {name: cls for name, cls in found.items() if cls is not None}


def _precise_components(components: dict[str, Any]) -> None:
    structs = _hub_structs()
    wanted = [structs[name] for name in components if name in structs]
    if not wanted:
        return
    try:
        _, generated = msgspec.json.schema_components(wanted, ref_template="#/components/schemas/{name}")
    except (TypeError, ValueError):  # a type msgspec cannot describe: keep Litestar's version
        return
    components.update(generated)


def _problem_responses(paths: dict[str, Any]) -> None:
    for item in paths.values():
        for method in _METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            for status in list(responses):
                if status.startswith(("4", "5")):
                    responses[status] = copy.deepcopy(_PROBLEM_RESPONSE) | {
                        "description": responses[status].get("description", "Problem details")
                    }
            responses.setdefault("default", copy.deepcopy(_PROBLEM_RESPONSE))


def polished_schema(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    _precise_components(components)
    components["Problem"] = PROBLEM_SCHEMA
    _problem_responses(schema.get("paths", {}))
    return document(schema, _hub_structs())


class _HubOpenAPIPlugin(OpenAPIPlugin):
    __slots__ = ()

    def provide_openapi_schema(self) -> dict[str, Any]:
        if not self._openapi_schema:
            self._openapi_schema = polished_schema(self.provide_openapi().to_schema())
        return self._openapi_schema


def polish_openapi(app: Litestar) -> None:
    """Serve the corrected document at ``/docs/openapi.json`` (built lazily, on first request)."""
    plugin = app.plugins.get(OpenAPIPlugin)
    plugin.__class__ = _HubOpenAPIPlugin
