"""The single writer of one lot: every command of the lot goes through its queue.

    answer = await sequencer.submit(PlaceBid(...))          # HTTP handlers
    sequencer.submit_nowait(PlaceBid(...), reply)            # websockets: reply(answer) later

The task drains whatever commands are waiting (up to ``batch_max``), decides each
with the pure core, appends all resulting events in ONE store transaction (group
commit), and only then answers the submitters and publishes the events. If the
append fails, nobody gets an ack: every submitter of the batch gets ``unavailable``
and the lot is rebuilt from the store, which is the truth. Countdown ends arrive as
:class:`~auction.Tick` commands through the same queue, so "a bid just before the
end" and "the end" are ordered like any two bids.

Answers go out before the events are published, and websocket replies are plain
callbacks run at once, so a bidder's ack is queued ahead of the fan-out to every
watcher of the lot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec

from auction import CODES, BidAccepted, Command, Event, Lot, PlaceBid, Refused, Tick

from . import codec
from .clock import now_ms
from .errors import ServerError
from .store import RefusalRow, Store, StoreError

log = logging.getLogger("bidhall.sequencer")

Publish = Callable[[str, Sequence[Event]], None]
#: Seconds before a lot whose commit failed tries to rebuild from the store again.
RETRY_DELAY = 0.5


@dataclass(frozen=True, slots=True)
class Answer:
    """What a submitter is told once the batch holding its command is durable.

    ``event`` is the command's own event (staff commands); a bid's ack is ``ack`` =
    ``(public seq, amount, at, ends_at)``, the same for the first answer and a retry.
    """

    event: Event | None = None
    refusal: Refused | ServerError | None = None
    ack: tuple[int, int, int, int | None] | None = None


Reply = Callable[[Answer | ServerError], None]
_Item = tuple[Command, "asyncio.Future[Answer] | Reply | None"]

# Answers to bids, kept to answer a retried bid_id the same way: plain tuples of str and
# int, which the garbage collector stops tracking (a hot lot accumulates many of them).
#   (bidder, bid_id) -> ("ack", amount, pseq, at, ends_at)
#                    |  ("refused", amount, code, message, details_json)
_Kept = tuple[str, int, object, object, object]


def _keep_ack(event: BidAccepted) -> _Kept:
    assert event.pseq is not None
    return ("ack", event.amount, event.pseq, event.at, event.ends_at)


def _keep_refusal(amount: int, refusal: Refused) -> _Kept:
    return ("refused", amount, refusal.code, refusal.message,
            codec.encode(refusal.details).decode())


def _answer(kept: _Kept) -> Answer:
    tag, amount, a, b, c = kept
    if tag == "ack":
        assert isinstance(a, int) and isinstance(b, int) and (c is None or isinstance(c, int))
        return Answer(ack=(a, amount, b, c))
    assert isinstance(a, str) and isinstance(b, str) and isinstance(c, str)
    details = msgspec.json.decode(c) if c else {}
    return Answer(refusal=Refused(a, b or CODES.get(a), **details))


class LotSequencer:
    """Owns one lot's in-memory state and its write order. See the module docstring."""

    def __init__(self, lot_id: str, lot: Lot, store: Store, publish: Publish, *,
                 batch_max: int = 512) -> None:
        self.lot_id = lot_id
        self.lot = lot
        self._store = store
        self._publish = publish
        self._batch_max = batch_max
        self._kept: dict[tuple[str, str], _Kept] = {}
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._tick: asyncio.TimerHandle | None = None
        self._tick_at: int | None = None
        self._stale = False

    @classmethod
    async def load(cls, lot_id: str, store: Store, publish: Publish, *,
                   batch_max: int = 512, events: Sequence[Event] | None = None
                   ) -> LotSequencer:
        """A sequencer for a stored lot, its state rebuilt by replaying every event
        (``events``, if the caller already read them, else read from the store)."""
        seq = cls(lot_id, Lot(), store, publish, batch_max=batch_max)
        await seq._rebuild(events)
        return seq

    # ------------------------------------------------------------------ running
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(),
                                                            name=f"sequencer:{self.lot_id}")
        self._schedule_tick()

    async def stop(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None

    def submit(self, command: Command) -> asyncio.Future[Answer]:
        """Queue ``command``; the future resolves once its outcome is durable.

        It fails with ``ServerError("unavailable")`` when the store could not commit.
        """
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((command, future))
        return future

    def submit_nowait(self, command: Command, reply: Reply) -> None:
        """Queue ``command``; ``reply`` is called once with its durable :class:`Answer`, or
        with ``ServerError("unavailable")``. It must not block."""
        self._queue.put_nowait((command, reply))

    async def _run(self) -> None:
        queue = self._queue
        while True:
            item = await queue.get()
            if item is None:
                return
            batch = [item]
            stop = False
            while len(batch) < self._batch_max and not queue.empty():
                nxt = queue.get_nowait()
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            try:
                await self._process(batch)
            except Exception:  # a bug: never leave submitters waiting forever
                log.exception("lot %s: batch failed", self.lot_id)
                self._fail(batch, ServerError("unavailable", "internal error; retry"))
                self._stale = True
            if stop:
                return

    async def _process(self, batch: list[_Item]) -> None:
        if self._stale:
            try:
                await self._rebuild()
            except StoreError as exc:
                log.warning("lot %s: store still unavailable: %s", self.lot_id, exc)
                self._fail(batch, ServerError("unavailable"))
                self._retry_soon()
                return
        head = self.lot.seq
        events: list[Event] = []
        refusals: list[RefusalRow] = []
        answers = [self._decide(command, events, refusals) for command, _ in batch]
        if events or refusals:
            try:
                await self._store.append(self.lot_id, head, [codec.to_row(e) for e in events],
                                         refusals)
            except StoreError as exc:
                # The in-memory state ran ahead of the store; the store is the truth.
                log.warning("lot %s: append failed, no acks sent: %s", self.lot_id, exc)
                self._stale = True
                self._fail(batch, ServerError("unavailable"))
                self._retry_soon()
                return
        for (_, target), answer in zip(batch, answers, strict=True):
            _deliver(target, answer)
        if events:
            self._publish(self.lot_id, events)
        self._schedule_tick()

    def _decide(self, command: Command, events: list[Event], refusals: list[RefusalRow]
                ) -> Answer:
        if not isinstance(command, PlaceBid):
            decision = self.lot.handle(command)
            events.extend(decision.events)
            return Answer(decision.primary, decision.refusal)
        key = (command.bidder, command.bid_id)
        kept = self._kept.get(key)
        if kept is not None:
            if kept[1] != command.amount:
                return Answer(refusal=ServerError("duplicate_bid_id"))
            return _answer(kept)  # a retry: the original answer, never a second bid
        decision = self.lot.handle(command)
        events.extend(decision.events)
        refusal = decision.refusal
        if refusal is not None:
            self._kept[key] = _keep_refusal(command.amount, refusal)
            refusals.append(RefusalRow(command.bidder, command.bid_id, command.amount,
                                       refusal.code, max(command.at, self.lot.clock),
                                       refusal.message, codec.encode(refusal.details).decode()))
            return Answer(refusal=refusal)
        event = decision.primary
        assert isinstance(event, BidAccepted)
        self._kept[key] = kept = _keep_ack(event)
        return Answer(event, None, _answer(kept).ack)

    def _fail(self, batch: list[_Item], error: ServerError) -> None:
        for _, target in batch:
            _deliver(target, error)

    async def _rebuild(self, events: Sequence[Event] | None = None) -> None:
        if events is None:
            events = [codec.from_row(r) for r in await self._store.events(self.lot_id)]
        refused = await self._store.refusals(self.lot_id)
        lot = Lot.replay(events)
        kept: dict[tuple[str, str], _Kept] = {
            (r.bidder, r.bid_id): ("refused", r.amount, r.code, r.message, r.details)
            for r in refused}
        for event in events:
            if isinstance(event, BidAccepted):
                kept[(event.bidder, event.bid_id)] = _keep_ack(event)
        self.lot, self._kept, self._stale = lot, kept, False

    # ------------------------------------------------------------------ time
    def _schedule_tick(self) -> None:
        deadline = self.lot.next_deadline()
        if deadline == self._tick_at:
            return
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        self._tick_at = deadline
        if deadline is None:
            return
        delay = max(0.0, (deadline - now_ms() + 1) / 1000)
        self._tick = asyncio.get_running_loop().call_later(delay, self._fire_tick)

    def _retry_soon(self) -> None:
        """After a failed commit: rebuild and resume the timers without waiting for traffic."""
        if self._tick is not None:
            self._tick.cancel()
        self._tick_at = -1  # never a real deadline: the next batch reschedules
        self._tick = asyncio.get_running_loop().call_later(RETRY_DELAY, self._fire_tick)

    def _fire_tick(self) -> None:
        self._tick, self._tick_at = None, None
        # If nothing turns out to be due (clock skew), the batch reschedules the timer.
        self._queue.put_nowait((Tick(at=now_ms()), None))


def _deliver(target: asyncio.Future[Answer] | Reply | None, outcome: Answer | ServerError
             ) -> None:
    if target is None:
        return
    if isinstance(target, asyncio.Future):
        if target.done():
            return
        if isinstance(outcome, ServerError):
            target.set_exception(outcome)
        else:
            target.set_result(outcome)
        return
    try:
        target(outcome)
    except Exception:  # a broken reply must not stop the lot
        log.exception("reply callback failed")
