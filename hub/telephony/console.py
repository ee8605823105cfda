"""The agent console page: static HTML with a little plain JavaScript (no build step)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

__all__ = ["console_page"]


@lru_cache(maxsize=1)
def console_page() -> str:
    return (Path(__file__).parent / "console.html").read_text(encoding="utf-8")
