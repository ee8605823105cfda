"""Sign-in, sign-out and the language switch (ISSUE 13 journey 1)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth import service as auth_service
from hub.auth.schemas import TokenPair
from hub.errors import BadRequest, Unauthorized
from hub.settings import Settings
from hub.web.i18n import LANGUAGES
from hub.web.pages import page, redirect
from hub.web.session import (
    LANG_COOKIE,
    REFRESH_COOKIE,
    csrf_checked,
    is_https,
    local_path,
    session_cookies,
    session_loaded,
    signed_in,
    web_session,
)

__all__ = ["SignInPages"]

_YEAR = 365 * 24 * 3600


class SignInPages(Controller):
    guards = [session_loaded, csrf_checked]

    @get("/")
    async def home(self, request: Request[Any, Any, Any]) -> Redirect:
        session = await web_session(request)
        return redirect("/tickets" if session.principal else "/signin")

    @get("/signin")
    async def form(self, request: Request[Any, Any, Any], next: str | None = None) -> Template:
        session = await web_session(request)
        _ = session.gettext
        notice = ""
        if request.query_params.get("expired"):
            notice = _("Your session has ended. Sign in again: your unsent comment is kept.")
        elif request.query_params.get("out"):
            notice = _("You have signed out.")
        elif request.query_params.get("stale"):
            notice = _("The form has expired. Try again.")
        return page(request, session, "signin.html", next=local_path(next), notice=notice, error="", form={})

    @post("/signin")
    async def sign_in(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, settings: Settings
    ) -> Template | Redirect:
        session = await web_session(request)
        form = await request.form()
        account, login = str(form.get("account", "")).strip(), str(form.get("login", "")).strip()
        back = local_path(str(form.get("next", "")))
        try:
            pair = await auth_service.sign_in(
                db_session, settings, account, login, str(form.get("password", "")), "employee"
            )
        except Unauthorized:
            # One message for a wrong account, login or password: nothing says which exists.
            error = session.gettext("Unknown account, login or password")
            fields = {"account": account, "login": login}
            return page(
                request,
                session,
                "signin.html",
                status_code=401,
                next=back,
                notice="",
                error=error,
                form=fields,
            )
        session.cookies.extend(session_cookies(settings, pair, secure=is_https(request)))
        return redirect(back)

    @post("/signout")
    async def sign_out(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, settings: Settings
    ) -> Redirect:
        session = await web_session(request)
        refresh_token = request.cookies.get(REFRESH_COOKIE)
        if refresh_token:
            await auth_service.sign_out(db_session, refresh_token)
        session.cookies.extend(session_cookies(settings, None, secure=is_https(request)))
        return redirect("/signin?out=1")

    @get("/session/api-token", guards=[signed_in], cache_control=None)
    async def api_token(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, settings: Settings
    ) -> Response[TokenPair]:
        """An API token pair for the signed-in employee, for the pages that call the API from the
        browser (the call console): one sign-in for the whole app. The custom header makes a
        cross-site request need a CORS preflight, which the hub never grants, so only the hub's
        own pages can read it."""
        if request.headers.get("x-hub-fetch") != "1":
            raise BadRequest("Send the X-Hub-Fetch header", code="fetch_header_required")
        session = await web_session(request)
        assert session.principal is not None
        pair = await auth_service.issue_tokens(db_session, settings, session.principal)
        return Response(pair, headers={"Cache-Control": "no-store"})

    @post("/language")
    async def language(self, request: Request[Any, Any, Any]) -> Redirect:
        """The user's own choice of language, kept in the browser for a year."""
        form = await request.form()
        chosen = str(form.get("lang", ""))
        response = redirect(local_path(str(form.get("next", "")), "/"))
        if chosen in LANGUAGES:
            response.set_cookie(LANG_COOKIE, chosen, max_age=_YEAR, httponly=True, samesite="lax", path="/")
        return response
