"""The bus across processes: committed events published on one Redis channel.

The owner of a lot dispatches its committed events to its own hub at once and
publishes them for every other process; a process skips its own messages. Redis
pub/sub drops messages when a subscriber disconnects, so nothing depends on it for
durability: a hub that sees a gap in a lot's ``seq``, or reconnects after an outage,
reads what it missed from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

import msgspec
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from auction import Event

from . import codec
from .bus import Handler
from .store import EventRow

log = logging.getLogger("bidhall.bus")

#: Events waiting to be published before the oldest are dropped (the store has them).
PUBLISH_BACKLOG = 10_000


class _Batch(msgspec.Struct, array_like=True):
    node: str
    lot: str
    events: list[tuple[int, int | None, int, str, msgspec.Raw]]  # seq, pseq, at, kind, body


class RedisBus:
    def __init__(self, url: str, node: str, *, channel: str = "bidhall:events",
                 on_reconnect: Callable[[], None] | None = None,
                 on_session: Callable[[str, str], None] | None = None) -> None:
        self.url, self.node, self.channel = url, node, channel
        self.sessions = channel + ":sessions"
        self.tenders = channel + ":tenders"
        self.on_reconnect = on_reconnect
        self.on_session = on_session
        #: Called with a tender id another process wrote to, or ``None`` after a reconnect.
        self.on_tender: Callable[[str | None], None] | None = None
        self._handlers: list[Handler] = []
        self._redis: aioredis.Redis | None = None
        self._outgoing: asyncio.Queue[bytes] = asyncio.Queue(PUBLISH_BACKLOG)
        self._tasks: list[asyncio.Task[None]] = []
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(_Batch)

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    async def start(self) -> None:
        self._redis = aioredis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2,
                                        health_check_interval=5)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._publisher()), loop.create_task(self._listener())]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._redis is not None:
            await self._redis.aclose()

    def publish(self, lot_id: str, events: Sequence[Event]) -> None:
        for handler in self._handlers:
            handler(lot_id, events)
        rows = [codec.to_row(e) for e in events]
        batch = _Batch(self.node, lot_id, [(r.seq, r.pseq, r.at, r.kind, msgspec.Raw(r.body))
                                           for r in rows])
        try:
            self._outgoing.put_nowait(self._encoder.encode(batch))
        except asyncio.QueueFull:
            log.warning("bus backlog full; other processes will read lot %s from the store",
                        lot_id)

    def announce_session(self, lot_id: str, bidder: str) -> None:
        """A bidder signed in here: other processes end its older session."""
        payload = msgspec.json.encode({"node": self.node, "lot": lot_id, "bidder": bidder})
        try:
            self._outgoing.put_nowait(b"S" + payload)
        except asyncio.QueueFull:
            log.warning("bus backlog full; a session takeover was not announced")

    def announce_tender(self, tender_id: str) -> None:
        """A tender changed here: other processes read its new events from the store."""
        payload = msgspec.json.encode({"node": self.node, "tender": tender_id})
        try:
            self._outgoing.put_nowait(b"T" + payload)
        except asyncio.QueueFull:
            log.warning("bus backlog full; a tender change was not announced")

    async def _publisher(self) -> None:
        assert self._redis is not None
        while True:
            payload = await self._outgoing.get()
            channel = self.channel
            if payload[:1] == b"S":
                channel, payload = self.sessions, payload[1:]
            elif payload[:1] == b"T":
                channel, payload = self.tenders, payload[1:]
            try:
                await self._redis.publish(channel, payload)
            except (RedisError, OSError) as exc:
                # Other processes catch up from the store when they see the gap.
                log.warning("could not publish events: %s", exc)

    async def _listener(self) -> None:
        assert self._redis is not None
        backoff, first = 0.1, True
        while True:
            try:
                pubsub = self._redis.pubsub()
                await pubsub.subscribe(self.channel, self.sessions, self.tenders)
                if not first:  # messages may have been lost meanwhile
                    if self.on_reconnect is not None:
                        self.on_reconnect()
                    if self.on_tender is not None:
                        self.on_tender(None)
                first, backoff = False, 0.1
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                       timeout=1.0)
                    if message is not None and message["type"] == "message":
                        channel = message["channel"]
                        channel = channel.decode() if isinstance(channel, bytes) else channel
                        if channel == self.sessions:
                            self._session(message["data"])
                        elif channel == self.tenders:
                            self._tender(message["data"])
                        else:
                            self._receive(message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("event channel lost (%s); reconnecting", exc)
                first = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def _session(self, data: bytes) -> None:
        notice = msgspec.json.decode(data)
        if notice.get("node") != self.node and self.on_session is not None:
            self.on_session(notice["lot"], notice["bidder"])

    def _tender(self, data: bytes) -> None:
        notice = msgspec.json.decode(data)
        if notice.get("node") != self.node and self.on_tender is not None:
            self.on_tender(notice["tender"])

    def _receive(self, data: bytes) -> None:
        batch = self._decoder.decode(data)
        if batch.node == self.node:
            return  # dispatched locally already
        events = [codec.from_row(EventRow(seq, pseq, at, kind, bytes(body)))
                  for seq, pseq, at, kind, body in batch.events]
        for handler in self._handlers:
            handler(batch.lot, events)
