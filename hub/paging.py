"""One list convention for the whole API: ``{items, next_cursor}`` pages, keyset-paged.

Every list route takes ``limit`` (1..200, default 50) and ``cursor`` (the ``next_cursor`` of the
previous page) and answers a :class:`Page`. A list has a documented default order and, where users
need it, a ``sort`` parameter naming one of its :class:`Order` values. The cursor is opaque to
clients: base64url JSON of the order's name and the last row's key values. Paging by keys (never by
offset) keeps pages stable while rows are added and costs one index range scan per page.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from litestar.params import Parameter
from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession

from hub.errors import BadRequest

__all__ = [
    "Cursor",
    "Key",
    "Limit",
    "Order",
    "Page",
    "Rows",
    "by_id",
    "decode_cursor",
    "encode_cursor",
    "fetch_page",
    "page_of",
]

T = TypeVar("T")
# A page of rows and the cursor of the next page (None on the last page).
Rows = tuple[list[Any], str | None]
DEFAULT_LIMIT = 50
MAX_LIMIT = 200

Limit = Annotated[int, Parameter(ge=1, le=MAX_LIMIT, description="Items per page (1..200, default 50)")]
Cursor = Annotated[
    str | None,
    Parameter(
        max_length=512,
        description="The `next_cursor` of the previous page (opaque); omit for the first page",
    ),
]


class Page(msgspec.Struct, Generic[T]):
    """One page of a list. Pass ``next_cursor`` as ``cursor`` for the next page; null on the last."""

    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class Key:
    """One sort key: the SQL expression ordered by and how to read its value off a fetched row."""

    expression: Any
    value: Callable[[Any], Any]
    descending: bool = False
    is_time: bool = False


@dataclass(frozen=True)
class Order:
    """A named order of a list; its last key is unique (the id), so the order is total."""

    name: str
    keys: tuple[Key, ...]

    def order_by(self) -> list[Any]:
        return [k.expression.desc() if k.descending else k.expression.asc() for k in self.keys]

    def after(self, values: Sequence[Any]) -> ColumnElement[bool]:
        """Rows that come after the row whose key values are ``values`` in this order."""
        clauses: list[ColumnElement[bool]] = []
        for index, key in enumerate(self.keys):
            equal = [k.expression == v for k, v in zip(self.keys[:index], values, strict=False)]
            beyond = key.expression < values[index] if key.descending else key.expression > values[index]
            clauses.append(and_(*equal, beyond))
        return or_(*clauses)


def by_id(column: Any, *, newest_first: bool = False, name: str | None = None) -> Order:
    """The order of most lists: by id, oldest (or newest) first."""
    return Order(
        name or ("-id" if newest_first else "id"),
        (Key(column, lambda row: row.id, descending=newest_first),),
    )


def _invalid() -> BadRequest:
    return BadRequest("The cursor is not one this list gave out", code="invalid_cursor")


def encode_cursor(order: Order, row: Any) -> str:
    values = [k.value(row) for k in order.keys]
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    raw = json.dumps([order.name, *plain], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_value(key: Key, value: Any) -> Any:
    if key.is_time:
        if not isinstance(value, str):
            raise _invalid()
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _invalid() from None
        if parsed.tzinfo is None:
            raise _invalid()
        return parsed
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _invalid()
    if isinstance(value, int) and not -(2**62) <= value <= 2**62:
        raise _invalid()
    return value


def decode_cursor(order: Order, cursor: str) -> list[Any]:
    """The key values a cursor carries; 400 ``invalid_cursor`` for anything this order never gave out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _invalid() from None
    if not isinstance(decoded, list) or len(decoded) != len(order.keys) + 1 or decoded[0] != order.name:
        raise _invalid()
    return [_decode_value(k, v) for k, v in zip(order.keys, decoded[1:], strict=True)]


async def fetch_page(
    session: AsyncSession, query: Select[Any], order: Order, *, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    """One page of ORM rows of ``query`` in ``order`` and the cursor of the next page (or None)."""
    if cursor:
        query = query.where(order.after(decode_cursor(order, cursor)))
    rows = list(await session.scalars(query.order_by(*order.order_by()).limit(limit + 1)))
    page = rows[:limit]
    return page, encode_cursor(order, page[-1]) if len(rows) > limit else None


def page_of(
    rows: Sequence[Any], order: Order, *, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    """The same paging over rows already in memory in ``order`` (short lists built in Python)."""
    start = 0
    if cursor:
        last = decode_cursor(order, cursor)
        keys = [[k.value(r) for k in order.keys] for r in rows]
        start = next((i + 1 for i, values in enumerate(keys) if values == last), None) or 0
        if start == 0:
            raise _invalid()
    page = list(rows[start : start + limit])
    more = start + limit < len(rows)
    return page, encode_cursor(order, page[-1]) if more and page else None
