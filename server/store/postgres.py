"""The PostgreSQL store (asyncpg), for running many bidhall processes on one database.

Writes: one writer task owns one connection. Appends from every lot queue up for it, and each
round commits all of them (up to ``GROUP_MAX``) in one transaction: group commit across lots, one
WAL flush for a burst of bids. A round is one statement per *wave*: the first append of each lot
in the round forms wave 1, a lot's second append (two writers racing, or a writer that did not
wait) wave 2, and so on. One wave is one statement, so one round trip::

    fence:    UPDATE lots SET head_seq = new WHERE lot_id = id AND head_seq = expected
              (expected 0: INSERT INTO lots ... ON CONFLICT DO NOTHING), every append at once
    events:   INSERT INTO events SELECT ... FROM unnest($lot_ids, $seqs, ...)
              WHERE the lot passed its fence
    refusals: likewise, ON CONFLICT (lot_id, bidder, bid_id) DO NOTHING

An append whose lot did not pass its fence gets :class:`StaleSeq` and has written nothing; the
others commit. Several waves run in one explicit transaction, in order, so a lot's second
append sees its first. Futures resolve only once the commit has returned. Any database error
fails the whole round with :class:`StoreUnavailable`: nothing of it was committed (except when
the connection drops after COMMIT was sent and before its answer; the caller then rebuilds from
the store and finds its events there). A lost connection is replaced on a later round, after a
short backoff; until then rounds fail with :class:`StoreUnavailable`.

Why one statement: measured on loopback (2 cores, PostgreSQL 15, fsync on), a round of 100
lots took 12-18 ms with a fence statement per append, 1.7-2.1 ms with one set-wise fence statement
and one ``unnest`` insert in an explicit transaction, and 1.5-1.7 ms as one statement; one append
alone 0.4 ms as one statement against 0.6 ms with BEGIN/COMMIT around it. For the inserts alone,
``unnest`` beat ``executemany`` from about 100 rows on (1.3 against 1.7 ms for 100 rows, 5.5
against 7.8 ms for 500; even below that) and is the only way to keep a wave in one statement.

Reads go through a small pool; connection failures become :class:`StoreUnavailable`, and a read
that met a dead pooled connection is tried once more on a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from . import EventRow, RefusalRow, StaleSeq, StoreError, StoreUnavailable
from .migrate import migrate, quote_ident

log = logging.getLogger(__name__)

#: Appends committed together at most, whatever the number of lots waiting.
GROUP_MAX = 1024
#: Seconds the writer waits before reconnecting after losing its connection, doubling up to
#: ``BACKOFF_MAX`` while the database stays away.
BACKOFF_MIN, BACKOFF_MAX = 0.05, 1.0
#: Seconds ``close()`` waits for queued appends before giving up on them.
CLOSE_TIMEOUT = 10.0

_WAVE = """
WITH v AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS v (lot_id, expected, head)
), moved AS (
    UPDATE lots AS l SET head_seq = v.head FROM v
     WHERE v.expected > 0 AND l.lot_id = v.lot_id AND l.head_seq = v.expected
    RETURNING l.lot_id
), opened AS (
    INSERT INTO lots (lot_id, head_seq) SELECT lot_id, head FROM v WHERE v.expected = 0
    ON CONFLICT (lot_id) DO NOTHING
    RETURNING lot_id
), ok AS (
    SELECT lot_id FROM moved UNION ALL SELECT lot_id FROM opened
), ev AS (
    INSERT INTO events (lot_id, seq, pseq, at, kind, body)
    SELECT e.lot_id, e.seq, e.pseq, e.at, e.kind, e.body
      FROM unnest($4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::text[], $9::text[])
           AS e (lot_id, seq, pseq, at, kind, body)
     WHERE e.lot_id IN (SELECT lot_id FROM ok)
), rf AS (
    INSERT INTO refusals (lot_id, bidder, bid_id, amount, code, at, message, details)
    SELECT r.lot_id, r.bidder, r.bid_id, r.amount, r.code, r.at, r.message, r.details
      FROM unnest($10::text[], $11::text[], $12::text[], $13::bigint[], $14::text[],
                  $15::bigint[], $16::text[], $17::text[])
           WITH ORDINALITY AS r (lot_id, bidder, bid_id, amount, code, at, message, details, n)
     WHERE r.lot_id IN (SELECT lot_id FROM ok)
     ORDER BY r.n
    ON CONFLICT (lot_id, bidder, bid_id) DO NOTHING
)
SELECT lot_id FROM ok
"""

#: Failures after which a connection is not trusted again.
_LOST = (OSError, TimeoutError, asyncpg.InterfaceError,
         asyncpg.exceptions.PostgresConnectionError,
         asyncpg.exceptions.OperatorInterventionError)
#: Everything a database call may raise that means "the database did not do it".
_DB_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass(slots=True)
class _Append:
    lot_id: str
    expected_seq: int
    head: int
    events: list[tuple[Any, ...]]
    refusals: list[tuple[Any, ...]]
    future: asyncio.Future[None]


@dataclass(slots=True)
class _Call:
    """Work for the writer's connection besides appends, run after the round's commit."""

    fn: Callable[[Any], Awaitable[Any]]
    future: asyncio.Future[Any]


_STOP = object()


class PostgresStore:
    """PostgreSQL behind the :class:`~server.store.Store` interface.

    ``url``: a libpq-style URL (``postgresql://user:password@host:port/dbname``).
    ``pool_size``: connections for reads, besides the writer's one.
    ``schema``: put every table in this schema (created if missing) instead of the
    connection's default one. ``application_name``: connections show up in
    ``pg_stat_activity`` as ``<name>-writer`` and ``<name>-reader``."""

    def __init__(self, url: str, *, pool_size: int = 4, schema: str | None = None,
                 application_name: str = "bidhall", connect_timeout: float = 5.0,
                 command_timeout: float = 30.0) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.url = url
        self.pool_size = pool_size
        self.schema = schema
        self.application_name = application_name
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._settings: dict[str, str] = {}
        if schema is not None:
            self._settings["search_path"] = quote_ident(schema)
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._conn: Any = None  # the writer's connection; only the writer task uses it
        self._pool: Any = None
        self._closing = False
        self._backoff = 0.0
        self._retry_at = 0.0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        conn = await self._connect("writer")
        try:
            # Acks wait for the commit's WAL flush: never run with synchronous_commit=off,
            # whatever the database's default (stronger settings such as remote_apply stay).
            if await conn.fetchval("SELECT current_setting('synchronous_commit')") == "off":
                log.warning("synchronous_commit is off on %s; bidhall turns it on for its "
                            "own connections", _where(self.url))
                self._settings["synchronous_commit"] = "on"
                await conn.execute("SET synchronous_commit TO on")
            applied = await migrate(conn, self.schema)
            if applied:
                log.info("PostgreSQL schema migrated: %s", ", ".join(applied))
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=self.pool_size, timeout=self.connect_timeout,
                command_timeout=self.command_timeout,
                server_settings={**self._settings,
                                 "application_name": f"{self.application_name}-reader"})
        except _DB_ERRORS as exc:
            await _discard(conn)
            raise StoreUnavailable(f"PostgreSQL at {_where(self.url)} could not be set up: "
                                   f"{_describe(exc)}") from exc
        except BaseException:
            await _discard(conn)
            raise
        self._conn = conn
        self._closing = False
        self._writer = asyncio.get_running_loop().create_task(
            self._write_loop(), name="bidhall-postgres-writer")

    async def close(self) -> None:
        self._closing = True
        writer, self._writer = self._writer, None
        if writer is not None:
            self._queue.put_nowait(_STOP)
            try:
                await asyncio.wait_for(asyncio.shield(writer), CLOSE_TIMEOUT)
            except TimeoutError:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
        while not self._queue.empty():  # only if the writer had to be cancelled
            item = self._queue.get_nowait()
            if isinstance(item, _Append | _Call):
                _settle(item.future, StoreUnavailable("the store was closed"))
        conn, self._conn = self._conn, None
        await _discard(conn)
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT)
            except (TimeoutError, *_DB_ERRORS):
                pool.terminate()

    # ------------------------------------------------------------------ writes
    async def append(self, lot_id: str, expected_seq: int, events: Sequence[EventRow],
                     refusals: Sequence[RefusalRow] = ()) -> None:
        if self._writer is None or self._closing:
            raise StoreError("the store is not started")
        for offset, event in enumerate(events, expected_seq + 1):
            # A gap would only be caught by the primary key, failing every lot of the round.
            if event.seq != offset:
                raise ValueError(f"lot {lot_id!r}: event seq {event.seq} where {offset} belongs")
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Append(
            lot_id, expected_seq, expected_seq + len(events),
            [(e.seq, e.pseq, e.at, e.kind, e.body.decode()) for e in events],
            [(r.bidder, r.bid_id, r.amount, r.code, r.at, r.message, r.details)
             for r in refusals],
            future))
        await future

    async def _write_loop(self) -> None:
        queue = self._queue
        batch: list[Any] = []
        try:
            while True:
                batch = [await queue.get()]
                while len(batch) < GROUP_MAX and not queue.empty():
                    batch.append(queue.get_nowait())
                appends = [item for item in batch if isinstance(item, _Append)]
                if appends:
                    await self._round(appends)
                for item in batch:
                    if isinstance(item, _Call):
                        await self._run_call(item)
                if any(item is _STOP for item in batch):  # close() waits for what came before
                    return
        except asyncio.CancelledError:  # close() gave up waiting: leave nobody hanging
            for item in batch:
                if isinstance(item, _Append | _Call):
                    _settle(item.future, StoreUnavailable("the store was closed"))
            raise
        finally:
            conn, self._conn = self._conn, None
            await _discard(conn)

    async def _round(self, appends: list[_Append]) -> None:
        try:
            conn = await self._writer_connection()
        except StoreUnavailable as exc:
            for a in appends:
                _settle(a.future, exc)
            return
        try:
            passed = await self._commit(conn, appends)
        except Exception as exc:
            await self._check_writer(conn, exc)
            failure = StoreUnavailable(f"PostgreSQL did not commit: {_describe(exc)}")
            for a in appends:
                _settle(a.future, failure)
            return
        for a, ok in zip(appends, passed, strict=True):
            _settle(a.future, None if ok else StaleSeq(a.lot_id, a.expected_seq))

    async def _run_call(self, call: _Call) -> None:
        try:
            conn = await self._writer_connection()
        except StoreUnavailable as exc:
            _settle(call.future, exc)
            return
        try:
            result = await call.fn(conn)
        except Exception as exc:
            await self._check_writer(conn, exc)
            _settle(call.future, StoreUnavailable(f"PostgreSQL: {_describe(exc)}"))
        else:
            _settle(call.future, None, result)

    async def _check_writer(self, conn: Any, exc: Exception) -> None:
        """After ``exc``, drop the writer's connection unless it is plainly still good."""
        if conn.is_closed() or conn.is_in_transaction() or isinstance(exc, _LOST):
            log.warning("PostgreSQL writer connection lost: %s", _describe(exc))
            self._conn = None
            self._retry_at = asyncio.get_running_loop().time() + BACKOFF_MIN
            await _discard(conn)

    async def _call(self, fn: Callable[[Any], Awaitable[Any]]) -> Any:
        if self._writer is None or self._closing:
            raise StoreError("the store is not started")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Call(fn, future))
        return await future

    async def _commit(self, conn: Any, appends: list[_Append]) -> list[bool]:
        waves: list[list[_Append]] = []
        seen: dict[str, int] = {}
        for a in appends:
            n = seen.get(a.lot_id, 0)
            seen[a.lot_id] = n + 1
            if n == len(waves):
                waves.append([])
            waves[n].append(a)
        passed: dict[int, bool] = {}
        if len(waves) == 1:  # the usual case: one statement, committed on its own
            await self._wave(conn, waves[0], passed)
        else:
            async with conn.transaction():
                for wave in waves:
                    await self._wave(conn, wave, passed)
        return [passed[id(a)] for a in appends]

    async def _wave(self, conn: Any, wave: list[_Append], passed: dict[int, bool]) -> None:
        ev: list[list[Any]] = [[], [], [], [], [], []]
        rf: list[list[Any]] = [[], [], [], [], [], [], [], []]
        for a in wave:
            for row in a.events:
                ev[0].append(a.lot_id)
                for column, value in zip(ev[1:], row, strict=True):
                    column.append(value)
            for row in a.refusals:
                rf[0].append(a.lot_id)
                for column, value in zip(rf[1:], row, strict=True):
                    column.append(value)
        rows = await conn.fetch(
            _WAVE, [a.lot_id for a in wave], [a.expected_seq for a in wave],
            [a.head for a in wave], *ev, *rf)
        ok = {r[0] for r in rows}
        for a in wave:
            passed[id(a)] = a.lot_id in ok

    async def _writer_connection(self) -> Any:
        conn = self._conn
        if conn is not None and not conn.is_closed():
            return conn
        self._conn = None
        loop = asyncio.get_running_loop()
        delay = self._retry_at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            conn = await self._connect("writer")
        except StoreUnavailable as exc:
            if not self._backoff:  # once per outage; every round fails until it ends
                log.warning("PostgreSQL writer cannot reconnect, retrying: %s", exc)
            self._backoff = min(BACKOFF_MAX, max(BACKOFF_MIN, self._backoff * 2))
            self._retry_at = loop.time() + self._backoff
            raise
        log.info("PostgreSQL writer reconnected to %s", _where(self.url))
        self._backoff = self._retry_at = 0.0
        self._conn = conn
        return conn

    async def _connect(self, role: str) -> Any:
        try:
            return await asyncpg.connect(
                self.url, timeout=self.connect_timeout, command_timeout=self.command_timeout,
                server_settings={**self._settings,
                                 "application_name": f"{self.application_name}-{role}"})
        except _DB_ERRORS as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL at {_where(self.url)}: "
                                   f"{_describe(exc)}") from exc

    # ------------------------------------------------------------------ settings
    async def setting(self, key: str, create: Callable[[], str]) -> str:
        async def get_or_create(conn: Any) -> str:
            value = await conn.fetchval("SELECT value FROM settings WHERE key = $1", key)
            if value is None:
                # Two processes may get here at once: the second INSERT waits for the first
                # one's commit and does nothing; the SELECT after it sees the first one's value.
                await conn.execute("INSERT INTO settings (key, value) VALUES ($1, $2) "
                                   "ON CONFLICT (key) DO NOTHING", key, create())
                value = await conn.fetchval("SELECT value FROM settings WHERE key = $1", key)
            return str(value)

        result: str = await self._with_connection(get_or_create)
        return result

    async def touch(self, lot_ids: Sequence[str], at: int) -> None:
        if not lot_ids:
            return
        ids = list(lot_ids)

        async def stamp(conn: Any) -> None:
            # On the writer's connection, between rounds: a second connection updating the
            # same lots rows in another order could deadlock with a round.
            await conn.execute("UPDATE lots SET alive_at = $1 WHERE lot_id = ANY($2::text[])",
                               at, ids)

        await self._call(stamp)

    async def alive(self, lot_id: str) -> int | None:
        rows = await self._fetch("SELECT alive_at FROM lots WHERE lot_id = $1", lot_id)
        return rows[0][0] if rows else None

    # ------------------------------------------------------------------ reads
    async def events(self, lot_id: str, after_seq: int = 0) -> list[EventRow]:
        rows = await self._fetch(
            "SELECT seq, pseq, at, kind, body FROM events WHERE lot_id = $1 AND seq > $2 "
            "ORDER BY seq", lot_id, after_seq)
        return [EventRow(r[0], r[1], r[2], r[3], r[4].encode()) for r in rows]

    async def public_events(self, lot_id: str, after_pseq: int, limit: int) -> list[EventRow]:
        rows = await self._fetch(
            "SELECT seq, pseq, at, kind, body FROM events WHERE lot_id = $1 AND pseq > $2 "
            "ORDER BY pseq LIMIT $3", lot_id, after_pseq, limit)
        return [EventRow(r[0], r[1], r[2], r[3], r[4].encode()) for r in rows]

    async def lot_ids(self) -> list[str]:
        rows = await self._fetch("SELECT lot_id FROM events WHERE seq = 1 ORDER BY at, lot_id")
        return [r[0] for r in rows]

    async def refusals(self, lot_id: str) -> list[RefusalRow]:
        rows = await self._fetch(
            "SELECT bidder, bid_id, amount, code, at, message, details FROM refusals "
            "WHERE lot_id = $1 ORDER BY at, n", lot_id)
        return [RefusalRow(*r) for r in rows]

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        async def run(conn: Any) -> list[Any]:
            rows: list[Any] = await conn.fetch(sql, *args)
            return rows

        result: list[Any] = await self._with_connection(run)
        return result

    async def _with_connection(self, fn: Callable[[Any], Any]) -> Any:
        """``fn(conn)`` on a pooled connection; once more on a connection failure (a pooled
        connection may have died since its last use)."""
        pool = self._pool
        if pool is None:
            raise StoreError("the store is not started")
        for attempt in (1, 2):
            try:
                async with pool.acquire(timeout=self.command_timeout) as conn:
                    return await fn(conn)
            except _DB_ERRORS as exc:
                if attempt == 1 and isinstance(exc, _LOST) and not self._closing:
                    continue
                raise StoreUnavailable(f"PostgreSQL at {_where(self.url)}: "
                                       f"{_describe(exc)}") from exc
        raise AssertionError("unreachable")


def _settle(future: asyncio.Future[Any], error: BaseException | None, result: Any = None
            ) -> None:
    if future.done():  # the caller gave up waiting; what it asked for still happened
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


async def _discard(conn: Any) -> None:
    if conn is None or conn.is_closed():
        return
    try:
        await asyncio.wait_for(conn.close(), 2.0)
    except (TimeoutError, *_DB_ERRORS):
        conn.terminate()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _where(url: str) -> str:
    """``host:port/dbname`` of ``url``, without credentials, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "the configured URL"
    hosts = parts.netloc.rpartition("@")[2] or "the local socket"
    if "," not in hosts and not hosts.endswith("]") and ":" not in hosts \
            and hosts != "the local socket":
        hosts += ":5432"
    return f"{hosts}{parts.path}" if parts.path not in ("", "/") else hosts
