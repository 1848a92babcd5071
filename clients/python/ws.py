"""A websocket client for protocol v1 that reconnects and resumes by itself.

    async with LiveClient("ws://127.0.0.1:8000/ws", token=token) as client:
        await client.subscribe("lot-1")
        answer = await client.bid("lot-1", 1_250_000)      # {"type": "ack", ...} or "reject"
        async for message in client.messages():            # snapshots and events, in order
            ...

After a lost connection it reconnects with backoff, says hello again, resubscribes
with ``since`` = the last seq it saw (so nothing is missed or repeated), and sends
every unanswered bid again with the same ``bid_id``, which the server answers
exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

SUBPROTOCOL = "bidhall.v1"


class LiveClient:
    def __init__(self, url: str, token: str | None = None, *, reconnect: bool = True,
                 max_backoff: float = 2.0) -> None:
        self.url = url
        self.token = token
        self.reconnect = reconnect
        self.max_backoff = max_backoff
        self.welcome: dict[str, Any] | None = None
        self.last_seq: dict[str, int] = {}
        self.connected = asyncio.Event()
        self.reconnects = 0
        self.offset_ms = 0.0  # server clock minus local clock, from ping/pong
        self._subs: set[str] = set()
        self._pending: dict[str, tuple[dict[str, Any], asyncio.Future[dict[str, Any]]]] = {}
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._conn: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._pongs: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def __aenter__(self) -> LiveClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self, timeout: float = 10.0) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.wait_for(self.connected.wait(), timeout)

    async def close(self) -> None:
        self._closing = True
        if self._conn is not None:
            await self._conn.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    # ------------------------------------------------------------------ requests
    async def subscribe(self, lot: str, since: int | None = None) -> None:
        self._subs.add(lot)
        if since is not None:
            self.last_seq[lot] = since
        await self._send({"type": "subscribe", "lot": lot, "since": self.last_seq.get(lot)})

    def bid_nowait(self, lot: str, amount: int, bid_id: str | None = None
                   ) -> asyncio.Future[dict[str, Any]]:
        """Send a bid; the future resolves with its ``ack`` or ``reject``."""
        bid_id = bid_id or uuid.uuid4().hex
        message = {"type": "bid", "lot": lot, "amount": amount, "bid_id": bid_id}
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[bid_id] = (message, future)
        conn = self._conn
        if conn is not None:
            asyncio.get_running_loop().create_task(self._send_quiet(conn, message))
        return future

    async def bid(self, lot: str, amount: int, bid_id: str | None = None,
                  timeout: float = 30.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.bid_nowait(lot, amount, bid_id), timeout)

    async def ping(self) -> float:
        """Round-trip time in ms; updates :attr:`offset_ms` from the server's clock."""
        t0 = time.time() * 1000
        await self._send({"type": "ping", "t": t0})
        pong = await asyncio.wait_for(self._pongs.get(), 10)
        t1 = time.time() * 1000
        self.offset_ms = pong["server_time"] - (t0 + t1) / 2
        return t1 - t0

    async def send_raw(self, text: str | bytes) -> None:
        """Send a frame as is (tests of malformed input)."""
        assert self._conn is not None
        await self._conn.send(text)

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next snapshot, event or error, in arrival order."""
        return await asyncio.wait_for(self._inbox.get(), timeout)

    async def messages(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self._inbox.get()

    # ------------------------------------------------------------------ connection
    async def _send(self, message: dict[str, Any]) -> None:
        await self.connected.wait()
        assert self._conn is not None
        await self._conn.send(json.dumps(message))

    @staticmethod
    async def _send_quiet(conn: ClientConnection, message: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionClosed):
            await conn.send(json.dumps(message))

    async def _run(self) -> None:
        backoff = 0.05
        while not self._closing:
            try:
                async with connect(self.url, subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                                   max_size=2**22, compression=None, open_timeout=10) as conn:
                    await self._resume(conn)
                    backoff = 0.05
                    async for raw in conn:
                        self._receive(json.loads(raw))
            except (TimeoutError, OSError, ConnectionClosed):
                pass
            self._conn = None
            self.connected.clear()
            if self._closing or not self.reconnect:
                self._inbox.put_nowait({"type": "closed"})
                return
            self.reconnects += 1
            await asyncio.sleep(backoff * (1 + random.random()))
            backoff = min(backoff * 2, self.max_backoff)

    async def _resume(self, conn: ClientConnection) -> None:
        if self.token:
            await conn.send(json.dumps({"type": "hello", "token": self.token}))
            welcome = json.loads(await conn.recv())
            if welcome.get("type") != "welcome":
                self._inbox.put_nowait(welcome)
                raise ConnectionClosed(None, None)
            self.welcome = welcome
        for lot in self._subs:
            await conn.send(json.dumps({"type": "subscribe", "lot": lot,
                                        "since": self.last_seq.get(lot)}))
        for message, future in list(self._pending.values()):
            if not future.done():
                await conn.send(json.dumps(message))
        self._conn = conn
        self.connected.set()

    def _receive(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind in ("ack", "reject"):
            entry = self._pending.pop(message.get("bid_id", ""), None)
            if entry is not None and not entry[1].done():
                entry[1].set_result(message)
            return
        if kind == "pong":
            self._pongs.put_nowait(message)
            return
        if kind == "welcome":
            self.welcome = message
            return
        if kind in ("snapshot", "event"):
            lot, seq = message["lot"], message["seq"]
            if kind == "event" and seq <= self.last_seq.get(lot, -1):
                return
            self.last_seq[lot] = seq
        self._inbox.put_nowait(message)
