"""The benchmark's lean websocket client: a minimal RFC 6455 client on asyncio protocols.

Text frames in and out, pings answered, frames masked with the C routine of the
websockets package; a frame callback (``Conn.handler``) is called for each data frame
with the time its bytes were read. See ``bid_latency.py`` for what is measured with it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import socket
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import msgspec

# Sibling modules: bid_latency.py is run as a script, so this directory is on sys.path.
from _common import SUBPROTOCOL, perf

if TYPE_CHECKING:
    from _load import Slot

try:  # the C masking routine of the websockets package (installed with bidhall)
    from websockets.speedups import apply_mask as _apply_mask
except ImportError:  # pragma: no cover - pure Python fallback
    def _apply_mask(data: bytes, mask: bytes) -> bytes:  # type: ignore[misc]
        n = int.from_bytes(mask * (len(data) // 4 + 1), "big") >> (8 * (-len(data) % 4))
        return (int.from_bytes(data, "big") ^ n).to_bytes(len(data), "big")


# ====================================================================== lean websocket client
class Reply(msgspec.Struct):
    """The fields of a server frame the client looks at (others are skipped by msgspec)."""

    type: str
    bid_id: str | None = None
    code: str | None = None


decode_reply = msgspec.json.Decoder(Reply).decode
_getrandbits = random.getrandbits


class Conn(asyncio.Protocol):
    """A minimal RFC 6455 client connection: text frames in and out, pings answered.

    ``handler(conn, t, payload)`` is called for each data frame, ``t`` being the
    ``perf_counter`` when the bytes were read. Frames to the server are masked with a
    fresh key each (C routine from websockets), as the RFC asks.
    """

    def __init__(self, host: str, port: int, path: str = "/ws") -> None:
        self.host, self.port, self.path = host, port, path
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.open = False
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.handler: Callable[[Conn, float, bytes], None] = ignore_frame
        self.frags: list[bytes] | None = None
        self.waiter: asyncio.Future[Any] | None = None
        self.slot: Slot | None = None
        self.log: list[tuple[float, bytes]] = []
        self.unexpected_close = False

    # ---------------------------------------------------------------- asyncio protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tr: Any = transport  # uvloop's transports are not asyncio.Transport subclasses
        self.transport = tr
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        tr.write(
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n".encode())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.open and not self.closed.done():
            self.unexpected_close = True
        self.open = False
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost in handshake: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)
        if self.slot is not None:
            self.slot.conn_lost(self)

    def data_received(self, data: bytes) -> None:
        t = perf()
        if self.buf:
            data = self.buf + data
            self.buf = b""
        if not self.open:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            status = data[:data.find(b"\r\n")]
            if b" 101 " not in status + b" ":
                if not self.opened.done():
                    self.opened.set_exception(ConnectionError(f"handshake refused: {status!r}"))
                assert self.transport is not None
                self.transport.close()
                return
            self.open = True
            self.opened.set_result(None)
            data = data[end + 4:]
        n = len(data)
        pos = 0
        handler = self.handler
        while n - pos >= 2:
            b0 = data[pos]
            b1 = data[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(data[pos + 2:pos + 4], "big")
                head = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2:pos + 10], "big")
                head = 10
            mask = None
            if b1 & 0x80:  # servers do not mask; handled anyway
                if n - pos < head + 4:
                    break
                mask = data[pos + head:pos + head + 4]
                head += 4
            end = pos + head + length
            if end > n:
                break
            payload = data[pos + head:end]
            if mask is not None:
                payload = _apply_mask(payload, mask)
            pos = end
            opcode = b0 & 0x0F
            if opcode == 1 or opcode == 2:
                if b0 & 0x80:
                    handler(self, t, payload)
                else:
                    self.frags = [payload]
            elif opcode == 0:
                if self.frags is not None:
                    self.frags.append(payload)
                    if b0 & 0x80:
                        whole, self.frags = b"".join(self.frags), None
                        handler(self, t, whole)
            elif opcode == 9:  # ping -> pong (uvicorn pings every 20 s)
                self._frame(0x8A, payload)
            elif opcode == 8:  # close -> echo the code and hang up
                with contextlib.suppress(Exception):
                    self._frame(0x88, payload[:2])
                self.open = False
                assert self.transport is not None
                self.transport.close()
                return
        if pos < n:
            self.buf = data[pos:]

    # ---------------------------------------------------------------- sending
    def _frame(self, first: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            header = bytes((first, 0x80 | n))
        elif n < 65536:
            header = bytes((first, 0xFE)) + n.to_bytes(2, "big")
        else:
            header = bytes((first, 0xFF)) + n.to_bytes(8, "big")
        mask = _getrandbits(32).to_bytes(4, "big")
        assert self.transport is not None
        self.transport.write(header + mask + _apply_mask(payload, mask))

    def send(self, payload: bytes) -> None:
        self._frame(0x81, payload)

    def abort(self) -> None:
        self.open = False
        if self.transport is not None:
            self.transport.abort()

    # ---------------------------------------------------------------- setup helpers
    async def request(self, payload: bytes, timeout: float = 30.0) -> Any:
        """Send ``payload`` and wait for the next frame (used during setup only)."""
        fut = asyncio.get_running_loop().create_future()
        self.waiter = fut
        self.handler = _to_waiter
        self.send(payload)
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self.waiter = None


def ignore_frame(conn: Conn, t: float, payload: bytes) -> None:
    pass


def _to_waiter(conn: Conn, t: float, payload: bytes) -> None:
    if conn.waiter is not None and not conn.waiter.done():
        conn.waiter.set_result(msgspec.json.decode(payload))


def log_frame(conn: Conn, t: float, payload: bytes) -> None:
    conn.log.append((t, payload))


async def connect_many(host: str, port: int, count: int, *, concurrency: int = 64,
                       after: Callable[[int, Conn], Any] | None = None) -> list[Conn]:
    """``count`` open connections; ``after(i, conn)`` (a coroutine) runs on each once open."""
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(concurrency)
    conns: list[Conn | None] = [None] * count

    async def one(i: int) -> None:
        async with sem:
            for attempt in range(3):
                try:
                    _, conn = await loop.create_connection(lambda: Conn(host, port), host, port)
                    await asyncio.wait_for(conn.opened, 10)
                    break
                except (OSError, ConnectionError, TimeoutError):
                    if attempt == 2:
                        raise
                    await asyncio.sleep(0.2 * (attempt + 1))
            if after is not None:
                await after(i, conn)
            conns[i] = conn

    await asyncio.gather(*(one(i) for i in range(count)))
    return [c for c in conns if c is not None]


def close_all(conns: Iterable[Conn]) -> None:
    for conn in conns:
        conn.slot = None
        conn.abort()
