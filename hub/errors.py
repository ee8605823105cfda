"""One exception hierarchy, mapped to RFC 9457 problem JSON in one place.

Every error the API returns has a stable machine-readable ``code``; clients branch on it, never
on ``title`` or ``detail``.
"""

from __future__ import annotations

from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import IntegrityError

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "Gone",
    "HubError",
    "NotFound",
    "PayloadTooLarge",
    "TooManyRequests",
    "Unauthorized",
    "Unprocessable",
    "exception_handlers",
    "problem_response",
    "reject_impossible_ids",
]

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger("hub.errors")


class HubError(Exception):
    """Base of every error the hub reports to a caller."""

    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(self, detail: str | None = None, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code is not None:
            self.code = code
        self.extra = extra


class BadRequest(HubError):
    pass


class Unauthorized(HubError):
    status = 401
    code = "unauthorized"
    title = "Authentication required"


class Forbidden(HubError):
    status = 403
    code = "forbidden"
    title = "Not allowed"


class NotFound(HubError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(HubError):
    status = 409
    code = "conflict"
    title = "Conflict"


class Gone(HubError):
    status = 410
    code = "gone"
    title = "Gone"


class PayloadTooLarge(HubError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class TooManyRequests(HubError):
    status = 429
    code = "too_many_requests"
    title = "Too many requests"


class Unprocessable(HubError):
    status = 422
    code = "unprocessable"
    title = "Request cannot be applied"


_CODES_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


def problem_response(
    status: int, code: str, title: str, detail: str | None = None, instance: str | None = None, **extra: Any
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"type": f"urn:hub:problem:{code}", "title": title, "status": status, "code": code}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _hub_error(request: Request[Any, Any, Any], exc: HubError) -> Response[dict[str, Any]]:
    return problem_response(exc.status, exc.code, exc.title, exc.detail, request.url.path, **exc.extra)


def _validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    errors = exc.extra if isinstance(exc.extra, list) else []
    return problem_response(
        400, "validation_error", "Invalid request", exc.detail, request.url.path, errors=errors
    )


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    code = _CODES_BY_STATUS.get(status, f"http_{status}")
    return problem_response(status, code, exc.detail or code, exc.detail, request.url.path)


# Ids are 64-bit on PostgreSQL and SQLite: a larger number names nothing and must not reach the driver.
_MAX_ID = 2**63 - 1


async def reject_impossible_ids(request: Request[Any, Any, Any]) -> None:
    """``before_request`` hook: an integer path parameter no database row can have is a 404."""
    for value in request.path_params.values():
        if isinstance(value, int) and not -_MAX_ID <= value <= _MAX_ID:
            raise NotFound("No such resource", code="not_found")


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps (driver errors sit under SQLAlchemy's ``orig``)."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending and len(seen) < 8:
        current = pending.pop()
        if current is None or current in seen:
            continue
        seen.append(current)
        pending += [getattr(current, "orig", None), current.__cause__, current.__context__]
    return seen


def _out_of_range(exc: BaseException) -> bool:
    """A number the database cannot store (SQLite OverflowError, asyncpg int64 range, SQLSTATE 22003)."""
    return any(isinstance(c, OverflowError) or getattr(c, "sqlstate", None) == "22003" for c in _causes(exc))


def _too_long(exc: BaseException) -> bool:
    """A text longer than its column (PostgreSQL SQLSTATE 22001; SQLite does not check lengths)."""
    return any(getattr(c, "sqlstate", None) == "22001" for c in _causes(exc))


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    path = request.url.path
    if _out_of_range(exc):
        return problem_response(400, "value_out_of_range", "A number is out of range", str(exc)[:200], path)
    if _too_long(exc):
        return problem_response(400, "value_too_long", "A text is longer than allowed", None, path)
    if isinstance(exc, IntegrityError):
        # A uniqueness or reference check lost a race with a concurrent request: the transaction was
        # rolled back whole, so nothing is half-stored, and the same request may simply be retried.
        log.warning("integrity_conflict", path=path, error=str(exc.orig)[:300])
        return problem_response(
            409, "concurrent_conflict", "Conflicts with a concurrent change", "Retry the request", path
        )
    log.exception("unhandled_error", path=path, error=repr(exc))
    return problem_response(HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "Internal error", None, path)


exception_handlers: dict[Any, Any] = {
    HubError: _hub_error,
    ValidationException: _validation_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}
