"""Shared fixtures: a real bidhall server (uvicorn, SQLite in a temp dir) and clients of it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import uvicorn
from hypothesis import settings as hypothesis_settings

from auction import MINUTE
from clients.python import LiveClient, StaffClient
from server.app import create_app, staff_token
from server.clock import now_ms
from server.config import Settings
from server.net import build, port_of

REQUIRE_SERVICES = os.environ.get("BIDHALL_REQUIRE_SERVICES") == "1"

# Property tests share two cores with servers and browsers of other tests: a slow example
# is not a failure (speed is measured by the benchmarks, not by timed tests).
hypothesis_settings.register_profile("bidhall", deadline=None)
hypothesis_settings.load_profile("bidhall")


@dataclass
class Running:
    """A server started for one test."""

    settings: Settings
    base_url: str
    ws_url: str
    staff_token: str
    server: uvicorn.Server

    def live(self, token: str | None = None, **kw: Any) -> LiveClient:
        return LiveClient(self.ws_url, token, **kw)

    def staff(self) -> StaffClient:
        return StaffClient(self.base_url, self.staff_token)


async def start_server(settings: Settings) -> Running:
    token = await staff_token(settings)
    server, sock = build(create_app(settings), replace(settings, port=0))
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server did not start")
        await asyncio.sleep(0.01)
    port = port_of(sock)
    running = Running(settings, f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws", token,
                      server)
    running._task = task  # type: ignore[attr-defined]
    return running


async def stop_server(running: Running) -> None:
    running.server.should_exit = True
    await running._task  # type: ignore[attr-defined]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # gc_tuning off: the server shares this process with the test runner.
    return Settings(data_dir=tmp_path / "data", rate=1000.0, burst=1000, gc_tuning=False)


@pytest_asyncio.fixture
async def server(settings: Settings) -> AsyncIterator[Running]:
    running = await start_server(settings)
    try:
        yield running
    finally:
        await stop_server(running)


@pytest_asyncio.fixture
async def staff(server: Running) -> AsyncIterator[StaffClient]:
    async with server.staff() as client:
        yield client


def lot_fields(preset: str = "qinzhou", **overrides: Any) -> dict[str, Any]:
    """Fields of a lot already in its listing, ending in an hour."""
    now = now_ms()
    fields: dict[str, Any] = {
        "title": "测试地块 test parcel", "preset": preset, "start_price": 1_000_000,
        "deposit": 200_000, "listing_increment": 10_000, "listing_start": now - MINUTE,
        "listing_end": now + 60 * MINUTE,
    }
    fields.update(overrides)
    return fields
