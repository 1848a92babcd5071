"""A TCP forwarder standing between the browser and the server, for connection tests.

A restarted test server listens on a new port; the browser keeps talking to the proxy's
port, so the page's own reconnect logic is what gets tested. The proxy can also hold new
connections (the server is "down"), cut every connection, and swallow what the server
sends (an answer lost on the way).
"""

from __future__ import annotations

import asyncio
import contextlib


class Proxy:
    def __init__(self) -> None:
        self.target: int | None = None
        self.port = 0
        self.mute = False  # drop bytes from the server to the browser
        self._open = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, target: int) -> int:
        self.point(target)
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def point(self, target: int) -> None:
        """Forward new connections to ``target`` (and let held ones through)."""
        self.target = target
        self._open.set()

    def hold(self) -> None:
        """Accept new connections but forward nothing until :meth:`point`."""
        self._open.clear()

    async def cut(self) -> None:
        """Close every forwarded connection at once."""
        for writer in list(self._writers):
            writer.close()
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        upstream: asyncio.StreamWriter | None = None
        try:
            await self._open.wait()
            assert self.target is not None
            up_reader, upstream = await asyncio.open_connection("127.0.0.1", self.target)
            self._writers.add(upstream)
            await asyncio.gather(self._pipe(reader, upstream, False),
                                 self._pipe(up_reader, writer, True))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for w in (writer, upstream):
                if w is not None:
                    self._writers.discard(w)
                    w.close()
                    with contextlib.suppress(Exception):
                        await w.wait_closed()
            self._tasks.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    downstream: bool) -> None:
        try:
            while data := await reader.read(65536):
                if downstream and self.mute:
                    continue
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()


class CuttingProxy(Proxy):
    """The proxy of the browser tests, plus one cut of every connection once ``cut_after``
    more bytes went from the browser to the server (in the middle of a PATCH)."""

    def __init__(self) -> None:
        super().__init__()
        self.upstream = 0
        self.cut_at: int | None = None
        self.cuts = 0

    def cut_after(self, n: int) -> None:
        self.cut_at = self.upstream + n

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    downstream: bool) -> None:
        if downstream:
            return await super()._pipe(reader, writer, downstream)
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
                self.upstream += len(data)
                if self.cut_at is not None and self.upstream >= self.cut_at:
                    self.cut_at = None
                    self.cuts += 1
                    await self.cut()
                    return
        except OSError:
            pass
        finally:
            writer.close()
