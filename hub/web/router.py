"""The web app's routes: one router outside the API's token middleware (pages authenticate with the
session cookie, :mod:`hub.web.session`) and the static files it serves itself (no CDN)."""

from __future__ import annotations

from litestar import Router
from litestar.middleware import DefineMiddleware
from litestar.static_files import create_static_files_router

from hub.web.clients import ClientPages
from hub.web.pages import STATIC, web_exception_handlers
from hub.web.session import WebCookies
from hub.web.signin import SignInPages
from hub.web.tickets import TicketPages

__all__ = ["web_routers"]


def web_routers() -> list[Router]:
    pages = Router(
        path="/",
        route_handlers=[SignInPages, TicketPages, ClientPages],
        middleware=[DefineMiddleware(WebCookies)],
        exception_handlers=web_exception_handlers,
        include_in_schema=False,
        opt={"exclude_from_auth": True},
    )
    static = create_static_files_router(
        path="/static",
        directories=[STATIC],
        include_in_schema=False,
        opt={"exclude_from_auth": True},
        cache_control=None,
    )
    return [pages, static]
