"""Resolves the caller of every request into a :class:`Principal` (or refuses it)."""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Any

from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from sqlalchemy import Table, bindparam, or_, select, update

from hub.accounts.models import ApiKey, AppUser, Employee
from hub.auth.principal import Principal
from hub.auth.tokens import decode_access_token, secret_hash
from hub.cache import TTLCache
from hub.db import Database, UTCDateTime, utcnow
from hub.errors import Unauthorized
from hub.settings import Settings

__all__ = ["API_KEY_PREFIX", "HubAuthMiddleware", "authenticate_api_key"]

API_KEY_PREFIX = "hubk_"
# How long one process trusts what it last read about a signed-in person (active, role): a
# deactivated or demoted employee loses access within this, not when the token expires.
SUBJECT_CHECK_SECONDS = 5.0
SubjectCache = TTLCache[tuple[str, int], tuple[bool, str | None]]


# Built once: the sign-in check runs on a signed-in person's requests (every few seconds each).
_EMPLOYEE_STATE = select(Employee.active, Employee.role).where(
    Employee.id == bindparam("subject_id"), Employee.account_id == bindparam("account_id")
)
_APP_USER_STATE = select(AppUser.active).where(
    AppUser.id == bindparam("subject_id"), AppUser.account_id == bindparam("account_id")
)


async def _subject_state(db: Database, principal: Principal) -> tuple[bool, str | None]:
    """(active, role) of the signed-in employee or app user; inactive when it is gone."""
    params = {"subject_id": principal.subject_id, "account_id": principal.account_id}
    async with db.sessionmaker() as session:
        if principal.kind == "employee":
            row = (await session.execute(_EMPLOYEE_STATE, params)).first()
            return (bool(row[0]), str(row[1])) if row is not None else (False, None)
        return bool(await session.scalar(_APP_USER_STATE, params)), None


async def check_subject(db: Database, principal: Principal, cache: SubjectCache) -> None:
    """Refuse an access token whose employee or app user was deactivated, or whose role changed
    since it was issued (the client signs in or refreshes to get the current role)."""
    key = (principal.kind, principal.subject_id)
    active, role = await cache.get(key, lambda: _subject_state(db, principal))
    if not active:
        raise Unauthorized("This sign-in is no longer active", code="subject_inactive")
    if principal.kind == "employee" and role != principal.role:
        raise Unauthorized("The role changed: sign in again or refresh", code="token_outdated")


# ``last_used_at`` is for the administrators' key list ("used a minute ago"): one write a minute
# per key says that, and a busy integration's requests stay reads (SQLite has one writer).
LAST_USED_EVERY = timedelta(minutes=1)
# Built once: every integration request runs them.
_KEY_BY_PREFIX = select(ApiKey).where(ApiKey.prefix == bindparam("prefix"))
# Conditional, so several processes seeing the same stale time still write once.
_KEYS: Table = ApiKey.__table__  # type: ignore[assignment]
_MARK_USED = (
    update(_KEYS)
    .where(
        _KEYS.c.id == bindparam("key_id"),
        or_(_KEYS.c.last_used_at.is_(None), _KEYS.c.last_used_at < bindparam("stale")),
    )
    .values(last_used_at=bindparam("now", type_=UTCDateTime()))
)


async def authenticate_api_key(db: Database, presented: str) -> Principal:
    try:
        _, prefix, secret = presented.split("_", 2)
    except ValueError as exc:
        raise Unauthorized("Malformed API key", code="invalid_api_key") from exc
    async with db.sessionmaker() as session:
        key = await session.scalar(_KEY_BY_PREFIX, {"prefix": prefix})
        if (
            key is None
            or key.revoked_at is not None
            or not hmac.compare_digest(key.secret_hash, secret_hash(secret))
        ):
            raise Unauthorized("Unknown or revoked API key", code="invalid_api_key")
        now = utcnow()
        if key.last_used_at is None or key.last_used_at <= now - LAST_USED_EVERY:
            await session.execute(_MARK_USED, {"key_id": key.id, "stale": now - LAST_USED_EVERY, "now": now})
            await session.commit()
        return Principal(
            kind="api_key", account_id=key.account_id, subject_id=key.id, name=key.name, key_kind=key.kind
        )


class HubAuthMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        settings: Settings = connection.app.state.settings
        header = connection.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        api_key = connection.headers.get("x-api-key") or (token if token.startswith(API_KEY_PREFIX) else "")
        if api_key:
            principal = await authenticate_api_key(connection.app.state.db, api_key)
        elif token:
            principal = decode_access_token(token, settings.security.secret_key)
        elif connection.scope["type"] == "http" and "access_token" in connection.query_params:
            # EventSource cannot send headers: SSE streams pass the access token in the query.
            principal = decode_access_token(
                connection.query_params["access_token"], settings.security.secret_key
            )
        else:
            raise Unauthorized("Send 'Authorization: Bearer <token>' or an X-Api-Key header")
        if principal.kind in ("employee", "app_user"):
            state = connection.app.state
            await check_subject(state.db, principal, state.subject_cache)
        return AuthenticationResult(user=principal, auth=principal)
