"""The lots this process serves: one sequencer each, loaded from the store at start."""

from __future__ import annotations

import logging

from auction import Command, Lot, OpenLot, Refused
from auction import errors as auction_errors

from . import codec
from .bus import InProcessBus
from .errors import ServerError
from .hub import Hub
from .sequencer import Answer, LotSequencer
from .store import Store

log = logging.getLogger("bidhall.lots")


class Lots:
    def __init__(self, store: Store, hub: Hub, bus: InProcessBus, *, batch_max: int = 512
                 ) -> None:
        self._store = store
        self._hub = hub
        self._bus = bus
        self._batch_max = batch_max
        self._sequencers: dict[str, LotSequencer] = {}

    async def start(self) -> None:
        """Rebuild every stored lot by replay and start its sequencer."""
        for lot_id in await self._store.lot_ids():
            events = [codec.from_row(r) for r in await self._store.events(lot_id)]
            self._hub.track(lot_id, events)
            sequencer = await LotSequencer.load(lot_id, self._store, self._bus.publish,
                                                batch_max=self._batch_max, events=events)
            self._sequencers[lot_id] = sequencer
            sequencer.start()
        log.info("serving %d lots", len(self._sequencers))

    async def stop(self) -> None:
        for sequencer in self._sequencers.values():
            await sequencer.stop()
        self._sequencers.clear()

    def ids(self) -> list[str]:
        return list(self._sequencers)

    def get(self, lot_id: str) -> LotSequencer:
        sequencer = self._sequencers.get(lot_id)
        if sequencer is None:
            raise ServerError("unknown_lot", f"no lot {lot_id!r}")
        return sequencer

    def view(self, lot_id: str) -> Lot:
        """The committed state of ``lot_id`` (never ahead of the store)."""
        lot = self._hub.replicas.get(lot_id)
        if lot is None or lot.terms is None:
            raise ServerError("unknown_lot", f"no lot {lot_id!r}")
        return lot

    def views(self) -> list[Lot]:
        """Committed state of every opened lot, oldest first."""
        return [lot for lot in self._hub.replicas.values() if lot.terms is not None]

    async def submit(self, lot_id: str, command: Command) -> Answer:
        return await self.get(lot_id).submit(command)

    async def open(self, command: OpenLot) -> Answer:
        """Create a lot; ``lot_exists`` if the id is taken."""
        lot_id = command.lot_id
        if lot_id in self._sequencers:
            return Answer(refusal=Refused(auction_errors.LOT_EXISTS))
        sequencer = LotSequencer(lot_id, Lot(), self._store, self._bus.publish,
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
