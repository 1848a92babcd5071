"""The single writer of one lot: every command of the lot goes through its queue.

    answer = await sequencer.submit(PlaceBid(...))

The task drains whatever commands are waiting (up to ``batch_max``), decides each
with the pure core, appends all resulting events in ONE store transaction (group
commit), and only then answers the submitters and publishes the events. If the
append fails, nobody gets an ack: every submitter of the batch gets ``unavailable``
and the lot is rebuilt from the store, which is the truth. Countdown ends arrive as
:class:`~auction.Tick` commands through the same queue, so "a bid just before the
end" and "the end" are ordered like any two bids.
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
    """What a submitter is told once the batch holding its command is durable."""

    event: Event | None = None
    refusal: Refused | ServerError | None = None
    amount: int | None = None  # for bids: the amount the bid_id was first used with


_Item = tuple[Command, "asyncio.Future[Answer] | None"]


class LotSequencer:
    """Owns one lot's in-memory state and its write order. See the module docstring."""

    def __init__(self, lot_id: str, lot: Lot, store: Store, publish: Publish, *,
                 batch_max: int = 512, answers: dict[tuple[str, str], Answer] | None = None
                 ) -> None:
        self.lot_id = lot_id
        self.lot = lot
        self._store = store
        self._publish = publish
        self._batch_max = batch_max
        self._answers = answers if answers is not None else {}
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
        for (_, future), answer in zip(batch, answers, strict=True):
            if future is not None and not future.done():
                future.set_result(answer)
        if events:
            self._publish(self.lot_id, events)
        self._schedule_tick()

    def _decide(self, command: Command, events: list[Event], refusals: list[RefusalRow]
                ) -> Answer:
        key: tuple[str, str] | None = None
        if isinstance(command, PlaceBid):
            key = (command.bidder, command.bid_id)
            prior = self._answers.get(key)
            if prior is not None:
                if prior.amount != command.amount:
                    return Answer(refusal=ServerError("duplicate_bid_id"), amount=prior.amount)
                return prior  # a retry: the original answer, never a second bid
        decision = self.lot.handle(command)
        events.extend(decision.events)
        answer = Answer(decision.primary, decision.refusal,
                        command.amount if isinstance(command, PlaceBid) else None)
        if key is not None:
            assert isinstance(command, PlaceBid)
            self._answers[key] = answer
            refusal = decision.refusal
            if refusal is not None:
                refusals.append(RefusalRow(command.bidder, command.bid_id, command.amount,
                                           refusal.code, max(command.at, self.lot.clock),
                                           refusal.message, codec.encode(refusal.details).decode()))
        return answer

    def _fail(self, batch: list[_Item], error: ServerError) -> None:
        for _, future in batch:
            if future is not None and not future.done():
                future.set_exception(error)

    async def _rebuild(self, events: Sequence[Event] | None = None) -> None:
        if events is None:
            events = [codec.from_row(r) for r in await self._store.events(self.lot_id)]
        refused = await self._store.refusals(self.lot_id)
        lot = Lot.replay(events)
        answers = {(r.bidder, r.bid_id): Answer(refusal=_refusal(r), amount=r.amount)
                   for r in refused}
        for event in events:
            if isinstance(event, BidAccepted):
                answers[(event.bidder, event.bid_id)] = Answer(event, None, event.amount)
        self.lot, self._answers, self._stale = lot, answers, False

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


def _refusal(row: RefusalRow) -> Refused:
    """The stored refusal as first sent: code, message and figures."""
    details = msgspec.json.decode(row.details) if row.details else {}
    return Refused(row.code, row.message or CODES.get(row.code), **details)
