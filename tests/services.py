"""Finding the services some tests need: PostgreSQL and Redis.

A test that needs one calls :func:`require_postgres` / :func:`require_redis` first. When the
service cannot be reached the test is skipped with the reason, or fails with it under
``BIDHALL_REQUIRE_SERVICES=1`` (CI), so a missing service never passes unnoticed there.

    BIDHALL_TEST_POSTGRES_URL   default postgresql://postgres@127.0.0.1:5432/test
    BIDHALL_TEST_REDIS_URL      default redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import NoReturn
from urllib.parse import unquote, urlsplit

import pytest

#: Seconds a reachability check may take.
CHECK_TIMEOUT = 2.0

_checked: dict[str, str | None] = {}  # url -> why it is unreachable (None: reachable)


def postgres_url() -> str:
    return os.environ.get("BIDHALL_TEST_POSTGRES_URL") or \
        "postgresql://postgres@127.0.0.1:5432/test"


def redis_url() -> str:
    return os.environ.get("BIDHALL_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"


def services_required() -> bool:
    return os.environ.get("BIDHALL_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it under ``BIDHALL_REQUIRE_SERVICES=1``."""
    if services_required():
        pytest.fail(f"{reason} (BIDHALL_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def require_postgres(url: str | None = None) -> str:
    """The PostgreSQL URL to test against, once a connection to it has worked."""
    url = url or postgres_url()
    if url not in _checked:
        _checked[url] = _in_thread(_postgres_problem, url)
    problem = _checked[url]
    if problem is not None:
        unavailable(f"PostgreSQL is not reachable at {_where(url)}: {problem}")
    return url


def require_redis(url: str | None = None) -> str:
    """The Redis URL to test against, once it has answered a PING."""
    url = url or redis_url()
    if url not in _checked:
        _checked[url] = _redis_problem(url)
    problem = _checked[url]
    if problem is not None:
        unavailable(f"Redis is not reachable at {_where(url)}: {problem}")
    return url


@asynccontextmanager
async def fresh_schema(url: str | None = None, *, create: bool = True) -> AsyncIterator[str]:
    """A new, uniquely named PostgreSQL schema (created unless ``create=False``), dropped with
    everything in it afterwards. Requires PostgreSQL (skips or fails otherwise)."""
    import asyncpg

    url = require_postgres(url)
    name = f"bidhall_test_{uuid.uuid4().hex[:16]}"
    if create:
        conn = await asyncpg.connect(url, timeout=CHECK_TIMEOUT)
        try:
            await conn.execute(f'CREATE SCHEMA "{name}"')
        finally:
            await conn.close()
    try:
        yield name
    finally:
        conn = await asyncpg.connect(url, timeout=CHECK_TIMEOUT)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await conn.close()


def _postgres_problem(url: str) -> str | None:
    import asyncpg

    async def check() -> None:
        conn = await asyncpg.connect(url, timeout=CHECK_TIMEOUT)
        await conn.close()

    try:
        asyncio.run(asyncio.wait_for(check(), CHECK_TIMEOUT + 1))
    except Exception as exc:
        return _describe(exc)
    return None


def _redis_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme != "redis":
        return f"only redis:// URLs can be checked here (got {parts.scheme}://)"
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379),
                                      timeout=CHECK_TIMEOUT) as sock:
            if parts.password is not None:
                auth = [b"AUTH", unquote(parts.password).encode()]
                if parts.username:
                    auth.insert(1, unquote(parts.username).encode())
                sock.sendall(_resp(auth))
                answer = sock.recv(512)
                if not answer.startswith(b"+OK"):
                    return f"AUTH answered {answer.strip()!r}"
            sock.sendall(_resp([b"PING"]))
            answer = sock.recv(512)
    except OSError as exc:
        return _describe(exc)
    if not answer.startswith(b"+PONG"):
        return f"PING answered {answer.strip()!r}"
    return None


def _resp(args: list[bytes]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


def _in_thread(fn: Callable[[str], str | None], arg: str) -> str | None:
    # The check runs its own event loop: it is called from sync code and from inside
    # pytest-asyncio's running loop alike.
    result: list[str | None] = []
    thread = threading.Thread(target=lambda: result.append(fn(arg)))
    thread.start()
    thread.join()
    return result[0] if result else "the check crashed"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _where(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc.rpartition("@")[2] or url
