"""The event store: an append-only log of every lot's events, fenced by ``expected_seq``.

Every backend implements :class:`Store`; the contract tests in
``tests/server/test_store_contract.py`` run unchanged against each one.

Errors::

    StoreError
     +-- StaleSeq          the lot's head is not the ``expected_seq`` the writer assumed:
     |                     someone else appended; nothing was written
     +-- StoreUnavailable  the database could not be reached or did not commit;
                           nothing was written, try again later
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..config import Settings


@dataclass(frozen=True, slots=True)
class EventRow:
    """One stored event. ``body`` is the whole event as JSON (UTF-8)."""

    seq: int
    pseq: int | None
    at: int
    kind: str
    body: bytes


@dataclass(frozen=True, slots=True)
class RefusalRow:
    """A refused bid, kept for the record and so a retried ``bid_id`` gets the same answer."""

    bidder: str
    bid_id: str
    amount: int
    code: str
    at: int
    message: str = ""
    details: str = "{}"  # JSON object: the refusal's figures, e.g. {"minimum": 1010000}


class StoreError(Exception):
    pass


class StaleSeq(StoreError):
    def __init__(self, lot_id: str, expected: int) -> None:
        super().__init__(f"lot {lot_id!r}: head is not at seq {expected}")
        self.lot_id, self.expected = lot_id, expected


class StoreUnavailable(StoreError):
    pass


class Store(Protocol):
    async def start(self) -> None:
        """Open connections and create or migrate the schema."""

    async def close(self) -> None:
        """Finish pending writes and release every connection."""

    async def append(self, lot_id: str, expected_seq: int, events: Sequence[EventRow],
                     refusals: Sequence[RefusalRow] = ()) -> None:
        """Durably append ``events`` (seq ``expected_seq + 1`` on) and ``refusals`` in one
        transaction. Returns only after the commit is durable. Raises :class:`StaleSeq` if the
        lot's head is not ``expected_seq`` and :class:`StoreUnavailable` if nothing could be
        committed."""

    async def events(self, lot_id: str, after_seq: int = 0) -> list[EventRow]:
        """Events of ``lot_id`` with ``seq > after_seq``, in order."""

    async def public_events(self, lot_id: str, after_pseq: int, limit: int) -> list[EventRow]:
        """At most ``limit`` public events with ``pseq > after_pseq``, in order."""

    async def lot_ids(self) -> list[str]:
        """Every lot with at least one event, oldest first."""

    async def refusals(self, lot_id: str) -> list[RefusalRow]:
        """Refused bids of ``lot_id``, in the order they were refused."""

    async def setting(self, key: str, create: Callable[[], str]) -> str:
        """The value stored under ``key``; if none, store ``create()`` first (once, atomically)."""

    async def touch(self, lot_ids: Sequence[str], at: int) -> None:
        """Record that ``lot_ids`` were being served at ``at`` (ms). A takeover measures the
        outage from the last stamp, so it is written every few seconds, not per bid."""

    async def alive(self, lot_id: str) -> int | None:
        """The last :meth:`touch` stamp of ``lot_id``, or ``None``."""


def open_store(settings: Settings) -> Store:
    """The store ``settings`` ask for: PostgreSQL for a ``postgresql://`` URL, else SQLite."""
    if settings.database_url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(settings.database_url, pool_size=settings.db_pool)
    from .sqlite import SQLiteStore

    return SQLiteStore(settings.sqlite_path)
