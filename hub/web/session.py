"""The web app's cookie session on top of the auth service (ISSUE 13).

Signing in asks :func:`hub.auth.service.sign_in` for the same token pair the API hands out and keeps
it in two HttpOnly cookies: the short-lived access token and the single-use refresh token. A page
request checks the access token as the API does (signature, expiry, employee still active and in
the same role); when it has expired the refresh token is exchanged for a new pair by
:func:`hub.auth.service.refresh`, so a session lives as long as the API's refresh token. When
neither works the page sends the browser to the sign-in form and back afterwards.

CSRF: a random seed cookie and, in every form, its HMAC under the hub's secret (signed double
submit). An attacker's page can neither read the cookie nor compute the HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from hub.auth import service as auth_service
from hub.auth.middleware import check_subject
from hub.auth.principal import Principal
from hub.auth.schemas import TokenPair
from hub.auth.tokens import decode_access_token
from hub.errors import HubError, PayloadTooLarge, Unauthorized
from hub.settings import Settings
from hub.web.i18n import Translator, choose_language, translator

__all__ = [
    "CSRF_FIELD",
    "LANG_COOKIE",
    "CsrfRefused",
    "SignInRequired",
    "WebCookies",
    "WebSession",
    "csrf_checked",
    "known_session",
    "local_path",
    "session_cookies",
    "session_loaded",
    "signed_in",
    "web_session",
]

ACCESS_COOKIE = "hub_session"
REFRESH_COOKIE = "hub_refresh"
CSRF_COOKIE = "hub_csrf"
LANG_COOKIE = "hub_lang"
CSRF_FIELD = "_csrf"
CSRF_HEADER = "x-csrf-token"
_STATE_KEY = "web_session"


class SignInRequired(HubError):
    """No valid session: the page answers with a redirect to the sign-in form."""

    status = 401
    code = "sign_in_required"

    def __init__(self, back: str, *, expired: bool) -> None:
        super().__init__("Sign in first", code=self.code)
        self.back = back
        self.expired = expired


class CsrfRefused(HubError):
    status = 403
    code = "csrf_failed"
    title = "The form has expired. Try again."


@dataclass
class WebSession:
    """What one page request knows about its visitor."""

    principal: Principal | None
    language: str
    csrf_seed: str
    # Cookies to send with the answer (a renewed token pair, a new CSRF seed, a sign-out).
    cookies: list[Cookie] = field(default_factory=list)
    # The hub's secret key, which signs the CSRF token.
    secret: str = ""

    @property
    def csrf_token(self) -> str:
        return csrf_token_of(self.csrf_seed, self.secret)

    @property
    def gettext(self) -> Translator:
        return translator(self.language)


def csrf_token_of(seed: str, secret: str) -> str:
    return hmac.new(secret.encode(), f"csrf:{seed}".encode(), hashlib.sha256).hexdigest()


def _cookie(key: str, value: str, max_age: int | None, *, secure: bool) -> Cookie:
    return Cookie(
        key=key, value=value, max_age=max_age, httponly=True, samesite="lax", path="/", secure=secure
    )


def session_cookies(settings: Settings, pair: TokenPair | None, *, secure: bool) -> list[Cookie]:
    """The cookies holding ``pair`` (or clearing them when ``None``)."""
    if pair is None:
        return [_cookie(ACCESS_COOKIE, "", 0, secure=secure), _cookie(REFRESH_COOKIE, "", 0, secure=secure)]
    return [
        _cookie(ACCESS_COOKIE, pair.access_token, settings.security.refresh_token_seconds, secure=secure),
        _cookie(REFRESH_COOKIE, pair.refresh_token, settings.security.refresh_token_seconds, secure=secure),
    ]


def is_https(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    return connection.url.scheme == "https"


async def _checked(connection: ASGIConnection[Any, Any, Any, Any], token: str) -> Principal:
    state = connection.app.state
    principal = decode_access_token(token, state.settings.security.secret_key)
    if principal.kind != "employee":
        raise Unauthorized("Employees only", code="employees_only")
    await check_subject(state.db, principal, state.subject_cache)
    return principal


async def _renewed(connection: ASGIConnection[Any, Any, Any, Any], refresh_token: str) -> TokenPair | None:
    state = connection.app.state
    async with state.db.sessionmaker() as session:
        try:
            pair = await auth_service.refresh(session, state.settings, refresh_token)
        except Unauthorized:
            return None
        await session.commit()
    return pair


async def _principal(
    connection: ASGIConnection[Any, Any, Any, Any], cookies: list[Cookie]
) -> Principal | None:
    access = connection.cookies.get(ACCESS_COOKIE)
    if access:
        try:
            return await _checked(connection, access)
        except Unauthorized:
            pass
    refresh_token = connection.cookies.get(REFRESH_COOKIE)
    if not refresh_token:
        return None
    pair = await _renewed(connection, refresh_token)
    settings: Settings = connection.app.state.settings
    cookies.extend(session_cookies(settings, pair, secure=is_https(connection)))
    if pair is None:
        return None
    try:
        return await _checked(connection, pair.access_token)
    except Unauthorized:
        return None


def known_session(connection: ASGIConnection[Any, Any, Any, Any]) -> WebSession:
    """The session the guards read, or an anonymous one (for an error before any guard ran)."""
    known = connection.scope.get("state", {}).get(_STATE_KEY)
    if isinstance(known, WebSession):
        return known
    language = choose_language(connection.cookies.get(LANG_COOKIE), connection.headers.get("accept-language"))
    return WebSession(None, language, "")


async def web_session(connection: ASGIConnection[Any, Any, Any, Any]) -> WebSession:
    """The request's session, read once (guards and handlers share it)."""
    known = connection.scope.get("state", {}).get(_STATE_KEY)
    if isinstance(known, WebSession):
        return known
    settings: Settings = connection.app.state.settings
    cookies: list[Cookie] = []
    principal = await _principal(connection, cookies)
    seed = connection.cookies.get(CSRF_COOKIE) or ""
    if len(seed) < 32:
        seed = secrets.token_urlsafe(32)
        cookies.append(_cookie(CSRF_COOKIE, seed, None, secure=is_https(connection)))
    language = choose_language(connection.cookies.get(LANG_COOKIE), connection.headers.get("accept-language"))
    session = WebSession(principal, language, seed, cookies, secret=settings.security.secret_key)
    connection.scope.setdefault("state", {})[_STATE_KEY] = session
    return session


def local_path(candidate: str | None, default: str = "/tickets") -> str:
    """A path on this site to go back to (never another site: ``//evil`` or a full URL)."""
    if not candidate:
        return default
    parts = urlsplit(candidate)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    if not path.startswith("/") or path.startswith("//") or path.startswith("/signin"):
        return default
    return path


def _back_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """Where to return after signing in: the page itself, or for a form the page it was on."""
    if connection.scope.get("method", "GET") in ("GET", "HEAD"):
        query = connection.scope.get("query_string", b"").decode()
        return local_path(connection.url.path + (f"?{query}" if query else ""))
    referer = connection.headers.get("referer")
    if referer and urlsplit(referer).netloc == connection.url.netloc:
        return local_path(referer)
    return "/tickets"


async def session_loaded(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    await web_session(connection)


async def signed_in(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard of every page behind the sign-in: an employee with a live session."""
    session = await web_session(connection)
    if session.principal is None:
        # A form sent without a live session, or a session cookie that no longer works: the
        # session ended under the user (the page keeps what they wrote, see app.js).
        posted = connection.scope.get("method") not in ("GET", "HEAD")
        had_session = bool(connection.cookies.get(ACCESS_COOKIE) or connection.cookies.get(REFRESH_COOKIE))
        raise SignInRequired(_back_of(connection), expired=posted or had_session)


async def csrf_checked(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard of every form post (after :func:`signed_in`): the form carries the session's token."""
    if connection.scope.get("method") in ("GET", "HEAD", "OPTIONS"):
        return
    session = await web_session(connection)
    presented = connection.headers.get(CSRF_HEADER)
    if not presented:
        _refuse_oversized(connection)
        form = await connection.form()  # type: ignore[attr-defined]
        presented = str(form.get(CSRF_FIELD) or "")
    if not presented or not hmac.compare_digest(presented, session.csrf_token):
        raise CsrfRefused()


# Slack for the multipart envelope around a form's files (as the API's upload).
_MULTIPART_OVERHEAD = 64 * 1024


def _refuse_oversized(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Before a form is read: a form with files carries at most one file's worth (as one upload
    request of the API), and says its length up front; anything else is refused unread."""
    if not connection.headers.get("content-type", "").startswith("multipart/form-data"):
        return  # other forms stay under the app's request size limit
    settings: Settings = connection.app.state.settings
    length = connection.headers.get("content-length", "")
    if not length.isdigit() or int(length) > settings.files.max_file_bytes + _MULTIPART_OVERHEAD:
        raise PayloadTooLarge(
            f"A file may have at most {settings.files.max_file_bytes} bytes", code="file_too_large"
        )


class WebCookies:
    """ASGI middleware of the web router: sends the cookies the session collected with the answer
    (the guards run before any response exists, so they cannot set them themselves)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start":
                session = scope.get("state", {}).get(_STATE_KEY)
                if isinstance(session, WebSession) and session.cookies:
                    headers = list(message.get("headers", []))
                    for cookie in session.cookies:
                        headers.append((b"set-cookie", cookie.to_header(header="").encode("latin-1")))
                    message = {**message, "headers": headers}  # type: ignore[typeddict-item]
            await send(message)

        await self.app(scope, receive, send_with_cookies)
