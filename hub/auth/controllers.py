"""Sign-in, refresh and "who am I"."""

from __future__ import annotations

from litestar import Controller, get, post
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth import service
from hub.auth.guards import any_principal
from hub.auth.principal import Principal
from hub.auth.schemas import LoginRequest, Me, RefreshRequest, TokenPair
from hub.settings import Settings

__all__ = ["AuthController"]


class AuthController(Controller):
    path = "/api/auth"
    tags = ["auth"]

    @post("/login", exclude_from_auth=True, status_code=200, summary="Sign in with a password")
    async def login(self, data: LoginRequest, db_session: AsyncSession, settings: Settings) -> TokenPair:
        """Employees sign in with their e-mail, app users with their login. Returns a short-lived
        access token and a single-use refresh token."""
        return await service.sign_in(db_session, settings, data.account, data.login, data.password, data.kind)

    @post("/refresh", exclude_from_auth=True, status_code=200, summary="Exchange a refresh token")
    async def refresh(self, data: RefreshRequest, db_session: AsyncSession, settings: Settings) -> TokenPair:
        return await service.refresh(db_session, settings, data.refresh_token)

    @get("/me", guards=[any_principal], summary="The signed-in principal")
    async def me(self, principal: Principal) -> Me:
        return Me(
            principal.kind,
            principal.account_id,
            principal.subject_id,
            principal.name,
            principal.role,
            principal.contact_id,
        )
