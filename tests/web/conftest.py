"""The browser for the web app's journeys: Debian's headless Chromium driven by Playwright, and the
app served on a real socket."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from litestar import Litestar
from playwright.async_api import Browser, async_playwright

from tests.telephony.server import serve
from tests.telephony.test_console_browser import CHROMIUM, CHROMIUM_ARGS


@dataclass
class Site:
    base: str
    browser: Browser


@pytest.fixture
async def site(app: Litestar) -> AsyncIterator[Site]:
    """The app on a socket and a browser; the browser closes first (its open live streams would
    keep the server from stopping)."""
    # Fail, do not skip: the journeys are how the web app is proven.
    assert CHROMIUM.exists(), "Debian's chromium is missing: apt-get install -y chromium"
    async with serve(app) as base, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield Site(base, browser)
        finally:
            await browser.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where the journeys leave their screenshots (HUB_WEB_SHOTS to keep them for a look)."""
    folder = Path(os.environ.get("HUB_WEB_SHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
