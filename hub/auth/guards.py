"""Route guards. Every route of the API has one (a test walks the app to prove it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from hub.accounts.models import Role
from hub.auth.principal import Principal
from hub.errors import Forbidden, Unauthorized

__all__ = [
    "ALL_EMPLOYEES",
    "STAFF",
    "Guard",
    "administrators",
    "any_principal",
    "app_users",
    "dispatchers",
    "employees",
    "integration",
    "principal_of",
]

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]

ALL_EMPLOYEES = frozenset(Role)
STAFF = frozenset({Role.ADMINISTRATOR, Role.DISPATCHER})


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    user = connection.scope.get("user")
    if not isinstance(user, Principal):
        raise Unauthorized()
    return user


def _employee_guard(roles: frozenset[str]) -> Guard:
    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = principal_of(connection)
        if principal.kind != "employee":
            raise Forbidden("Only employees may do this", code="employees_only")
        if principal.role not in roles:
            raise Forbidden(f"Requires role: {', '.join(sorted(roles))}", code="role_required")

    guard.__name__ = "employees_" + "_".join(sorted(roles))
    return guard


employees = _employee_guard(frozenset(ALL_EMPLOYEES))
dispatchers = _employee_guard(frozenset(STAFF))
administrators = _employee_guard(frozenset({Role.ADMINISTRATOR}))


def app_users(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if principal_of(connection).kind != "app_user":
        raise Forbidden("Only client-app users may do this", code="app_users_only")


def integration(*kinds: str) -> Guard:
    """Integration API keys of the given kinds only; no employee passes, administrators included."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = principal_of(connection)
        if principal.kind == "api_key" and principal.key_kind in kinds:
            return
        raise Forbidden(f"Requires an API key of kind: {', '.join(kinds)}", code="integration_key_required")

    guard.__name__ = "integration_" + "_".join(kinds)
    return guard


def any_principal(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    principal_of(connection)
