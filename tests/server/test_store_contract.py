"""The store contract, run unchanged against every backend (``backend`` fixture).

PostgreSQL runs each test in a fresh schema of the test database (see tests/services.py); it is
skipped when the server cannot be reached, and fails then under ``BIDHALL_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from server.store import EventRow, RefusalRow, StaleSeq, Store, StoreUnavailable
from server.store.sqlite import SQLiteStore
from tests.services import fresh_schema, require_postgres


def rows(start: int, count: int, public_every: int = 2) -> list[EventRow]:
    out = []
    for seq in range(start, start + count):
        public = seq % public_every == 0
        out.append(EventRow(seq, seq // public_every if public else None, 1000 + seq, "bid",
                            f'{{"seq":{seq},"note":"竞价"}}'.encode()))
    return out


@pytest_asyncio.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        store: Store = SQLiteStore(tmp_path / "contract.sqlite3")
        await store.start()
        try:
            yield store
        finally:
            await store.close()
        return
    from server.store.postgres import PostgresStore

    async with fresh_schema() as schema:
        store = PostgresStore(require_postgres(), schema=schema, pool_size=2)
        await store.start()
        try:
            yield store
        finally:
            await store.close()


async def test_append_then_read_back_in_order(backend: Store) -> None:
    await backend.append("L1", 0, rows(1, 3))
    await backend.append("L1", 3, rows(4, 2))
    got = await backend.events("L1")
    assert [r.seq for r in got] == [1, 2, 3, 4, 5]
    assert got == rows(1, 5)
    assert [r.seq for r in await backend.events("L1", after_seq=3)] == [4, 5]
    assert await backend.lot_ids() == ["L1"]


async def test_stale_expected_seq_is_refused_and_writes_nothing(backend: Store) -> None:
    await backend.append("L1", 0, rows(1, 2))
    with pytest.raises(StaleSeq):
        await backend.append("L1", 1, rows(2, 1))
    with pytest.raises(StaleSeq):
        await backend.append("L1", 0, rows(1, 1))
    with pytest.raises(StaleSeq):
        await backend.append("L1", 5, rows(6, 1))
    assert [r.seq for r in await backend.events("L1")] == [1, 2]


async def test_two_writers_racing_for_one_seq_one_wins(backend: Store) -> None:
    await backend.append("L1", 0, rows(1, 1))
    results = await asyncio.gather(backend.append("L1", 1, rows(2, 1)),
                                   backend.append("L1", 1, rows(2, 1)),
                                   return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["NoneType", "StaleSeq"]
    assert [r.seq for r in await backend.events("L1")] == [1, 2]


async def test_lots_are_independent_and_group_commit_keeps_each_fence(backend: Store) -> None:
    await asyncio.gather(*(backend.append(f"L{i}", 0, rows(1, 3)) for i in range(50)))
    results = await asyncio.gather(
        *(backend.append(f"L{i}", 3 if i % 2 else 2, rows(4, 1)) for i in range(50)),
        return_exceptions=True)
    for i, result in enumerate(results):
        assert (result is None) == bool(i % 2), (i, result)
        assert len(await backend.events(f"L{i}")) == (4 if i % 2 else 3)
    assert len(await backend.lot_ids()) == 50


async def test_public_events_are_numbered_by_public_seq(backend: Store) -> None:
    await backend.append("L1", 0, rows(1, 10))
    public = await backend.public_events("L1", after_pseq=0, limit=100)
    assert [r.pseq for r in public] == [1, 2, 3, 4, 5]
    assert [r.seq for r in public] == [2, 4, 6, 8, 10]
    assert [r.pseq for r in await backend.public_events("L1", after_pseq=3, limit=1)] == [4]


async def test_refusals_are_kept_with_the_batch(backend: Store) -> None:
    refusal = RefusalRow("公司A", "bid-1", 5, "too_low", 1234, "below 10", '{"minimum": 10}')
    await backend.append("L1", 0, rows(1, 1), [refusal])
    await backend.append("L1", 1, [], [RefusalRow("公司B", "bid-2", 6, "frozen", 1235)])
    assert [r.bid_id for r in await backend.refusals("L1")] == ["bid-1", "bid-2"]
    assert (await backend.refusals("L1"))[0] == refusal
    with pytest.raises(StaleSeq):  # a refusal-only append is fenced too
        await backend.append("L1", 0, [], [RefusalRow("x", "y", 1, "too_low", 1)])


async def test_settings_are_created_once(backend: Store) -> None:
    first = await backend.setting("secret", lambda: "one")
    second = await backend.setting("secret", lambda: "two")
    assert first == second == "one"


async def test_appends_queued_back_to_back_for_one_lot_apply_in_order(backend: Store) -> None:
    # Both reach the store before either is answered: one group-commit round holds both.
    results = await asyncio.gather(backend.append("L1", 0, rows(1, 2)),
                                   backend.append("L1", 2, rows(3, 1)),
                                   backend.append("L2", 0, rows(1, 1)),
                                   backend.append("L1", 3, rows(4, 2)))
    assert results == [None] * 4
    assert await backend.events("L1") == rows(1, 5)
    assert await backend.events("L2") == rows(1, 1)


async def test_a_retried_refusal_is_kept_once(backend: Store) -> None:
    refusal = RefusalRow("公司A", "bid-1", 5, "too_low", 1234)
    await backend.append("L1", 0, rows(1, 1), [refusal, refusal])
    await backend.append("L1", 1, [], [RefusalRow("公司A", "bid-1", 7, "frozen", 1240)])
    assert await backend.refusals("L1") == [refusal]


async def test_a_failed_commit_writes_nothing_and_the_store_carries_on(backend: Store) -> None:
    await backend.append("L1", 0, rows(1, 2))  # seq 2 holds pseq 1
    clash = [EventRow(3, 1, 1003, "bid", b'{"seq":3}')]  # pseq 1 again: the unique index refuses
    results = await asyncio.gather(backend.append("L1", 2, clash),
                                   backend.append("L2", 0, rows(1, 1)),
                                   return_exceptions=True)
    assert isinstance(results[0], StoreUnavailable), results
    # Committed in another round, or failed with the whole round: never half of it.
    assert results[1] is None or isinstance(results[1], StoreUnavailable), results
    assert await backend.events("L1") == rows(1, 2)
    assert await backend.events("L2") == (rows(1, 1) if results[1] is None else [])
    await backend.append("L1", 2, rows(3, 1))
    assert await backend.events("L1") == rows(1, 3)


async def test_touch_stamps_the_lots_served(backend: Store) -> None:
    await backend.append("L1", 0, rows(1, 1))
    await backend.append("L2", 0, rows(1, 1))
    assert await backend.alive("L1") is None
    await backend.touch(["L1", "unknown"], 5000)
    await backend.touch([], 6000)
    assert await backend.alive("L1") == 5000
    assert await backend.alive("L2") is None
    assert await backend.alive("unknown") is None
    await backend.append("L1", 1, rows(2, 1))  # the stamp does not disturb the fence
    assert await backend.alive("L1") == 5000


async def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "reopen.sqlite3"
    store = SQLiteStore(path)
    await store.start()
    await store.append("L1", 0, rows(1, 4))
    await store.close()
    again = SQLiteStore(path)
    await again.start()
    try:
        assert [r.seq for r in await again.events("L1")] == [1, 2, 3, 4]
        await again.append("L1", 4, rows(5, 1))
    finally:
        await again.close()


async def test_sqlite_runs_wal_with_full_sync(tmp_path: Path) -> None:
    import sqlite3

    store = SQLiteStore(tmp_path / "wal.sqlite3")
    await store.start()
    await store.close()
    conn = sqlite3.connect(tmp_path / "wal.sqlite3")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    # synchronous is per connection: the store's own connections are checked in its code path
    # (server.store.sqlite._connect); here we check that the helper really sets FULL.
    from server.store.sqlite import _connect

    own = _connect(tmp_path / "wal.sqlite3")
    assert own.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    own.close()


async def test_an_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = SQLiteStore(blocker / "db.sqlite3")
    from server.store import StoreUnavailable

    with pytest.raises(StoreUnavailable, match="cannot open"):
        await store.start()


# ---------------------------------------------------------------------- PostgreSQL only


async def retry(step: Callable[[], Awaitable[object]], *, seconds: float = 10.0) -> int:
    """Run ``step`` until it stops raising StoreUnavailable; return how often it did."""
    deadline = asyncio.get_running_loop().time() + seconds
    failures = 0
    while True:
        try:
            await step()
            return failures
        except StoreUnavailable:
            failures += 1
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def test_postgres_data_survives_close_and_reopen() -> None:
    from server.store.postgres import PostgresStore

    url = require_postgres()
    async with fresh_schema(create=False) as schema:  # the store creates its schema
        store = PostgresStore(url, schema=schema, pool_size=1)
        await store.start()
        await store.append("L1", 0, rows(1, 4), [RefusalRow("b", "x", 1, "too_low", 1)])
        assert await store.setting("secret", lambda: "one") == "one"
        await store.close()
        again = PostgresStore(url, schema=schema, pool_size=1)
        await again.start()
        try:
            assert await again.events("L1") == rows(1, 4)
            assert [r.bid_id for r in await again.refusals("L1")] == ["x"]
            assert await again.setting("secret", lambda: "two") == "one"
            with pytest.raises(StaleSeq):
                await again.append("L1", 3, rows(4, 1))
            await again.append("L1", 4, rows(5, 1))
            assert await again.lot_ids() == ["L1"]
        finally:
            await again.close()


async def test_postgres_migrations_apply_once_and_may_run_concurrently() -> None:
    import asyncpg

    from server.store.migrate import available, migrate, pending

    url = require_postgres()
    versions = [version for version, _ in available()]
    assert versions[0] == "0001_init"
    async with fresh_schema(create=False) as schema:
        assert await pending(url, schema) == versions
        assert await migrate(url, schema) == versions
        assert await migrate(url, schema) == []
        assert await pending(url, schema) == []
    async with fresh_schema(create=False) as schema:
        results = await asyncio.gather(*(migrate(url, schema) for _ in range(4)))
        assert sorted(v for result in results for v in result) == versions  # each once
        assert sorted(results, key=len)[:-1] == [[], [], []]
        assert await pending(url, schema) == []
        conn = await asyncpg.connect(url)
        try:
            recorded = await conn.fetch(
                f'SELECT version FROM "{schema}".schema_migrations ORDER BY version')
            assert [r[0] for r in recorded] == versions
        finally:
            await conn.close()
    # A connection works as well as a URL; without schema= the connection's own is used.
    async with fresh_schema() as schema:
        conn = await asyncpg.connect(url, server_settings={"search_path": schema})
        try:
            assert await migrate(conn) == versions
            assert await pending(conn) == []
            assert await conn.fetchval("SELECT count(*) FROM lots") == 0
        finally:
            await conn.close()


async def test_unreachable_postgres_is_a_clear_error_at_start() -> None:
    from server.store.postgres import PostgresStore

    store = PostgresStore("postgresql://postgres@127.0.0.1:1/test", connect_timeout=2.0)
    where = r"cannot connect to PostgreSQL at 127\.0\.0\.1:1/test: \w+Error"
    with pytest.raises(StoreUnavailable, match=where):
        await store.start()
    await store.close()  # closing a store that never started is harmless


async def test_open_store_picks_postgres_for_a_postgres_url() -> None:
    from server.config import Settings
    from server.store import open_store
    from server.store.postgres import PostgresStore

    for url in ("postgresql://u@h/db", "postgres://u@h/db"):
        store = open_store(Settings(database_url=url))
        assert isinstance(store, PostgresStore) and store.url == url


async def test_postgres_commits_synchronously_even_when_the_url_asks_otherwise() -> None:
    from server.store.postgres import PostgresStore

    url = require_postgres()
    for query in ("", "synchronous_commit=off"):
        full = url + ("&" if "?" in url else "?") + query if query else url
        async with fresh_schema() as schema:
            store = PostgresStore(full, schema=schema, pool_size=1)
            await store.start()
            try:
                assert await store._conn.fetchval("SHOW synchronous_commit") == "on"
                async with store._pool.acquire() as conn:
                    assert await conn.fetchval("SHOW synchronous_commit") == "on"
                    assert await conn.fetchval("SHOW fsync") == "on"
                    assert await conn.fetchval("SHOW application_name") == "bidhall-reader"
                assert await store._conn.fetchval("SHOW application_name") == "bidhall-writer"
            finally:
                await store.close()


async def test_postgres_writer_survives_its_connection_being_killed() -> None:
    import uuid

    import asyncpg

    from server.store.postgres import PostgresStore

    url = require_postgres()
    name = f"bidhall-test-{uuid.uuid4().hex[:8]}"
    writer, reader = f"{name}-writer", f"{name}-reader"
    async with fresh_schema() as schema:
        store = PostgresStore(url, schema=schema, pool_size=2, application_name=name)
        await store.start()
        admin = await asyncpg.connect(url)

        async def kill(app: str) -> int:
            killed: int = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1", app)
            return killed

        async def stored() -> list[EventRow]:
            got: list[EventRow] = []

            async def read() -> None:
                got[:] = await store.events("L1")

            await retry(read)
            return got

        try:
            await store.append("L1", 0, rows(1, 3))

            # 1. Killed mid-append: the writer's fence waits on a row lock held here, then its
            # backend is terminated. The append fails; nothing of it is written.
            lock = admin.transaction()
            await lock.start()
            await admin.execute(f'SELECT 1 FROM "{schema}".lots WHERE lot_id = $1 FOR UPDATE',
                                "L1")
            in_flight = asyncio.create_task(store.append("L1", 3, rows(4, 2)))
            for _ in range(500):
                waiting = await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
                    "AND wait_event_type = 'Lock'", writer)
                if waiting:
                    break
                await asyncio.sleep(0.01)
            else:
                pytest.fail("the writer never waited on the lock")
            assert await kill(writer) == 1
            with pytest.raises(StoreUnavailable, match="did not commit"):
                await in_flight
            await lock.rollback()
            assert await stored() == rows(1, 3)

            # 2. The writer reconnects by itself: the same append now goes through.
            await retry(lambda: store.append("L1", 3, rows(4, 2)))
            assert await stored() == rows(1, 5)

            # 3. Killed while idle, readers too: the next append fails cleanly or succeeds,
            # reads come back, and the record holds every acknowledged event once.
            assert await kill(writer) == 1
            assert await kill(reader) >= 1
            try:
                await store.append("L1", 5, rows(6, 1))
            except StoreUnavailable:
                await retry(lambda: store.append("L1", 5, rows(6, 1)))
            assert await stored() == rows(1, 6)

            # 4. While the database cannot be reached, every round fails with
            # StoreUnavailable; once it is back, appends go through again.
            store.url = "postgresql://postgres@127.0.0.1:1/test"
            assert await kill(writer) == 1
            for _ in range(3):
                with pytest.raises(StoreUnavailable):
                    await store.append("L1", 6, rows(7, 1))
            store.url = url
            await retry(lambda: store.append("L1", 6, rows(7, 1)))
            assert await stored() == rows(1, 7)
            head = await admin.fetchval(f'SELECT head_seq FROM "{schema}".lots '
                                        "WHERE lot_id = 'L1'")
            assert head == 7
        finally:
            await admin.close()
            await store.close()
