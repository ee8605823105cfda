"""Query-string rules shared by every route: a parameter the operation does not take is refused.

A misspelt filter (``?stauts=open``) that is silently ignored returns the wrong list and looks
right; a 400 ``unknown_query_parameter`` names it instead. The routes that external parties call
under a fixed contract (provider callbacks, PBX and CTI events, partner exchange, monitoring) keep
accepting whatever their senders add.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.handlers import HTTPRouteHandler

from hub.errors import BadRequest, reject_impossible_ids

__all__ = ["EXTERNAL_CONTRACT_PREFIXES", "before_request"]

EXTERNAL_CONTRACT_PREFIXES = (
    "/api/webhooks/",
    "/api/telephony/pbx/",
    "/api/telephony/cti",
    "/api/exchange/handshake",
    "/api/exchange/inbox",
    "/api/monitoring/",
)
# Read before the handler: the sign-in of an EventSource (which cannot send headers, see
# hub/auth/middleware.py) and the live streams' catch-up point (hub/live.py).
_READ_BY_THE_HUB = frozenset({"access_token", "last_event_id"})
# Per handler object (held, so an id is never reused for another handler) and path parameters.
_known: dict[tuple[HTTPRouteHandler, str], frozenset[str]] = {}


def _query_names(handler: HTTPRouteHandler, path_params: dict[str, Any]) -> frozenset[str]:
    key = (handler, ",".join(sorted(path_params)))
    names = _known.get(key)
    if names is None:
        model = handler.create_kwargs_model(path_parameters=dict.fromkeys(path_params))  # type: ignore[arg-type]
        names = frozenset(p.field_alias for p in model.expected_query_params) | _READ_BY_THE_HUB
        _known[key] = names
    return names


def reject_unknown_query(request: Request[Any, Any, Any]) -> None:
    path = request.url.path
    if not path.startswith("/api/") or path.startswith(EXTERNAL_CONTRACT_PREFIXES):
        return
    handler = request.route_handler
    if not isinstance(handler, HTTPRouteHandler):
        return
    known = _query_names(handler, request.path_params)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise BadRequest(
            f"Unknown query parameter: {', '.join(unknown)}",
            code="unknown_query_parameter",
            unknown=unknown,
            allowed=sorted(known),
        )


async def before_request(request: Request[Any, Any, Any]) -> None:
    """The app's ``before_request`` hook: impossible ids are 404, unknown query parameters 400."""
    await reject_impossible_ids(request)
    reject_unknown_query(request)
