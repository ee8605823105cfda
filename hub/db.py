"""Database: declarative base, portable column types, engine and session factory."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData, String, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, SessionTransaction, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Base",
    "Database",
    "Id",
    "JSONType",
    "PortableId",
    "UTCDateTime",
    "after_commit",
    "after_rollback",
    "dialect_insert",
    "digits_text",
    "utcnow",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL; INTEGER on SQLite, where only "INTEGER PRIMARY KEY" auto-increments.
PortableId = BigInteger().with_variant(Integer(), "sqlite")
JSONType = JSON()


def digits_text(length: int = 32) -> String:
    """A string column compared byte-wise on PostgreSQL, so range scans over digit strings use the index."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both engines (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType}


class Id:
    """Mixin: an auto-increment integer primary key."""

    id: Mapped[int] = mapped_column(PortableId, primary_key=True, autoincrement=True)


AfterCommit = Callable[[], None]


def after_commit(session: AsyncSession | Session, callback: AfterCommit) -> None:
    """Run ``callback`` once the session's outermost transaction commits (never if it rolls back).

    Services use this to wake workers and publish live events: effects only after commit. A
    callback registered inside a savepoint is dropped if that savepoint rolls back, and otherwise
    waits for the outermost commit like the rest.
    """
    _register(session, "after_commit", callback)


def after_rollback(session: AsyncSession | Session, callback: AfterCommit) -> None:
    """Run ``callback`` if the transaction (or savepoint) it was registered in rolls back, e.g. to
    remove a file written for a change that did not stay. Forgotten once the outermost commit happens."""
    _register(session, "after_rollback", callback)


def dialect_insert(session_or_dialect: AsyncSession | str, table: Any) -> Any:
    """INSERT with the dialect's ON CONFLICT clauses (PostgreSQL or SQLite), for a session's
    database or a dialect name."""
    name = (
        session_or_dialect
        if isinstance(session_or_dialect, str)
        else session_or_dialect.get_bind().dialect.name
    )
    return (postgresql.insert if name == "postgresql" else sqlite.insert)(table)


def _register(session: AsyncSession | Session, key: str, callback: AfterCommit) -> None:
    # Tagged with the savepoint it was registered in (None outside one): see _on_rollback.
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    sync.info.setdefault(key, []).append((sync.get_nested_transaction(), callback))


Registered = list[tuple[SessionTransaction | None, AfterCommit]]


def _run_after_commit(session: Session) -> None:
    # SQLAlchemy also reports a released savepoint as a commit; only the outermost one counts.
    if session.get_nested_transaction() is not None:
        return
    session.info.pop("after_rollback", None)
    pending: Registered = session.info.pop("after_commit", [])
    for _, callback in pending:
        callback()


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    if not ancestor.nested:
        return True  # the outermost transaction holds everything
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


def _split(registered: Registered, rolled_back: SessionTransaction) -> tuple[Registered, Registered]:
    inside = [item for item in registered if _within(item[0], rolled_back)]
    return inside, [item for item in registered if not _within(item[0], rolled_back)]


def _on_rollback(session: Session, rolled_back: SessionTransaction) -> None:
    _, session.info["after_commit"] = _split(session.info.get("after_commit", []), rolled_back)
    undo, session.info["after_rollback"] = _split(session.info.get("after_rollback", []), rolled_back)
    for _, callback in undo:
        callback()


event.listen(Session, "after_commit", _run_after_commit)
event.listen(Session, "after_soft_rollback", _on_rollback)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # We issue BEGIN ourselves (below), so the driver must not.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


RECYCLE_SECONDS = 1800


def _refuse_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Hand out no connection PostgreSQL has closed (restart, failover, pg_terminate_backend).

    asyncpg sees the server close the socket as it happens (the event loop reads the EOF), so
    ``is_closed()`` answers without a round trip. DisconnectionError makes the pool drop this
    connection and open a new one. A connection that dies silently (a network cut, no FIN) fails
    its first statement instead: SQLAlchemy recognises asyncpg's connection errors as disconnects
    and invalidates the whole pool, so that one request fails and the next ones get new connections.
    """
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("PostgreSQL closed this connection")


class Database:
    """One engine and session factory per process."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 20) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            # SQLite has one writer. One connection per process queues our own transactions in
            # the pool; BEGIN IMMEDIATE makes other processes wait (busy_timeout) instead of
            # failing when a reader later wants to write.
            kwargs |= {"pool_size": 1, "max_overflow": 0, "pool_timeout": 60}
        else:
            # No pool_pre_ping: it costs three round trips (BEGIN, a ping, ROLLBACK) per checkout,
            # as many as a small request's own work. See _refuse_closed_connection instead;
            # pool_recycle bounds a connection's age (proxies and firewalls drop idle ones).
            # No overflow: an overflow connection is closed when it is returned, so a sustained
            # burst above the pool's size opened and closed a PostgreSQL backend per request (seen
            # as ~270 sessions per bench run). The pool keeps what it opened, up to its size.
            kwargs |= {"pool_size": pool_size, "max_overflow": 0, "pool_recycle": RECYCLE_SECONDS}
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin_immediate)
        else:
            event.listen(self.engine.sync_engine, "checkout", _refuse_closed_connection)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, class_=AsyncSession)

    @property
    def dialect(self) -> str:
        return "sqlite" if self.is_sqlite else "postgresql"

    async def dispose(self) -> None:
        await self.engine.dispose()
