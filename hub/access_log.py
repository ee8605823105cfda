"""One structured log line per HTTP request, and the request id every line of it carries.

``access`` lines name the method, the route's path template (``/api/tickets/{ticket_id}``,
so one route is one kind of line; the raw path only when no route matched), the status, the
duration, the account and who called (``employee:3``: kind and id) and the request id. The id is the
caller's ``X-Request-ID`` when it is a sane token, else a new one; it is sent back in the
``X-Request-ID`` response header and bound to every log line written while the request runs, so
an ``unhandled_error`` line (with its traceback, logged once by hub.errors) and the access line
of the same request are found together.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AccessLog"]

log = structlog.get_logger("hub.access")

REQUEST_ID_HEADER = b"x-request-id"
_SANE_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER and _SANE_ID.match(value):
            return value.decode()
    return uuid.uuid4().hex


def _caller(scope: Scope) -> dict[str, Any]:
    principal = scope.get("user")
    if principal is None or not hasattr(principal, "account_id"):
        return {"account": None, "caller": None}
    return {"account": principal.account_id, "caller": f"{principal.kind}:{principal.subject_id}"}


class AccessLog:
    """ASGI wrapper around the whole application (routing included, so 404s and 405s are logged)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        started = time.perf_counter()
        status = 500  # if the application dies before answering, the server answers 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, request_id.encode())]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                self._line(scope, status, time.perf_counter() - started)

    @staticmethod
    def _line(scope: Scope, status: int, seconds: float) -> None:
        path: Any = scope.get("path_template") or scope.get("path", "")[:200]
        log.info(
            "access",
            method=scope.get("method"),
            path=path,
            status=status,
            duration_ms=round(seconds * 1000, 1),
            **_caller(scope),
        )
