"""The lots this process serves, and the route of a command to the lot's owner.

Every process keeps a committed replica of every lot (in the hub) for reads and
watchers; only the lot's owner runs its sequencer. A command for a lot this process
owns goes straight to the local sequencer; any other is forwarded to the owner
(:mod:`server.cluster`). A lot nobody holds is claimed by the first process that needs
it (a command arrives, or the periodic look-out finds it orphaned) and taken over: its
state is replayed from the store and a ``taken_over`` event applies the freeze rule
to the outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from auction import Command, Lot, OpenLot, Phase, Refused, Takeover
from auction import errors as auction_errors

from . import codec
from .bus import InProcessBus
from .clock import now_ms
from .cluster import RENEW_EVERY, LocalCluster, NotOwner, RedisCluster
from .errors import ServerError
from .hub import Hub
from .sequencer import Answer, LotSequencer, Publish, Reply
from .store import Store

log = logging.getLogger("bidhall.lots")

FINAL = {Phase.SOLD, Phase.UNSOLD, Phase.CAPPED}
#: Times a command is re-routed when the owner moved while it was on its way.
ROUTE_ATTEMPTS = 4
#: Lots served here are stamped alive every this many upkeep rounds (about 2 s).
ALIVE_EVERY = 5


class Lots:
    def __init__(self, store: Store, hub: Hub, bus: InProcessBus | Any, *,
                 cluster: LocalCluster | RedisCluster | None = None, batch_max: int = 512
                 ) -> None:
        self._store = store
        self._hub = hub
        self._publish: Publish = bus.publish
        self.cluster = cluster or LocalCluster()
        self._batch_max = batch_max
        self._sequencers: dict[str, LotSequencer] = {}
        self._adopting: dict[str, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._keeper: asyncio.Task[None] | None = None
        self._unheld: set[str] = set()  # lots seen without a lease at the last look-out

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Load every stored lot's replica; take over the lots nobody serves."""
        await self.cluster.start(self._on_request)
        for lot_id in await self._store.lot_ids():
            if ":" in lot_id:  # another aggregate's stream (``tender:<id>``), not a lot
                continue
            events = [codec.from_row(r) for r in await self._store.events(lot_id)]
            self._hub.track(lot_id, events)
        await self._look_out()
        self._keeper = asyncio.get_running_loop().create_task(self._keep())
        log.info("node %s serving %d of %d lots", self.cluster.node, len(self._sequencers),
                 len(self._hub.replicas))

    async def stop(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        owned = list(self._sequencers)
        for sequencer in self._sequencers.values():
            await sequencer.stop()
        with contextlib.suppress(Exception):  # a clean stop: the outage starts now
            await self._store.touch(owned, now_ms())
        self._sequencers.clear()
        await self.cluster.release(owned)
        for task in list(self._tasks):
            task.cancel()
        await self.cluster.close()

    # ------------------------------------------------------------------ reads
    def ids(self) -> list[str]:
        return list(self._sequencers)

    def view(self, lot_id: str) -> Lot:
        """The committed state of ``lot_id`` (never ahead of the store)."""
        lot = self._hub.replicas.get(lot_id)
        if lot is None or lot.terms is None:
            raise ServerError("unknown_lot", f"no lot {lot_id!r}")
        return lot

    def views(self) -> list[Lot]:
        """Committed state of every opened lot, oldest first."""
        return [lot for lot in self._hub.replicas.values() if lot.terms is not None]

    # ------------------------------------------------------------------ commands
    async def submit(self, lot_id: str, command: Command) -> Answer:
        """Run ``command`` on ``lot_id`` wherever it is served; the durable answer."""
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()

        def reply(outcome: Answer | ServerError) -> None:
            if future.done():
                return
            if isinstance(outcome, ServerError):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

        self.submit_nowait(lot_id, command, reply)
        return await future

    def submit_nowait(self, lot_id: str, command: Command, reply: Reply) -> None:
        """Like :meth:`submit`, answering through ``reply``. ``unknown_lot`` at once."""
        sequencer = self._sequencers.get(lot_id)
        if sequencer is not None:
            sequencer.submit_nowait(command, reply)
            return
        self.view(lot_id)
        self._spawn(self._route(lot_id, command, reply))

    async def _route(self, lot_id: str, command: Command, reply: Reply) -> None:
        waited = False
        try:
            for _ in range(ROUTE_ATTEMPTS):
                adopting = self._adopting.get(lot_id)
                if adopting is not None:
                    await adopting
                sequencer = self._sequencers.get(lot_id)
                if sequencer is not None:
                    sequencer.submit_nowait(command, reply)
                    return
                owner = await self.cluster.owner(lot_id)
                if owner is None:
                    # Nobody holds the lease. A live owner whose lease vanished with a Redis
                    # restart takes it back within a renewal: give it that chance first.
                    if not waited:
                        waited = True
                        await asyncio.sleep(RENEW_EVERY * 1.5)
                    elif await self.cluster.claim(lot_id):
                        await self._adopt(lot_id, takeover=True)
                    continue
                if owner == self.cluster.node:
                    continue  # the lease is ours but the lot is not loaded yet: look again
                try:
                    reply(await self.cluster.request(owner, lot_id, command))
                    return
                except NotOwner:
                    self.cluster.forget_owner(lot_id)
            reply(ServerError("unavailable", "the lot is changing servers; retry"))
        except ServerError as exc:
            reply(exc)

    def _on_request(self, lot_id: str, command: Command, reply: Reply) -> None:
        """A command forwarded by another process."""
        sequencer = self._sequencers.get(lot_id)
        if sequencer is None:
            reply(ServerError("wrong_owner"))
            return
        sequencer.submit_nowait(command, reply)

    async def open(self, command: OpenLot) -> Answer:
        """Create a lot here; ``lot_exists`` if the id is taken (in this or another process)."""
        lot_id = command.lot_id
        if lot_id in self._hub.replicas or not await self.cluster.claim(lot_id):
            return Answer(refusal=Refused(auction_errors.LOT_EXISTS))
        sequencer = LotSequencer(lot_id, Lot(), self._store, self._publish,
                                 batch_max=self._batch_max)
        self._sequencers[lot_id] = sequencer
        self._hub.track(lot_id)
        sequencer.start()
        try:
            answer = await sequencer.submit(command)
        except BaseException:
            await self._discard(lot_id)
            raise
        if answer.refusal is not None:
            await self._discard(lot_id)
        return answer

    async def _discard(self, lot_id: str) -> None:
        sequencer = self._sequencers.pop(lot_id, None)
        self._hub.forget(lot_id)
        if sequencer is not None:
            await sequencer.stop()
        await self.cluster.release([lot_id])

    # ------------------------------------------------------------------ ownership
    async def _adopt(self, lot_id: str, *, takeover: bool) -> None:
        """Serve ``lot_id`` here: replay it from the store and, after an outage, take it
        over (the freeze rule: the listing is extended, a countdown restarts in full)."""
        if lot_id in self._sequencers or lot_id in self._adopting:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._adopting[lot_id] = done
        try:
            events = [codec.from_row(r) for r in await self._store.events(lot_id)]
            sequencer = await LotSequencer.load(lot_id, self._store, self._publish,
                                                batch_max=self._batch_max, events=events)
            lot = sequencer.lot
            taken: asyncio.Future[Answer] | None = None
            if takeover and lot.terms is not None and lot.phase not in FINAL:
                down_since = await self._store.alive(lot_id) or lot.clock
                # Queued before the sequencer starts, so it comes before any timer's Tick:
                # a deadline that passed during the outage must not close the lot.
                taken = sequencer.submit(Takeover(at=now_ms(), owner=self.cluster.node,
                                                  down_since=down_since))
            self._sequencers[lot_id] = sequencer
            sequencer.start()
            if taken is not None:
                answer = await taken
                if answer.event is not None:
                    log.info("lot %s taken over after %d ms", lot_id,
                             getattr(answer.event, "down_for", 0))
        except Exception as exc:
            log.warning("lot %s: could not take over: %s", lot_id, exc)
            await self._drop(lot_id)
        finally:
            self._adopting.pop(lot_id, None)
            done.set_result(None)

    async def _drop(self, lot_id: str) -> None:
        """Stop serving ``lot_id`` (the lease moved elsewhere); its queue gets ``unavailable``
        from the store's fence if another owner appended meanwhile."""
        sequencer = self._sequencers.pop(lot_id, None)
        self.cluster.forget_owner(lot_id)
        if sequencer is not None:
            await sequencer.stop()
        await self.cluster.release([lot_id])

    async def _look_out(self) -> None:
        """Claim and take over the lots that nobody serves."""
        orphans = [lot_id for lot_id, lot in self._hub.replicas.items()
                   if lot_id not in self._sequencers and lot_id not in self._adopting
                   and lot.phase not in FINAL]
        if not orphans:
            return
        holders = await self.cluster.holders(orphans)
        unheld = {lot_id for lot_id, holder in holders.items() if holder is None}
        for lot_id, holder in holders.items():
            mine = holder == self.cluster.node  # held here, e.g. right after a restart
            # A lease missing once may be Redis restarting under a live owner, which takes it
            # back on its next renewal: claim a lot only when it stays unheld.
            ripe = not self.cluster.distributed or lot_id in self._unheld
            if mine or (holder is None and ripe and await self.cluster.claim(lot_id)):
                await self._adopt(lot_id, takeover=True)
        self._unheld = unheld

    async def _keep(self) -> None:
        """Renew this process's leases, give up the lost ones, adopt orphans; record that
        the owned lots are alive (a takeover measures the outage from that stamp)."""
        rounds = 0
        while True:
            await asyncio.sleep(RENEW_EVERY)
            rounds += 1
            try:
                lost = await self.cluster.renew(list(self._sequencers))
                for lot_id in lost:
                    log.warning("lot %s: lease lost; no longer served here", lot_id)
                    await self._drop(lot_id)
                if rounds % ALIVE_EVERY == 0:
                    await self._store.touch(list(self._sequencers), now_ms())
                if self.cluster.distributed:
                    await self._look_out()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis or the store is down: try again shortly
                log.warning("ownership upkeep failed: %s", exc)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
