"""Rendering a page: the layout's context (who, language, CSRF token) and the error pages."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from litestar import Request, Response
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.template.config import TemplateConfig
from litestar.types import ExceptionHandlersMap

from hub.errors import HubError
from hub.web.session import CSRF_FIELD, CsrfRefused, SignInRequired, WebSession, known_session

__all__ = ["page", "redirect", "template_config", "web_exception_handlers"]

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def _when(value: datetime | date | None, language: str) -> str:
    """A date or time the way the user's language writes it (the page shows the hub's UTC; the
    browser rewrites ``<time>`` elements into its own time zone)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%d.%m.%Y %H:%M" if language == "ru" else "%Y-%m-%d %H:%M")
    return value.strftime("%d.%m.%Y" if language == "ru" else "%Y-%m-%d")


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine)


def page(
    request: Request[Any, Any, Any], session: WebSession, name: str, *, status_code: int = 200, **context: Any
) -> Template:
    language = session.language
    return Template(
        template_name=name,
        status_code=status_code,
        media_type="text/html",
        headers={"Cache-Control": "no-store"},
        context={
            **context,
            "_": session.gettext,
            "lang": language,
            "me": session.principal,
            "csrf_field": CSRF_FIELD,
            "csrf_token": session.csrf_token,
            "path": request.url.path,
            "when": lambda value: _when(value, language),
        },
    )


def redirect(path: str) -> Redirect:
    return Redirect(path=path, status_code=303)


def _sign_in_redirect(request: Request[Any, Any, Any], exc: SignInRequired) -> Response[Any]:
    target = f"/signin?next={quote(exc.back, safe='/')}" + ("&expired=1" if exc.expired else "")
    if request.headers.get("accept", "").startswith("text/event-stream") or request.headers.get(
        "x-hub-fetch"
    ):
        return Response(content=b"", status_code=401)
    return Redirect(path=target, status_code=303)


def _error_page(request: Request[Any, Any, Any], exc: HubError) -> Response[Any]:
    session = known_session(request)
    _ = session.gettext
    if exc.status == 404:
        title, detail = _("Not found"), _("There is no such page, or it belongs to another account.")
    else:
        title, detail = _("Something went wrong"), _(f"error.{exc.code}") or _(exc.detail)
    return page(request, session, "error.html", status_code=exc.status, title=title, detail=detail)


def _on_hub_error(request: Request[Any, Any, Any], exc: HubError) -> Response[Any]:
    if isinstance(exc, SignInRequired):
        return _sign_in_redirect(request, exc)
    if isinstance(exc, CsrfRefused) and request.url.path == "/signin":
        return redirect("/signin?stale=1")
    return _error_page(request, exc)


web_exception_handlers: ExceptionHandlersMap = {HubError: _on_hub_error}
