"""Browser fixtures: Debian's Chromium driven by Playwright, pages that fail on any JS error.

The browser tests skip only under ``BIDHALL_SKIP_BROWSER=1``; without Chromium they fail
and say how to install it (``tools/ensure-chromium``).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


def chromium_path() -> str:
    if os.environ.get("BIDHALL_SKIP_BROWSER") == "1":
        pytest.skip("browser tests skipped: BIDHALL_SKIP_BROWSER=1")
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not on PATH: run tools/ensure-chromium to install Debian's "
                    "chromium (or set BIDHALL_SKIP_BROWSER=1 to skip the browser tests)",
                    pytrace=False)
    return path


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Any]:
    path = chromium_path()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@dataclass
class Tracked:
    """A page with every JS error and console error it produced."""

    page: Any
    errors: list[str] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)  # websocket frames the page sent
    sockets: int = 0  # websockets the page opened


class Pages:
    """Opens pages in one browser; a JS error or console error fails the test at teardown."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser
        self.contexts: list[Any] = []
        self.tracked: list[tuple[Tracked, tuple[re.Pattern[str], ...]]] = []

    async def context(self, viewport: dict[str, int] = DESKTOP, lang: str | None = None,
                      scale: float = 1) -> Any:
        ctx = await self.browser.new_context(viewport=viewport, device_scale_factor=scale,
                                             locale="zh-CN", timezone_id="Asia/Shanghai")
        if lang is not None:
            await ctx.add_init_script(f"localStorage.setItem('bidhall.lang', '{lang}')")
        ctx.set_default_timeout(8000)
        self.contexts.append(ctx)
        return ctx

    async def open(self, url: str, *, ctx: Any = None, allow: Iterable[str] = (),
                   **ctx_options: Any) -> Tracked:
        """Open ``url`` in ``ctx`` (a new context when None). ``allow``: console errors
        (regular expressions) expected in this test."""
        if ctx is None:
            ctx = await self.context(**ctx_options)
        page = await ctx.new_page()
        tracked = Tracked(page)
        self.tracked.append((tracked, tuple(re.compile(a) for a in allow)))
        page.on("pageerror", lambda exc: tracked.errors.append(f"pageerror: {exc}"))
        page.on("console", lambda msg: msg.type == "error"
                and tracked.errors.append(f"console: {msg.text}"))

        def on_socket(ws: Any) -> None:
            tracked.sockets += 1
            ws.on("framesent", lambda payload: _record(tracked, payload))

        page.on("websocket", on_socket)
        await page.goto(url)
        return tracked

    def errors(self) -> list[str]:
        out = []
        for tracked, allowed in self.tracked:
            out += [e for e in tracked.errors if not any(a.search(e) for a in allowed)]
        return out

    async def close(self) -> None:
        for ctx in self.contexts:
            await ctx.close()


def _record(tracked: Tracked, payload: str | bytes) -> None:
    import json

    try:
        message = json.loads(payload)
    except ValueError:
        return
    if isinstance(message, dict):
        tracked.sent.append(message)


async def snap(page: Any, name: str, full_page: bool = False) -> None:
    """Save a screenshot of ``page`` as test-artifacts/{name}.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=full_page)


@pytest_asyncio.fixture
async def pages(browser: Any) -> AsyncIterator[Pages]:
    opened = Pages(browser)
    try:
        yield opened
        errors = opened.errors()
        assert not errors, "the page reported errors:\n" + "\n".join(errors)
    finally:
        await opened.close()
