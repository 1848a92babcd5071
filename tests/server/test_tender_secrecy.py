"""Nobody can read a bid before the opening: after the uploads, the whole database
(SQLite file, or every row of every table in PostgreSQL) and data directory hold not one
16-byte sequence of any bid's plaintext (document or summary), nor of any bidder's private
key or any bid's file key (raw, hex or base64url), and a key released before the opening
is refused.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest

from opening.crypto_errors import b64u
from opening.envelope import parse_header, unwrap
from server.config import Settings
from tests.cluster import fresh_database
from tests.conftest import Running, start_server, stop_server
from tests.tenders import SECOND, Bidder, TenderRun, data_files, find_plaintext

pytestmark = pytest.mark.slow
WIDTH = 16


@asynccontextmanager
async def running(settings: Settings, store: str) -> AsyncIterator[Running]:
    if store == "sqlite":
        server = await start_server(settings)
        try:
            yield server
        finally:
            await stop_server(server)
        return
    async with fresh_database() as url:
        server = await start_server(replace(settings, database_url=url))
        try:
            yield server
        finally:
            await stop_server(server)


def secrets_of(b: Bidder) -> list[bytes]:
    """The bidder's private scalar and its bid's file key, as bytes and as text."""
    scalar = b.key.private_numbers().private_value.to_bytes(32, "big")
    file_key = unwrap(parse_header(b.envelope), b.key)
    return [form for raw in (scalar, file_key)
            for form in (raw, raw.hex().encode(), b64u(raw).encode())]


def windows(text: bytes, name: str, needles: dict[bytes, str]) -> None:
    for start in range(len(text) - WIDTH + 1):
        needles[text[start:start + WIDTH]] = name


async def database_rows(url: str) -> list[bytes]:
    """Every value of every row of every table of the database at ``url``, as bytes
    (bytea as stored, anything else as its text)."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
            "AND table_type = 'BASE TABLE'")
        values = []
        for t in tables:
            for row in await conn.fetch(
                    f'SELECT * FROM "{t["table_schema"]}"."{t["table_name"]}"'):
                values += [v if isinstance(v, bytes) else str(v).encode() for v in row.values()]
        return values
    finally:
        await conn.close()


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
async def test_no_plaintext_anywhere_before_the_opening(settings: Settings, store: str) -> None:
    async with running(settings, store) as server:
        await no_plaintext_anywhere(server, store)


async def no_plaintext_anywhere(server: Running, store: str) -> None:
    run = TenderRun(server.base_url, server.staff_token)
    try:
        await run.create(deadline_in=60 * SECOND)
        needles: dict[bytes, str] = {}
        for i in range(4):
            b = await run.invite(f"bidder{i}")
            document = os.urandom(40_000 + 7 * i)
            price = f"{8_765_432 + i}.{10 + i}"
            run.sealed(b, price, document)
            summary = b'{"price":"' + price.encode()
            for text in (document, summary):
                windows(text, b.bidder, needles)
            for secret in secrets_of(b):
                windows(secret, f"{b.bidder} (key)", needles)
            await run.upload(b, chunk_size=16 * 1024)
        # Replace one bid: the old and the new plaintext must both stay unreadable.
        replaced = run.bidders["bidder0"]
        run.sealed(replaced, "1000.01", os.urandom(20_000))
        windows(replaced.plaintext, "bidder0 (replacement)", needles)
        for secret in secrets_of(replaced):
            windows(secret, "bidder0 (replacement key)", needles)
        await run.upload(replaced)

        files = data_files(server.settings.data_dir)
        assert any(p.suffix == ".bidenv" for p in files)  # the scan sees the bids
        scanned = 0
        for path in files:
            data = path.read_bytes()
            scanned += len(data)
            assert find_plaintext(data, needles, WIDTH) == [], path
        if store == "sqlite":
            assert any(p.name.startswith("bidhall.sqlite3") for p in files)  # and the database
        else:
            rows = await database_rows(server.settings.database_url)
            assert any(b"bidder0" in value for value in rows)  # the scan sees the tender
            for value in rows:
                scanned += len(value)
                assert find_plaintext(value, needles, WIDTH) == [], value[:80]
        # The scan can fail: a plaintext copied into the data directory is found.
        leak = server.settings.data_dir / "leak.bin"
        leak.write_bytes(b"xx" + replaced.plaintext[100:140])
        assert find_plaintext(leak.read_bytes(), needles, WIDTH)
        leak.write_bytes(b"key=" + secrets_of(replaced)[5] + b"\n")  # file key, base64url
        found = find_plaintext(leak.read_bytes(), needles, WIDTH)
        assert found == ["bidder0 (replacement key)"] * (43 - WIDTH + 1)
        leak.unlink()
        assert scanned > 4 * 40_000

        # Keys before the opening: refused with a code, nothing recorded.
        before = await run.view(staff=True)
        for b in run.bidders.values():
            r = await run.release(b)
            assert r.status_code == 409, r.text
            assert r.json()["error"]["code"] in ("too_early", "not_decrypting")
        assert await run.view(staff=True) == before
    finally:
        await run.close()
