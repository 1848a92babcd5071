"""Fan-out: committed events to every subscribed connection, each frame encoded once.

The hub keeps a replica of each lot built only from committed events (what the bus
delivers), so snapshots never show a bid that is not yet durable. Each connection
has an :class:`Outbox`: answers to its own requests (never dropped) and a bounded
queue of events. A connection that falls ``limit`` events behind loses its backlog
and is sent a fresh snapshot instead, so one slow watcher never slows a lot.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Literal

from auction import Event, Lot

from . import codec
from .errors import ServerError
from .store import Store

log = logging.getLogger("bidhall.hub")

Audience = Literal["public", "staff"]

#: A ``since`` further behind than this gets a snapshot rather than a replay of events.
BACKFILL_MAX = 2000
#: Reads of a lot the store knows nothing of before its events are taken as not ours.
UNKNOWN_LOT_READS = 5


class Outbox:
    """The outgoing side of one connection, drained by the connection's writer task."""

    __slots__ = (
        "audience",
        "bidder",
        "closing",
        "control",
        "dropped",
        "events",
        "last",
        "limit",
        "lot",
        "resync",
        "subs",
        "wake",
    )

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.audience: Audience = "public"
        self.bidder: str | None = None  # the bidder this connection speaks for, if any
        self.lot: str | None = None  # the bidder's lot
        self.control: deque[str] = deque()
        self.events: deque[tuple[str, int, str]] = deque()
        self.resync: dict[str, int | None] = {}  # lot -> since (None: send a snapshot)
        self.last: dict[str, int] = {}  # lot -> seq of the last frame sent
        self.subs: set[str] = set()
        self.wake = asyncio.Event()
        self.dropped = 0
        self.closing: tuple[int, str] | None = None

    def push_control(self, frame: str) -> None:
        self.control.append(frame)
        self.wake.set()

    def push_event(self, lot_id: str, seq: int, frame: str) -> None:
        if len(self.events) >= self.limit:
            # Too far behind: drop the backlog; the writer sends snapshots instead.
            self.events.clear()
            self.dropped += 1
            for lot in self.subs:
                self.resync[lot] = None
        else:
            self.events.append((lot_id, seq, frame))
        self.wake.set()

    def close(self, code: int, reason: str) -> None:
        self.closing = (code, reason)
        self.wake.set()


class Hub:
    """Subscriptions and committed replicas of lots, fed by the bus."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.replicas: dict[str, Lot] = {}
        self._subs: dict[str, dict[Audience, set[Outbox]]] = {}
        self._bidders: dict[tuple[str, str], Outbox] = {}
        self._snapshots: dict[str, tuple[int, str]] = {}
        # Lots whose replica is reading missed events from the store, with what arrived since.
        self._held: dict[str, list[Event]] = {}
        self._catching_up: dict[str, asyncio.Task[None]] = {}
        #: Told of every sign-in here, so other processes can end the bidder's older session.
        self.on_claim: Callable[[str, str], None] | None = None

    # ------------------------------------------------------------------ replicas
    def track(self, lot_id: str, events: Sequence[Event] = ()) -> None:
        """Start a replica of ``lot_id`` from its stored ``events`` (none for a new lot)."""
        self.replicas[lot_id] = Lot.replay(events)
        self._subs.setdefault(lot_id, {"public": set(), "staff": set()})

    def forget(self, lot_id: str) -> None:
        self.replicas.pop(lot_id, None)
        self._snapshots.pop(lot_id, None)
        for outboxes in self._subs.pop(lot_id, {}).values():
            for outbox in outboxes:
                outbox.subs.discard(lot_id)

    def dispatch(self, lot_id: str, events: Sequence[Event]) -> None:
        """Bus handler: apply committed ``events`` to the replica and queue them for watchers.

        Events of a lot this process has not seen yet, or that skip a ``seq`` (messages lost
        between processes), are held while the missing ones are read from the store.
        """
        if not events:
            return
        replica = self.replicas.get(lot_id)
        if lot_id in self._held or replica is None or events[0].seq > replica.seq + 1:
            self._held.setdefault(lot_id, []).extend(events)
            self.catch_up(lot_id)
            return
        self._apply(lot_id, replica, events)

    def catch_up(self, lot_id: str) -> None:
        """Read ``lot_id``'s missed events from the store (in the background)."""
        if lot_id in self._catching_up:
            return
        self._held.setdefault(lot_id, [])
        task = asyncio.get_running_loop().create_task(self._read_missed(lot_id))
        self._catching_up[lot_id] = task
        task.add_done_callback(lambda _: self._catching_up.pop(lot_id, None))

    def catch_up_all(self) -> None:
        """After an outage of the bus: every lot may have missed events."""
        for lot_id in list(self.replicas):
            self.catch_up(lot_id)

    async def _read_missed(self, lot_id: str) -> None:
        delay, empty_reads = 0.1, 0
        while True:
            if lot_id not in self.replicas:
                self.track(lot_id)
            replica = self.replicas[lot_id]
            try:
                rows = await self._store.events(lot_id, replica.seq)
            except Exception as exc:  # the store is down: keep holding, try again
                log.warning("lot %s: cannot read missed events yet: %s", lot_id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            stored = [codec.from_row(r) for r in rows]
            if not rows and replica.seq == 0:
                empty_reads += 1
                if empty_reads >= UNKNOWN_LOT_READS:
                    # Events of a lot our store does not have (another deployment?): drop them.
                    log.warning("lot %s: events arrived but the store has none; ignoring them",
                                lot_id)
                    self._held.pop(lot_id, None)
                    self.forget(lot_id)
                    return
            held = self._held.pop(lot_id, [])
            merged = {e.seq: e for e in (*stored, *held) if e.seq > replica.seq}
            ready: list[Event] = []
            for seq in sorted(merged):
                if seq != replica.seq + len(ready) + 1:
                    break  # still a gap: the rest waits for the next read
                ready.append(merged[seq])
            self._apply(lot_id, replica, ready)
            rest = [e for s, e in sorted(merged.items()) if s > replica.seq]
            if not rest:
                return
            self._held[lot_id] = rest
            await asyncio.sleep(delay)

    def _apply(self, lot_id: str, replica: Lot, events: Sequence[Event]) -> None:
        subs = self._subs[lot_id]
        public, staff = subs["public"], subs["staff"]
        for event in events:
            if event.seq <= replica.seq:
                continue  # already applied (a duplicate delivery)
            replica.apply(event)
            if event.pseq is not None:
                self._snapshots.pop(lot_id, None)
                if public:
                    frame = codec.public_frame(lot_id, event)
                    assert frame is not None
                    for outbox in public:
                        outbox.push_event(lot_id, event.pseq, frame)
            if staff:
                frame = codec.staff_frame(lot_id, event)
                for outbox in staff:
                    outbox.push_event(lot_id, event.seq, frame)

    # ------------------------------------------------------------------ subscriptions
    def subscribe(self, outbox: Outbox, lot_id: str, since: int | None) -> None:
        """Start sending ``lot_id`` to ``outbox``: events after ``since``, or a snapshot."""
        subs = self._subs.get(lot_id)
        if subs is None or lot_id not in self.replicas:
            raise ServerError("unknown_lot", f"no lot {lot_id!r}")
        subs[outbox.audience].add(outbox)
        outbox.subs.add(lot_id)
        outbox.last.pop(lot_id, None)
        outbox.resync[lot_id] = since
        outbox.wake.set()

    def unsubscribe(self, outbox: Outbox, lot_id: str) -> None:
        subs = self._subs.get(lot_id)
        if subs is not None:
            subs[outbox.audience].discard(outbox)
        outbox.subs.discard(lot_id)
        outbox.resync.pop(lot_id, None)

    def drop(self, outbox: Outbox) -> None:
        """Forget a closed connection."""
        for lot_id in list(outbox.subs):
            self.unsubscribe(outbox, lot_id)
        if outbox.bidder is not None and outbox.lot is not None:
            key = (outbox.lot, outbox.bidder)
            if self._bidders.get(key) is outbox:
                del self._bidders[key]

    def claim_bidder(self, outbox: Outbox, lot_id: str, bidder: str) -> None:
        """One session per bidder: a new sign-in takes over and tells the old connection, here
        and (through :attr:`on_claim`, set to the bus) in every other process."""
        self.end_session(lot_id, bidder, keep=outbox)
        self._bidders[(lot_id, bidder)] = outbox
        if self.on_claim is not None:
            self.on_claim(lot_id, bidder)

    def end_session(self, lot_id: str, bidder: str, keep: Outbox | None = None) -> None:
        """Close the bidder's connection in this process (unless it is ``keep``)."""
        key = (lot_id, bidder)
        previous = self._bidders.get(key)
        if previous is not None and previous is not keep:
            del self._bidders[key]
            error = ServerError("session_replaced")
            previous.push_control(codec.frame({"type": "error", "code": error.code,
                                               "message": error.message}))
            previous.close(4001, "session replaced")

    # ------------------------------------------------------------------ catching up
    def snapshot(self, outbox: Outbox, lot_id: str) -> tuple[int, str]:
        """``(seq, frame)`` of the lot's current committed state as ``outbox`` may see it."""
        lot = self.replicas[lot_id]
        if outbox.audience == "staff":
            state = lot.public_view()
            state["reserve"] = lot.reserve
            state["bidders"] = [{"bidder": b.bidder, "paddle": b.paddle}
                                for b in lot.bidders.values()]
            return lot.seq, codec.frame({"type": "snapshot", "lot": lot_id, "seq": lot.seq,
                                         "state": state})
        if outbox.bidder is not None and outbox.lot == lot_id:
            return lot.pseq, codec.frame({"type": "snapshot", "lot": lot_id, "seq": lot.pseq,
                                          "state": lot.public_view(),
                                          "you": lot.bidder_view(outbox.bidder)})
        cached = self._snapshots.get(lot_id)
        if cached is None:
            cached = lot.pseq, codec.frame({"type": "snapshot", "lot": lot_id, "seq": lot.pseq,
                                            "state": lot.public_view()})
            self._snapshots[lot_id] = cached
        return cached

    async def backfill(self, outbox: Outbox, lot_id: str, since: int
                       ) -> list[tuple[int, str]] | None:
        """Frames after ``since`` from the store, or ``None`` when a snapshot serves better."""
        lot = self.replicas[lot_id]
        staff = outbox.audience == "staff"
        head = lot.seq if staff else lot.pseq
        if since > head or head - since > BACKFILL_MAX:
            return None
        if since == head:
            return []
        if staff:
            rows = await self._store.events(lot_id, since)
            return [(r.seq, codec.staff_frame(lot_id, codec.from_row(r))) for r in rows]
        rows = await self._store.public_events(lot_id, since, head - since)
        out: list[tuple[int, str]] = []
        for row in rows:
            frame = codec.public_frame(lot_id, codec.from_row(row))
            assert row.pseq is not None and frame is not None
            out.append((row.pseq, frame))
        return out

    def stats(self) -> dict[str, Any]:
        return {"lots": len(self.replicas),
                "subscribers": sum(len(s["public"]) + len(s["staff"])
                                   for s in self._subs.values())}
