"""Counting the SQL statements a code path sends, so a test fails when a hot path grows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from hub.db import Database

__all__ = ["counting_statements"]


@contextmanager
def counting_statements(db: Database) -> Iterator[list[str]]:
    """The statements sent through ``db``'s engine while the block runs, in order.

    SQLite's ``BEGIN IMMEDIATE`` is left out: PostgreSQL's BEGIN does not pass this hook either,
    and the same path should count the same on both databases.
    """
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement != "BEGIN IMMEDIATE":
            statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
