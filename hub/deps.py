"""Request dependencies shared by every domain."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth.guards import principal_of
from hub.auth.principal import Principal
from hub.db import Database
from hub.settings import Settings

__all__ = ["dependencies", "provide_db_session", "provide_principal", "provide_settings"]


async def provide_db_session(state: State) -> AsyncGenerator[AsyncSession, None]:
    """One transaction per request: committed once after the handler succeeds, rolled back on error.

    The commit happens before the response is sent, so a client that sees 2xx sees stored data.
    """
    db: Database = state.db
    async with db.sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    return principal_of(request)


def provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


dependencies: dict[str, Any] = {
    "db_session": Provide(provide_db_session),
    "principal": Provide(provide_principal, sync_to_thread=False),
    "settings": Provide(provide_settings, sync_to_thread=False),
}
