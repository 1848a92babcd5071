"""The tenders this process serves: one ``opening.Tender`` per tender, stored as a stream.

A tender's events go to the same store as lots, under the stream id ``tender:<id>``
(lot ids cannot contain ``:``). A tender sees a few hundred writes in its life, so
there is no sequencer and no lease: every process keeps a replica, and a write is
optimistic. It is decided on the local replica and appended with ``expected_seq`` =
the replica's head; when another process wrote first the store answers
:class:`~server.store.StaleSeq`, the replica reads what it missed and the command is
decided again. Nothing is answered before its events are durable. With Redis (several
processes), a process that wrote tells the others on ``{prefix}:tenders`` so their
replicas and live watchers follow within milliseconds.

Time-driven steps (the deadline, the end of the decryption window, the end of the
objection window) are ``Tick`` commands from one timer per process; two processes
ticking the same tender are harmless, the second finds nothing to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from opening import EVENT_TYPES, Decision, Tender, Tick
from opening import Event as TenderEvent

from .clock import now_ms
from .errors import ServerError
from .store import EventRow, StaleSeq, Store

log = logging.getLogger("bidhall.tenders")

PREFIX = "tender:"
#: Tender ids: they name files and URLs, so a strict shape.
TENDER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: Attempts when other processes keep writing to the same tender meanwhile.
ATTEMPTS = 5
#: A tick is never further away than this (seconds): clocks drift, processes come and go.
TICK_CAP = 1.0

_encoder = msgspec.json.Encoder()
_decoders = {kind: msgspec.json.Decoder(cls) for kind, cls in EVENT_TYPES.items()}


def stream(tender_id: str) -> str:
    return PREFIX + tender_id


def to_row(event: TenderEvent) -> EventRow:
    return EventRow(event.seq, event.pseq, event.at, event.KIND, _encoder.encode(event))


def from_row(row: EventRow) -> TenderEvent:
    decoder = _decoders.get(row.kind)
    if decoder is None:
        raise ValueError(f"stored tender event of unknown kind {row.kind!r} at seq {row.seq}")
    event: TenderEvent = decoder.decode(row.body)
    return event


def public_frame(event: TenderEvent) -> dict[str, Any] | None:
    body = event.public()
    if body is None:
        return None
    return {"seq": event.pseq, **body}


class Tenders:
    def __init__(self, store: Store, *, clock: Callable[[], int] = now_ms,
                 notify: Callable[[str], None] | None = None) -> None:
        self._store = store
        self._clock = clock
        self._notify = notify
        self._tenders: dict[str, Tender] = {}
        self._events: dict[str, list[TenderEvent]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._watchers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._wake = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: Called with (tender id, new events) after they are durable and applied here.
        self.on_events: list[Callable[[str, Sequence[TenderEvent]], None]] = []

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        for sid in await self._store.lot_ids():
            if sid.startswith(PREFIX):
                await self.refresh(sid.removeprefix(PREFIX))
        self._timer = asyncio.get_running_loop().create_task(self._run_timer(),
                                                             name="tenders:timer")
        log.info("%d tenders loaded", len(self._tenders))

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer

    # ------------------------------------------------------------------ reads
    def ids(self) -> list[str]:
        return list(self._tenders)

    def get(self, tender_id: str) -> Tender:
        tender = self._tenders.get(tender_id)
        if tender is None:
            raise ServerError("unknown_tender", f"no tender {tender_id!r}")
        return tender

    def events(self, tender_id: str) -> list[TenderEvent]:
        self.get(tender_id)
        return list(self._events[tender_id])

    def dry_run(self, tender_id: str, command: Any) -> Decision:
        """What ``command`` would decide now, without recording anything."""
        decision: Decision = self.get(tender_id).fork().handle(command)
        return decision

    # ------------------------------------------------------------------ writes
    async def create(self, tender_id: str, command: Any) -> Decision:
        if not TENDER_ID.fullmatch(tender_id):
            raise ServerError("bad_message", "a tender id is 1 to 64 letters, digits, '_', '.' "
                              "or '-', starting with a letter or digit")
        if tender_id not in self._tenders:
            await self.refresh(tender_id)  # made by another process meanwhile?
        if tender_id not in self._tenders:
            self._tenders[tender_id] = Tender()
            self._events[tender_id] = []
        return await self.submit(tender_id, command)

    async def submit(self, tender_id: str, command: Any) -> Decision:
        """Decide ``command``; return once its events (if any) are durable."""
        self.get(tender_id)
        lock = self._locks.setdefault(tender_id, asyncio.Lock())
        async with lock:
            for _ in range(ATTEMPTS):
                tender = self._tenders[tender_id]
                head = len(self._events[tender_id])
                scratch = tender.fork()
                decision: Decision = scratch.handle(command)
                if not decision.events:
                    return decision
                try:
                    await self._store.append(stream(tender_id), head,
                                             [to_row(e) for e in decision.events])
                except StaleSeq:
                    await self._catch_up(tender_id)
                    continue
                self._tenders[tender_id] = scratch
                self._applied(tender_id, decision.events)
                if self._notify is not None:
                    self._notify(tender_id)
                return decision
        raise ServerError("unavailable", "the tender kept changing meanwhile; retry")

    async def refresh(self, tender_id: str) -> None:
        """Read events another process stored (after a notice, or before a write)."""
        lock = self._locks.setdefault(tender_id, asyncio.Lock())
        async with lock:
            await self._catch_up(tender_id)

    def notice(self, tender_id: str | None) -> None:
        """Another process wrote to ``tender_id`` (``None``: maybe to any): read it soon."""
        ids = self.ids() if tender_id is None else [tender_id]
        loop = asyncio.get_running_loop()
        for tid in ids:
            task = loop.create_task(self._refresh_quietly(tid))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _refresh_quietly(self, tender_id: str) -> None:
        try:
            await self.refresh(tender_id)
        except Exception as exc:  # the store is away; the next write or notice catches up
            log.warning("tender %s: could not read new events: %s", tender_id, exc)

    async def _catch_up(self, tender_id: str) -> None:
        known = self._events.get(tender_id, [])
        rows = await self._store.events(stream(tender_id), len(known))
        if not rows:
            return
        new = [from_row(r) for r in rows]
        if tender_id not in self._tenders:
            self._tenders[tender_id] = Tender.replay(new)
            self._events[tender_id] = []
        else:
            tender = self._tenders[tender_id]
            for event in new:
                tender.apply(event)
        self._applied(tender_id, new)

    def _applied(self, tender_id: str, events: Sequence[TenderEvent]) -> None:
        self._events[tender_id].extend(events)
        frames = [f for f in (public_frame(e) for e in events) if f is not None]
        for queue in self._watchers.get(tender_id, ()):
            for frame in frames:
                queue.put_nowait(frame)
        for handler in self.on_events:
            handler(tender_id, events)
        self._wake.set()

    # ------------------------------------------------------------------ watchers
    def watch(self, tender_id: str) -> asyncio.Queue[dict[str, Any]]:
        self.get(tender_id)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._watchers.setdefault(tender_id, set()).add(queue)
        return queue

    def unwatch(self, tender_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._watchers.get(tender_id, set()).discard(queue)

    def public_since(self, tender_id: str, after: int) -> list[dict[str, Any]]:
        frames = (public_frame(e) for e in self.events(tender_id))
        return [f for f in frames if f is not None and f["seq"] > after]

    # ------------------------------------------------------------------ time
    async def _run_timer(self) -> None:
        while True:
            now = self._clock()
            due = [tid for tid, t in self._tenders.items()
                   if (at := t.next_deadline()) is not None and at <= now]
            for tender_id in due:
                try:
                    await self.submit(tender_id, Tick(at=self._clock()))
                except Exception:  # the store is away: try again on the next round
                    log.exception("tender %s: tick failed", tender_id)
            upcoming = [at for t in self._tenders.values()
                        if (at := t.next_deadline()) is not None]
            wait = TICK_CAP
            if upcoming:
                wait = min(TICK_CAP, max(0.0, (min(upcoming) - self._clock()) / 1000))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(wait, 0.005))
