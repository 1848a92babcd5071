"""Versioned schema migrations for the PostgreSQL store.

The migrations are the files ``server/store/migrations/NNNN_name.sql`` (shipped with the
package); a file's version is its name without ``.sql``. Each is applied once, in name order, in
its own transaction with ``search_path`` set to the target schema, and recorded in that schema's
``schema_migrations`` table. A session-level advisory lock keyed by the schema serialises
processes that start at the same time: the second waits, then finds nothing left to do.

Write new migrations as new files (never edit an applied one); a statement that cannot run in a
transaction (``CREATE INDEX CONCURRENTLY``) does not belong here.

    applied = await migrate("postgresql://user@host/db", schema="bidhall")
    todo = await pending(conn)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import asyncpg

_NAME = re.compile(r"^(\d{4}_[a-z0-9_]+)\.sql$")


def quote_ident(name: str) -> str:
    """``name`` as a PostgreSQL identifier, quoted."""
    if not name or "\x00" in name:
        raise ValueError(f"not a usable identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def available() -> list[tuple[str, str]]:
    """Every migration shipped with bidhall as ``(version, sql)``, in order."""
    found = []
    for entry in resources.files("server.store").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((match.group(1), entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(conn_or_url: Any, schema: str | None = None) -> list[str]:
    """Apply every migration not yet recorded in ``schema`` (default: the connection's current
    schema, creating ``schema`` if missing); return the versions applied, in order.

    ``conn_or_url``: an asyncpg connection (not inside a transaction) or a connection URL."""
    async with _connection(conn_or_url) as conn:
        target = await _target(conn, schema)
        table = f"{quote_ident(target)}.schema_migrations"
        await conn.execute("SELECT pg_advisory_lock($1)", _lock_key(target))
        try:
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(target)}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table} ("
                " version text PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())")
            done = {r[0] for r in await conn.fetch(f"SELECT version FROM {table}")}
            applied = []
            for version, sql in available():
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(f"SET LOCAL search_path TO {quote_ident(target)}")
                    await conn.execute(sql)
                    await conn.execute(f"INSERT INTO {table} (version) VALUES ($1)", version)
                applied.append(version)
            return applied
        finally:
            if not conn.is_closed():
                await conn.execute("SELECT pg_advisory_unlock($1)", _lock_key(target))


async def pending(conn_or_url: Any, schema: str | None = None) -> list[str]:
    """Versions shipped with bidhall and not yet applied to ``schema``, in order."""
    async with _connection(conn_or_url) as conn:
        target = await _target(conn, schema)
        table = f"{quote_ident(target)}.schema_migrations"
        done: set[str] = set()
        if await conn.fetchval("SELECT to_regclass($1)", table) is not None:
            done = {r[0] for r in await conn.fetch(f"SELECT version FROM {table}")}
        return [version for version, _ in available() if version not in done]


@asynccontextmanager
async def _connection(conn_or_url: Any) -> AsyncIterator[Any]:
    if not isinstance(conn_or_url, str):
        if conn_or_url.is_in_transaction():
            raise ValueError("migrate() needs a connection outside any transaction")
        yield conn_or_url
        return
    conn = await asyncpg.connect(conn_or_url)
    try:
        yield conn
    finally:
        await conn.close()


async def _target(conn: Any, schema: str | None) -> str:
    if schema is not None:
        quote_ident(schema)
        return schema
    current = await conn.fetchval("SELECT current_schema()")
    if current is None:
        raise ValueError("the connection's search_path names no existing schema; pass schema=")
    return str(current)


def _lock_key(schema: str) -> int:
    digest = hashlib.blake2b(f"bidhall.migrate:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
