"""A small time-to-live cache for reads on hot paths (a callback's endpoint, a PBX's token).

    endpoints = TTLCache[str, PaymentAccount | None](ttl=5.0, max_size=10_000)
    account = await endpoints.get(key, lambda: read_account(db, key))

Concurrent misses of one key share one read (a burst's first hundred requests cost one query, not
a hundred), a failed read is not kept, and :meth:`TTLCache.forget` drops a key at once in this
process when the owner changes it; other processes see the change when the entry ages out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

__all__ = ["TTLCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    def __init__(self, ttl: float, max_size: int = 10_000) -> None:
        if ttl <= 0 or max_size <= 0:
            raise ValueError("TTLCache needs a positive ttl and max_size")
        self.ttl = ttl
        self.max_size = max_size
        self._entries: dict[K, tuple[float, asyncio.Future[V]]] = {}

    async def get(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        """The cached value of ``key``, or ``await read()`` (kept for ``ttl`` seconds)."""
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and now - entry[0] <= self.ttl:
            if entry[1].done() and not _failed(entry[1]):
                return entry[1].result()
            if not entry[1].done() and entry[1].get_loop() is asyncio.get_running_loop():
                return await self._wait(key, entry)
        if len(self._entries) >= self.max_size:
            self._entries.clear()  # rare: a flood of distinct keys; start afresh
        entry = self._entries[key] = (now, asyncio.ensure_future(read()))
        return await self._wait(key, entry)

    async def _wait(self, key: K, entry: tuple[float, asyncio.Future[V]]) -> V:
        try:
            return await asyncio.shield(entry[1])
        except Exception:
            if self._entries.get(key) is entry:
                del self._entries[key]  # a failed read is not kept
            raise

    def forget(self, key: K | None = None) -> None:
        """Drop ``key`` (or everything) so the next get reads afresh."""
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)


def _failed(future: asyncio.Future[Any]) -> bool:
    return future.done() and (future.cancelled() or future.exception() is not None)
