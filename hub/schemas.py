"""Helpers shared by the msgspec Structs of every domain."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

__all__ = ["to_read", "updates_of"]

T = TypeVar("T")


def to_read(cls: type[T], row: object) -> T:
    """Build a read Struct from an ORM row's attributes."""
    return msgspec.convert(row, cls, from_attributes=True)


def updates_of(data: msgspec.Struct) -> dict[str, Any]:
    """The fields a PATCH body actually set (``UNSET`` ones left out)."""
    return {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
