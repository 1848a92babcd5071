"""Helpers for tests that run bidhall as several real processes.

    async with fresh_database() as db_url:                  # CREATE DATABASE bidhall_t_...
        cluster = Cluster(tmp_path, 3, database_url=db_url, redis_url=require_redis())
        await cluster.start()                                # `bidhall serve` x 3, free ports
        try:
            staff = cluster.staff(cluster.nodes[0])
            ...
            owner = await cluster.owner(lot_id)              # whose lease holds the lot
            owner.kill()                                     # SIGKILL
        finally:
            await cluster.close(lot_ids)                     # stop all, drop our leases

- :class:`Node` / :class:`Cluster`: ``bidhall serve`` processes on free loopback ports, all on
  one database (PostgreSQL, or each its own SQLite file) and one Redis URL (or none). Logs go
  to ``<root>/<node>.log``; :meth:`Cluster.logs` has their tails for failure messages.
- :func:`fresh_database`: a new database on the shared PostgreSQL server, dropped (FORCE)
  afterwards.
- :class:`PrivateRedis` and :class:`PrivatePostgres`: throwaway servers on free ports that a
  test may stop and restart without disturbing the machine's shared services. PostgreSQL runs
  as the ``postgres`` user when the tests run as root.
- :class:`Bidder` and :class:`Watcher`: websocket clients that record everything for
  :mod:`tests.history`.

The server's Redis names carry a prefix per deployment (``/healthz`` says which), so tests on
a shared Redis, each on a fresh database, keep out of each other's way. Nothing global is
flushed; :meth:`Cluster.close` deletes only the leases of the test's lots that the test's own
processes held.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from clients.python import LiveClient, StaffClient
from tests.history import RETRYABLE, Attempt, Op
from tests.services import require_postgres, unavailable

T = TypeVar("T")

#: Seconds a server process may take to answer /healthz after it was started.
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wall_ms() -> float:
    """Now, in ms since the epoch: the clock the server stamps ``at`` with (same machine)."""
    return time.time() * 1000


def bidhall_command() -> list[str]:
    """The ``bidhall`` console script of this environment (or ``python -m server.cli``)."""
    script = Path(sys.executable).with_name("bidhall")
    return [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]


def server_env(database_url: str = "", redis_url: str = "", **extra: str) -> dict[str, str]:
    """The environment of a bidhall process: no ``BIDHALL_*`` inherited from the test run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIDHALL_")}
    env.update(PYTHONUNBUFFERED="1", BIDHALL_RATE="100000", BIDHALL_BURST="100000")
    if database_url:
        env["BIDHALL_DATABASE_URL"] = database_url
    if redis_url:
        env["BIDHALL_REDIS_URL"] = redis_url
    env.update(extra)
    return env


async def run_cli(*args: str, env: dict[str, str], timeout: float = 60.0
                  ) -> tuple[int, str]:
    """Run ``bidhall *args``; its exit code and output (stdout and stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *bidhall_command(), *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"bidhall {' '.join(args)} did not finish in {timeout} s") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def wait_until(check: Callable[[], Awaitable[T]], timeout: float, what: str,
                     interval: float = 0.1) -> T:
    """``await check()`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = await check()
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        else:
            if last:
                return last  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")
        await asyncio.sleep(interval)


# ---------------------------------------------------------------------- bidhall processes
class Node:
    """One ``bidhall serve`` process."""

    def __init__(self, name: str, root: Path, env: dict[str, str], port: int | None = None
                 ) -> None:
        self.name = name
        self.port = port or free_port()
        self.data_dir = root / name
        self.log_path = root / f"{name}.log"
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.node_id: str | None = None
        self.redis_prefix: str | None = None
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def start(self, timeout: float = START_TIMEOUT) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- {self.name}: start on port {self.port}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [*bidhall_command(), "serve", "--port", str(self.port), "--data-dir",
                 str(self.data_dir)], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                                       f"{self.log_tail()}")
                try:
                    response = await http.get(self.base_url + "/healthz")
                    if response.status_code == 200:
                        health = response.json()
                        self.node_id, self.redis_prefix = health["node"], health["redis_prefix"]
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.name} did not come up in {timeout} s:\n{self.log_tail()}")

    async def health(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=2.0) as http:
            response = await http.get(self.base_url + "/healthz")
            response.raise_for_status()
            result: dict[str, Any] = response.json()
            return result

    def kill(self) -> None:
        """SIGKILL: no goodbye, the lease stays in Redis until it expires."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    async def stop(self, timeout: float = 10.0) -> None:
        """A clean stop (SIGTERM: leases released); SIGKILL after ``timeout`` seconds."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class Cluster:
    """``n`` bidhall processes sharing ``database_url`` (or each its own SQLite file when it
    is empty) and ``redis_url`` (none: single processes with the in-process bus)."""

    def __init__(self, root: Path, n: int, *, database_url: str = "", redis_url: str = "",
                 **env: str) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.database_url, self.redis_url = database_url, redis_url
        self.env = server_env(database_url, redis_url, **env)
        self.nodes = [Node(f"node{i}", root, self.env) for i in range(n)]
        self.node_ids: set[str] = set()  # every node id any of our processes ever had
        self.token = ""

    async def start(self) -> None:
        # The platform secret is made once, by the first process to ask (staff-token here).
        code, out = await run_cli("staff-token", "--data-dir", str(self.nodes[0].data_dir),
                                  env=self.env)
        assert code == 0, f"bidhall staff-token failed:\n{out}"
        self.token = out.strip().splitlines()[-1]
        await asyncio.gather(*(node.start() for node in self.nodes))
        self._remember()

    async def restart(self, node: Node) -> None:
        """Start ``node`` again on its port (after :meth:`Node.kill` or ``stop``)."""
        node.kill()
        await node.start()
        self._remember()

    def _remember(self) -> None:
        self.node_ids |= {n.node_id for n in self.nodes if n.node_id}

    def staff(self, node: Node | None = None) -> StaffClient:
        return StaffClient((node or self.nodes[0]).base_url, self.token, timeout=15.0)

    def by_node_id(self, node_id: str | None) -> Node | None:
        return next((n for n in self.nodes if n.node_id == node_id and n.alive), None)

    @property
    def redis_prefix(self) -> str:
        prefix = next((n.redis_prefix for n in self.nodes if n.redis_prefix), None)
        assert prefix is not None, "no process of this cluster uses Redis"
        return prefix

    async def lease(self, lot_id: str) -> str | None:
        """The node id holding the lease of ``lot_id`` (``None``: nobody)."""
        from redis import asyncio as aioredis

        redis = aioredis.from_url(self.redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            value = await redis.get(f"{self.redis_prefix}:lease:{lot_id}")
        finally:
            await redis.aclose()
        return value.decode() if value is not None else None

    async def owner(self, lot_id: str) -> Node | None:
        """The live process of ours that holds ``lot_id``'s lease."""
        holder = await self.lease(lot_id)
        if holder is None:
            return None
        node = self.by_node_id(holder)
        if node is not None:
            assert node.pid == int(holder.split("-")[-2]), (holder, node.pid)
        return node

    async def wait_for_bidders(self, lot_id: str, count: int, timeout: float = 10.0) -> None:
        """Until every process's replica of ``lot_id`` knows ``count`` bidders (a bidder can
        sign in at a process only once that process has seen the qualification)."""
        for node in self.nodes:
            if not node.alive:
                continue
            async with self.staff(node) as staff:
                async def known(staff: StaffClient = staff) -> bool:
                    found = await staff.call("GET", f"/api/lots/{lot_id}/bidders")
                    return len(found) >= count

                await wait_until(known, timeout, f"{node.name} to see {count} bidders")

    async def close(self, lot_ids: Sequence[str] = ()) -> None:
        """Stop every process; delete the leases of ``lot_ids`` that our processes held."""
        await asyncio.gather(*(node.stop() for node in self.nodes), return_exceptions=True)
        for node in self.nodes:
            node.kill()
        if self.redis_url and lot_ids:
            with contextlib.suppress(Exception):
                await drop_leases(self.redis_url, self.redis_prefix, lot_ids, self.node_ids)

    def logs(self, lines: int = 30) -> str:
        return "\n".join(f"===== {n.name} ({n.node_id}) =====\n{n.log_tail(lines)}"
                         for n in self.nodes)


async def drop_leases(redis_url: str, prefix: str, lot_ids: Sequence[str],
                      holders: set[str]) -> None:
    """Delete ``{prefix}:lease:{lot}`` for ``lot_ids`` where one of ``holders`` holds it."""
    from redis import asyncio as aioredis

    redis = aioredis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        for lot_id in lot_ids:
            key = f"{prefix}:lease:{lot_id}"
            value = await redis.get(key)
            if value is not None and value.decode() in holders:
                await redis.delete(key)
    finally:
        await redis.aclose()


@asynccontextmanager
async def fresh_database(url: str | None = None) -> AsyncIterator[str]:
    """The URL of a new database ``bidhall_t_<random>`` on the PostgreSQL server of ``url``
    (default: the test server), dropped with ``FORCE`` afterwards. Skips (or fails under
    ``BIDHALL_REQUIRE_SERVICES=1``) when PostgreSQL is not reachable."""
    import asyncpg

    url = require_postgres(url)
    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    name = f"bidhall_t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin, timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        conn = await asyncpg.connect(admin, timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


# ---------------------------------------------------------------------- private services
class PrivateRedis:
    """A throwaway ``redis-server`` (no persistence) on a free port; a restart comes back
    empty, like a Redis that lost its memory."""

    def __init__(self, root: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server is not installed (needed for a private Redis)")
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_path = root / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, timeout: float = 10.0) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no"],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(OSError), \
                    socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return
            await asyncio.sleep(0.05)
        raise RuntimeError("the private redis-server did not come up")

    def kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None


class PrivatePostgres:
    """A throwaway PostgreSQL cluster (``initdb`` into a temporary directory) on a free port,
    with trust authentication for ``postgres``. As root, it runs as the ``postgres`` user."""

    def __init__(self) -> None:
        bindir = _postgres_bindir()
        if bindir is None:
            unavailable("PostgreSQL's initdb/pg_ctl are not installed "
                        "(needed for a private PostgreSQL cluster)")
        self.bindir = bindir
        self.runas: list[str] = []
        self.owner: tuple[int, int] | None = None
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                user = None
            if runuser is None or user is None:
                import pytest

                pytest.skip("running as root, and there is no `postgres` user or `runuser` to "
                            "run a private PostgreSQL cluster as")
            self.runas = [runuser, "-u", "postgres", "--"]
            self.owner = (user.pw_uid, user.pw_gid)
        self.dir = Path(tempfile.mkdtemp(prefix="bidhall-pg-"))  # short: a socket lives here
        if self.owner is not None:
            os.chown(self.dir, *self.owner)
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.log_path = self.dir / "postgres.log"

    async def _run(self, *args: str, timeout: float = 60.0) -> str:
        proc = await asyncio.create_subprocess_exec(
            *self.runas, *args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=self.dir)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise RuntimeError(f"{args[0]} did not finish in {timeout} s") from None
        text = out.decode(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{text}\n"
                               f"{self.log_tail()}")
        return text

    async def start(self) -> None:
        if not self.data.exists():
            await self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                            "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   "-c max_connections=60 -c shared_buffers=16MB")
        await self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options,
                        "-l", str(self.log_path), "-w", "-t", "30", "start")

    async def stop(self, mode: str = "immediate") -> None:
        """Stop the server; ``immediate`` is a crash (recovery on the next start)."""
        await self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                        "-t", "30", "stop")

    async def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                await self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _postgres_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    return candidates[0].parent if candidates else None


# ---------------------------------------------------------------------- clients
async def staff_record(base_url: str, token: str, lot_id: str) -> list[dict[str, Any]]:
    """Every stored event of the lot as staff see it (``seq``, ``pseq``, ``bid_id``, ...)."""
    async with StaffClient(base_url, token, timeout=15.0) as staff:
        events: list[dict[str, Any]] = []
        while True:
            page = await staff.events(lot_id, since=events[-1]["seq"] if events else 0,
                                      limit=10_000)
            if not page["events"]:
                return events
            events.extend(page["events"])


async def public_record(base_url: str, lot_id: str) -> list[dict[str, Any]]:
    """Every public event of the lot (``seq`` = public seq), as a watcher gets them."""
    async with StaffClient(base_url, timeout=15.0) as public:
        events: list[dict[str, Any]] = []
        while True:
            page = await public.events(lot_id, since=events[-1]["seq"] if events else 0,
                                       limit=10_000)
            if not page["events"]:
                return events
            events.extend(page["events"])


class Bidder:
    """A bidder on one process: keeps ``depth`` bids in flight, amounts from a shared rising
    counter (so bidders contend), and retries a bid answered ``unavailable`` with the same
    ``bid_id`` for up to ``retry_for`` seconds. Every request and answer is recorded as an
    :class:`~tests.history.Op`.

    A bid waiting longer than ``patience`` seconds no longer counts as in flight (the bidder
    keeps bidding while it waits, up to ``max_pending`` bids); an attempt unanswered after
    ``answer_timeout`` seconds is recorded without an answer: a silent drop."""

    def __init__(self, name: str, node: Node, token: str, lot_id: str, prices: Iterator[int],
                 *, depth: int = 3, patience: float = 0.5, max_pending: int = 12,
                 answer_timeout: float = 15.0, retry_for: float = 30.0) -> None:
        self.name, self.node, self.lot_id, self.prices = name, node, lot_id, prices
        self.client = LiveClient(node.ws_url, token, max_backoff=0.3)
        self.depth, self.patience, self.max_pending = depth, patience, max_pending
        self.answer_timeout, self.retry_for = answer_timeout, retry_for
        self.ops: list[Op] = []
        self._ids = itertools.count()

    async def start(self) -> None:
        await self.client.start()

    async def close(self) -> None:
        await self.client.close()

    async def run(self, stop: asyncio.Event) -> None:
        live: dict[asyncio.Task[None], Op] = {}
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            now = wall_ms()
            fresh = sum(1 for op in live.values()
                        if now - op.attempts[-1].sent < self.patience * 1000)
            while fresh < self.depth and len(live) < self.max_pending:
                op = Op(self.name, f"{self.name}-{next(self._ids)}", next(self.prices))
                self.ops.append(op)
                live[loop.create_task(self._place(op))] = op
                fresh += 1
            if live:
                done, _ = await asyncio.wait(live, timeout=0.05,
                                             return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    del live[task]
            else:
                await asyncio.sleep(0.05)
        if live:
            _, late = await asyncio.wait(live, timeout=self.retry_for + self.answer_timeout)
            for task in late:
                task.cancel()

    async def _place(self, op: Op) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.retry_for
        while True:
            attempt = Attempt(sent=wall_ms())
            op.attempts.append(attempt)
            future = self.client.bid_nowait(self.lot_id, op.amount, op.bid_id)

            def answered(f: asyncio.Future[dict[str, Any]], a: Attempt = attempt) -> None:
                if not f.cancelled():
                    a.answered, a.answer = wall_ms(), f.result()

            future.add_done_callback(answered)
            await asyncio.wait({future}, timeout=self.answer_timeout)
            if not future.done():
                return  # recorded without an answer: a silent drop
            answer = future.result()
            if (answer.get("type") == "reject" and answer.get("code") in RETRYABLE
                    and loop.time() < give_up):
                await asyncio.sleep(random.uniform(0.05, 0.15))
                continue
            return


class Watcher:
    """A public websocket client of one process, following one lot from its first event."""

    def __init__(self, name: str, node: Node, lot_id: str) -> None:
        self.name, self.node, self.lot_id = name, node, lot_id
        self.client = LiveClient(node.ws_url, max_backoff=0.3)
        self.messages: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.client.start()
        await self.client.subscribe(self.lot_id, since=0)
        self._task = asyncio.get_running_loop().create_task(self._collect())

    async def _collect(self) -> None:
        async for message in self.client.messages():
            self.messages.append(message)

    @property
    def head(self) -> int:
        seqs = [m["seq"] for m in self.messages if m.get("type") in ("event", "snapshot")]
        return max(seqs, default=0)

    async def wait_for(self, seq: int, timeout: float = 10.0) -> None:
        async def reached() -> bool:
            return self.head >= seq

        await wait_until(reached, timeout, f"watcher {self.name} to reach seq {seq}", 0.05)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.close()


def all_ops(bidders: Sequence[Bidder]) -> list[Op]:
    return [op for bidder in bidders for op in bidder.ops]


async def close_all(*clients: Bidder | Watcher) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
