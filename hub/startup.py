"""Start-up problems told as one line naming the setting and the fix, never as a traceback.

The ``hub`` command calls :func:`explain` for an exception raised before the server runs (reading
the settings, reaching and migrating the database, binding the port); what it cannot name is left
to propagate as it is.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from urllib.parse import urlsplit

from hub.settings import ConfigurationError

__all__ = ["StartupError", "explain", "safe_url"]


class StartupError(RuntimeError):
    """A start-up problem already told as one line for the operator."""


def safe_url(url: str) -> str:
    """The database URL without its password (it goes into a message)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what it wraps (SQLAlchemy's ``orig``) and what caused it."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [getattr(current, "orig", None), current.__cause__, current.__context__]


def _database_url() -> str:
    return safe_url(os.environ.get("HUB_DATABASE_URL") or "the embedded SQLite database")


def _database_problem(exc: BaseException) -> str | None:
    url = _database_url()
    name = type(exc).__name__
    if name == "InvalidCatalogNameError":  # asyncpg: the database does not exist
        return (
            f"HUB_DATABASE_URL names a database that does not exist ({url}): create it "
            "(createdb) and run `hub migrate`, or correct the name"
        )
    if name in {"InvalidPasswordError", "InvalidAuthorizationSpecificationError"}:
        return f"HUB_DATABASE_URL: PostgreSQL refused the user or password ({url}): correct them"
    if isinstance(exc, ConnectionRefusedError) or (
        isinstance(exc, OSError) and exc.errno in {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH}
    ):
        return (
            f"HUB_DATABASE_URL: nothing answers at {url} (connection refused): start PostgreSQL "
            "or correct the host and port"
        )
    if isinstance(exc, OSError) and name == "gaierror":
        return f"HUB_DATABASE_URL: the host in {url} is not known: correct the host name"
    if isinstance(exc, sqlite3.OperationalError) and "unable to open" in str(exc):
        return (
            f"HUB_DATABASE_URL / HUB_DATA_DIR: the SQLite file cannot be opened ({url}): "
            "make its directory writable or choose another HUB_DATA_DIR"
        )
    if isinstance(exc, TimeoutError):
        return f"HUB_DATABASE_URL: the database at {url} did not answer in time: check the host and network"
    return None


def explain(exc: BaseException) -> str | None:
    """One line saying what is wrong and how to fix it, or None if this is not a start-up problem
    the hub knows."""
    for link in _chain(exc):
        if isinstance(link, (ConfigurationError, StartupError)):
            return str(link)
        problem = _database_problem(link)
        if problem:
            return problem
    return None
