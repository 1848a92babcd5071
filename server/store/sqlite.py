"""The embedded default store: one SQLite file in WAL mode with ``synchronous=FULL``.

One writer thread owns the write connection. Appends from every lot queue up for it
and each round commits all of them in one transaction (group commit across lots),
so a burst of bids costs one fsync rather than one per bid. Reads use a second
connection on their own thread; WAL lets them run beside the writer.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from . import EventRow, RefusalRow, StaleSeq, StoreError, StoreUnavailable

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS lots (
    lot_id   TEXT PRIMARY KEY,
    head_seq INTEGER NOT NULL,
    alive_at INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    lot_id TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    pseq   INTEGER,
    at     INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    body   TEXT NOT NULL,
    PRIMARY KEY (lot_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS events_public ON events (lot_id, pseq) WHERE pseq IS NOT NULL;
CREATE TABLE IF NOT EXISTS refusals (
    lot_id TEXT NOT NULL,
    bidder TEXT NOT NULL,
    bid_id TEXT NOT NULL,
    amount INTEGER NOT NULL,
    code   TEXT NOT NULL,
    at     INTEGER NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    details TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (lot_id, bidder, bid_id)
);
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""

#: Appends committed together at most, whatever the number of lots waiting.
GROUP_MAX = 1024


def _connect(path: Path, busy_timeout: float = 30.0) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                           timeout=busy_timeout)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


@dataclass(slots=True)
class _Append:
    lot_id: str
    expected_seq: int
    events: Sequence[EventRow]
    refusals: Sequence[RefusalRow]
    future: asyncio.Future[None]


@dataclass(slots=True)
class _Call:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]


_STOP = object()


class SQLiteStore:
    """SQLite behind the :class:`~server.store.Store` interface."""

    def __init__(self, path: Path, busy_timeout: float = 30.0) -> None:
        """``busy_timeout``: seconds a write waits for a lock held elsewhere before failing."""
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._read_conn: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = _connect(self.path, self.busy_timeout)
            conn.executescript(SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(lots)")}
            if "alive_at" not in columns:  # a data directory from before the column
                conn.execute("ALTER TABLE lots ADD COLUMN alive_at INTEGER")
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        self._thread = threading.Thread(target=self._write_loop, args=(conn,),
                                        name="bidhall-sqlite-writer", daemon=True)
        self._thread.start()
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="bidhall-sqlite-reader")
        self._read_conn = await self._in_reader(lambda: _connect(self.path))

    async def close(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        if self._reader is not None:
            if self._read_conn is not None:
                await self._in_reader(self._read_conn.close)
            self._reader.shutdown(wait=True)
            self._reader = None

    # ------------------------------------------------------------------ writes
    async def append(self, lot_id: str, expected_seq: int, events: Sequence[EventRow],
                     refusals: Sequence[RefusalRow] = ()) -> None:
        future = self._running_loop().create_future()
        self._queue.put(_Append(lot_id, expected_seq, events, refusals, future))
        await future

    async def setting(self, key: str, create: Callable[[], str]) -> str:
        value = create()

        def get_or_create(conn: sqlite3.Connection) -> str:
            conn.execute("INSERT OR IGNORE INTO settings (key, value) VALUES (?, ?)", (key, value))
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
            return str(row[0])

        future: asyncio.Future[str] = self._running_loop().create_future()
        self._queue.put(_Call(get_or_create, future))
        return await future

    async def touch(self, lot_ids: Sequence[str], at: int) -> None:
        if not lot_ids:
            return
        ids = list(lot_ids)

        def stamp(conn: sqlite3.Connection) -> None:
            conn.executemany("UPDATE lots SET alive_at = ? WHERE lot_id = ?",
                             [(at, lot_id) for lot_id in ids])

        future: asyncio.Future[None] = self._running_loop().create_future()
        self._queue.put(_Call(stamp, future))
        await future

    async def alive(self, lot_id: str) -> int | None:
        rows = await self._read("SELECT alive_at FROM lots WHERE lot_id = ?", (lot_id,))
        return rows[0][0] if rows else None

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                batch = [self._queue.get()]
                while len(batch) < GROUP_MAX:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = any(item is _STOP for item in batch)
                appends = [item for item in batch if isinstance(item, _Append)]
                if appends:
                    self._commit(conn, appends)
                for item in batch:
                    if isinstance(item, _Call):
                        self._run_call(conn, item)
                if stop:
                    return
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, appends: list[_Append]) -> None:
        outcomes: list[BaseException | None] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for a in appends:
                head = a.expected_seq + len(a.events)
                if a.expected_seq == 0:
                    cur = conn.execute(
                        "INSERT INTO lots (lot_id, head_seq) VALUES (?, ?) "
                        "ON CONFLICT (lot_id) DO NOTHING", (a.lot_id, head))
                else:
                    cur = conn.execute(
                        "UPDATE lots SET head_seq = ? WHERE lot_id = ? AND head_seq = ?",
                        (head, a.lot_id, a.expected_seq))
                if cur.rowcount != 1:
                    outcomes.append(StaleSeq(a.lot_id, a.expected_seq))
                    continue
                conn.executemany(
                    "INSERT INTO events (lot_id, seq, pseq, at, kind, body) VALUES (?,?,?,?,?,?)",
                    [(a.lot_id, e.seq, e.pseq, e.at, e.kind, e.body.decode()) for e in a.events])
                if a.refusals:
                    conn.executemany(
                        "INSERT OR IGNORE INTO refusals (lot_id, bidder, bid_id, amount, code, at,"
                        " message, details) VALUES (?,?,?,?,?,?,?,?)",
                        [(a.lot_id, r.bidder, r.bid_id, r.amount, r.code, r.at, r.message,
                          r.details) for r in a.refusals])
                outcomes.append(None)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            failure = StoreUnavailable(f"SQLite did not commit: {exc}")
            outcomes = [failure] * len(appends)
        loop = self._running_loop()
        loop.call_soon_threadsafe(_settle, [(a.future, o) for a, o in zip(appends, outcomes,
                                                                          strict=True)])

    def _run_call(self, conn: sqlite3.Connection, call: _Call) -> None:
        outcome: tuple[bool, Any]
        try:
            conn.execute("BEGIN IMMEDIATE")
            result = call.fn(conn)
            conn.execute("COMMIT")
            outcome = (True, result)
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcome = (False, StoreUnavailable(f"SQLite error: {exc}"))
        self._running_loop().call_soon_threadsafe(_settle_call, call.future, outcome)

    # ------------------------------------------------------------------ reads
    async def events(self, lot_id: str, after_seq: int = 0) -> list[EventRow]:
        rows = await self._read(
            "SELECT seq, pseq, at, kind, body FROM events WHERE lot_id = ? AND seq > ? "
            "ORDER BY seq", (lot_id, after_seq))
        return [EventRow(r[0], r[1], r[2], r[3], r[4].encode()) for r in rows]

    async def public_events(self, lot_id: str, after_pseq: int, limit: int) -> list[EventRow]:
        rows = await self._read(
            "SELECT seq, pseq, at, kind, body FROM events WHERE lot_id = ? AND pseq > ? "
            "ORDER BY pseq LIMIT ?", (lot_id, after_pseq, limit))
        return [EventRow(r[0], r[1], r[2], r[3], r[4].encode()) for r in rows]

    async def lot_ids(self) -> list[str]:
        rows = await self._read(
            "SELECT lot_id FROM events WHERE seq = 1 ORDER BY at, lot_id", ())
        return [r[0] for r in rows]

    async def refusals(self, lot_id: str) -> list[RefusalRow]:
        rows = await self._read(
            "SELECT bidder, bid_id, amount, code, at, message, details FROM refusals "
            "WHERE lot_id = ? "
            "ORDER BY at, rowid", (lot_id,))
        return [RefusalRow(*r) for r in rows]

    async def _read(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        conn = self._read_conn
        if conn is None:
            raise StoreError("the store is not started")

        def run() -> list[tuple[Any, ...]]:
            return conn.execute(sql, args).fetchall()

        try:
            return await self._in_reader(run)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite read failed: {exc}") from exc

    async def _in_reader(self, fn: Callable[[], T]) -> T:
        if self._reader is None:
            raise StoreError("the store is not started")
        return await self._running_loop().run_in_executor(self._reader, fn)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise StoreError("the store is not started")
        return self._loop


def _settle(pairs: list[tuple[asyncio.Future[None], BaseException | None]]) -> None:
    for future, outcome in pairs:
        if future.done():
            continue
        if outcome is None:
            future.set_result(None)
        else:
            future.set_exception(outcome)


def _settle_call(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.done():
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
