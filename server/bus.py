"""The bus carries committed events from a lot's sequencer to every hub that serves watchers.

The embedded default is this in-process bus: ``publish`` calls each handler at once,
in order. A handler must not block: hubs only queue frames.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from auction import Event

Handler = Callable[[str, Sequence[Event]], None]


class InProcessBus:
    def __init__(self) -> None:
        self._handlers: list[Handler] = []

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def publish(self, lot_id: str, events: Sequence[Event]) -> None:
        for handler in self._handlers:
            handler(lot_id, events)

    def announce_session(self, lot_id: str, bidder: str) -> None:
        """A bidder signed in here; with one process there is nobody else to tell."""
