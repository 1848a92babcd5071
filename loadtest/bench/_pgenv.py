"""Surroundings of ``pg_cluster.py``: its database, Redis keys, bidhall processes, CPU accounting.

Everything here is made by the benchmark and undone by it: one PostgreSQL database
(``bidhall_bench_<random>``, dropped WITH (FORCE) at the end), the ``{prefix}:lease:{lot}``
keys of the lots it created (lot ids carry the run's random tag; each bidhall deployment has
its own prefix, which ``/healthz`` reports and :data:`PREFIXES` collects), and the processes it
started (each in its own session; ``PgServers.stop`` also ends what is left of the
process group, i.e. the workers of ``bidhall serve --workers N``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

# Sibling modules: pg_cluster.py is run as a script, so this directory is on sys.path.
from _common import REPO
from _procs import Servers, bin_command, free_port, wait_listening
from _stats import CLK_TCK, CpuMeter, _ticks, log, r3
from _wsclient import Conn, connect_many, ignore_frame

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
#: A database index of its own: the lease keys of this run cannot clash with (or be taken
#: over by) another bidhall using the same Redis (pub/sub channels are global in Redis,
#: whatever the index: the event channel is still shared, see the notes of the report).
REDIS_URL = "redis://127.0.0.1:6379/9"
BASELINE_SCHEMA = "bench"


# ====================================================================== PostgreSQL
class PgAdmin:
    """The run's own database: created, emptied between phases, dropped at the end."""

    def __init__(self, tag: str) -> None:
        self.name = f"bidhall_bench_{tag}"
        self.dsn = f"postgresql://postgres@127.0.0.1:5432/{self.name}"
        self.created = False

    async def create(self) -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(f'CREATE DATABASE "{self.name}"')
            self.created = True
        finally:
            await conn.close()

    async def drop(self) -> None:
        if not self.created:
            return
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.created = False
        finally:
            await conn.close()

    async def execute(self, sql: str, *args: Any) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(sql, *args)
        finally:
            await conn.close()

    async def reset_bidhall(self) -> None:
        """Empty bidhall's event store between phases (schema and token secret stay), so a
        phase's processes do not replay and take over the lots of the phase before."""
        await self.execute("TRUNCATE lots, events, refusals")

    async def baseline_tables(self, lot_id: str, start_price: int, increment: int) -> None:
        """Tables of the two baselines, in their own schema (bidhall's tables are in public)."""
        s = BASELINE_SCHEMA
        await self.execute(f"""
            CREATE SCHEMA IF NOT EXISTS {s};
            CREATE TABLE {s}.bare_insert (id bigserial PRIMARY KEY, lot_id text NOT NULL,
                bidder text NOT NULL, bid_id text NOT NULL, amount bigint NOT NULL,
                at bigint NOT NULL, body text NOT NULL);
            CREATE TABLE {s}.lot (id text PRIMARY KEY, price bigint, leader text,
                start_price bigint NOT NULL, increment bigint NOT NULL);
            CREATE TABLE {s}.bids (id bigserial PRIMARY KEY, lot_id text NOT NULL,
                bidder text NOT NULL, bid_id text NOT NULL, amount bigint NOT NULL,
                at bigint NOT NULL, UNIQUE (lot_id, bidder, bid_id));
            INSERT INTO {s}.lot (id, price, leader, start_price, increment)
                VALUES ('{lot_id}', NULL, NULL, {int(start_price)}, {int(increment)});
        """)

    async def info(self) -> dict[str, Any]:
        conn = await asyncpg.connect(self.dsn)
        try:
            names = ("synchronous_commit", "fsync", "wal_sync_method", "commit_delay",
                     "commit_siblings", "full_page_writes", "max_connections",
                     "shared_buffers", "wal_level")
            rows = await conn.fetch("SELECT name, setting, unit FROM pg_settings "
                                    "WHERE name = ANY($1::text[])", list(names))
            return {"version": await conn.fetchval("SHOW server_version"),
                    "database": self.name,
                    "settings": {r["name"]: r["setting"] + (f" {r['unit']}" if r["unit"] else "")
                                 for r in rows}}
        finally:
            await conn.close()

    async def free_connections(self, margin: int = 6) -> int:
        """Connections this run may still open without crowding others out."""
        conn = await asyncpg.connect(self.dsn)
        try:
            limit = int(await conn.fetchval("SHOW max_connections"))
            used = int(await conn.fetchval("SELECT count(*) FROM pg_stat_activity "
                                           "WHERE backend_type = 'client backend'"))
        finally:
            await conn.close()
        return max(1, limit - used - margin)


# ====================================================================== Redis
#: The Redis key prefixes of the bidhall processes this run started (one per database reset).
PREFIXES: set[str] = set()


class RedisKeys:
    """The run's lease keys: read (to find a lot's owner) and deleted at the end."""

    def __init__(self, url: str = REDIS_URL) -> None:
        from redis import asyncio as aioredis
        self.url = url
        self.redis = aioredis.from_url(url)
        self.prefix = "bidhall"

    async def info(self) -> dict[str, Any]:
        server = await self.redis.info("server")
        others = [k async for k in self.redis.scan_iter(match="bidhall:*lease:*", count=1000)]
        return {"version": server.get("redis_version"), "url": self.url,
                "bidhall_lease_keys_in_this_database_at_start": len(others)}

    async def lease(self, lot_id: str) -> str | None:
        for prefix in PREFIXES:
            value: Any = await self.redis.get(f"{prefix}:lease:{lot_id}")
            if value is not None:
                self.prefix = prefix
                return value.decode() if isinstance(value, bytes) else str(value)
        return None

    def node_channel(self, node: str) -> str:
        """The channel ``node`` listens on (prefix of the last lease found)."""
        return f"{self.prefix}:node:{node}"

    async def subscribers(self, channel: str) -> int:
        answer: Any = await self.redis.pubsub_numsub(channel)
        return int(answer[0][1]) if answer else 0

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.redis.aclose()


def delete_leases(lot_ids: Iterable[str], url: str = REDIS_URL) -> int:
    """Synchronously (also after the event loop ended) delete the run's lease keys."""
    keys = [f"{prefix}:lease:{lot}" for lot in lot_ids for prefix in PREFIXES]
    if not keys:
        return 0
    import redis
    client = redis.Redis.from_url(url, socket_timeout=3)
    try:
        return int(client.delete(*keys))
    finally:
        client.close()


def node_pid(node: str) -> int | None:
    """The pid in a node id ``host-pid-hex`` (the host may contain dashes)."""
    parts = node.rsplit("-", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


# ====================================================================== processes
class PgServers(Servers):
    """:class:`Servers` that also ends the rest of a stopped server's process group (the
    workers of ``--workers N``) and can SIGKILL one of its own processes."""

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
        super().stop(proc, timeout)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, 0)  # anyone left in the group this benchmark made?
            except (ProcessLookupError, PermissionError):
                return
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            for _ in range(30):
                try:
                    os.killpg(proc.pid, 0)
                except (ProcessLookupError, PermissionError):
                    return
                time.sleep(0.1)

    def kill(self, pid: int) -> subprocess.Popen[bytes]:
        """SIGKILL the started process ``pid`` (refuses any other pid)."""
        for proc in self.procs:
            if proc.pid == pid and proc.poll() is None:
                proc.kill()
                return proc
        raise RuntimeError(f"pid {pid} is not a running process of this benchmark")

    def reap(self, proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if proc in self.procs:
            self.procs.remove(proc)


def children(pid: int) -> list[int]:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(x) for x in f.read().split()]
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry))
    return out


def bidhall_env(dsn: str, redis: str | None) -> dict[str, str]:
    env = dict(os.environ, BIDHALL_RATE="1000000", BIDHALL_BURST="1000000",
               BIDHALL_DATABASE_URL=dsn)
    for name in ("BIDHALL_DATA_DIR", "BIDHALL_REDIS_URL", "BIDHALL_HOST", "BIDHALL_PORT"):
        env.pop(name, None)
    if redis:
        env["BIDHALL_REDIS_URL"] = redis
    return env


def staff_token(dsn: str, tmp: Path) -> str:
    cmd = bin_command("bidhall", "server.cli")
    out = subprocess.run([*cmd, "staff-token", "--data-dir", str(tmp / "token")],
                         env=bidhall_env(dsn, None), check=True, capture_output=True,
                         text=True, cwd=str(REPO), timeout=60)
    return out.stdout.strip().splitlines()[-1]


async def start_bidhall(servers: PgServers, name: str, tmp: Path, dsn: str, *,
                        redis: str | None, workers: int = 1) -> tuple[subprocess.Popen[bytes], int]:
    cmd = bin_command("bidhall", "server.cli")
    if os.environ.get("BENCH_BIDHALL_CMD"):  # a profiler wrapper, as in bid_latency.py
        cmd = os.environ["BENCH_BIDHALL_CMD"].split()
    port = free_port()
    args = [*cmd, "serve", "--port", str(port), "--data-dir", str(tmp / name)]
    if workers > 1:
        args += ["--workers", str(workers)]
    proc = servers.start(name, args, bidhall_env(dsn, redis))
    await wait_listening(port, proc, timeout=60)
    if redis:
        for node in (await healthz_nodes(port, tries=1)).values():
            if node.get("redis_prefix"):
                PREFIXES.add(node["redis_prefix"])
    if workers > 1:  # every worker listens on the shared socket once it has started
        for _ in range(100):
            if len(children(proc.pid)) >= workers:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
    return proc, port


def server_pids(proc: subprocess.Popen[bytes]) -> list[int]:
    """The pids doing a server's work: the process and, with --workers, its workers."""
    return [proc.pid, *children(proc.pid)]


async def healthz_nodes(port: int, tries: int = 24) -> dict[str, dict[str, Any]]:
    """``/healthz`` over fresh connections until each process sharing ``port`` answered:
    node -> {serving, subscribers, lots} (the kernel picks the process per connection)."""
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(tries):
        with contextlib.suppress(OSError, ValueError, msgspec.DecodeError):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = await asyncio.wait_for(reader.read(-1), 5)
            writer.close()
            body = msgspec.json.decode(data.split(b"\r\n\r\n", 1)[1])
            seen[body["node"]] = {k: body.get(k) for k in ("serving", "subscribers", "lots",
                                                           "redis_prefix")}
    return seen


def socket_pids(port: int, pids: list[int]) -> dict[int, int]:
    """Client port -> pid of the server process holding the accepted socket, for the
    established IPv4 connections to ``port`` (which worker the kernel gave each one)."""
    inode_port: dict[str, int] = {}
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if state == "01" and int(local.split(":")[1], 16) == port:
                inode_port[inode] = int(remote.split(":")[1], 16)
    out: dict[int, int] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:["):
                        client = inode_port.get(link[8:-1])
                        if client is not None:
                            out[client] = pid
    return out


# ====================================================================== websocket setup
async def open_bidders(port: int, tokens: list[str], concurrency: int = 64) -> list[Conn]:
    """One connection per token, each greeted (``hello``, then ``welcome``). A process that
    has not yet replayed the lot or the bidder (another process created them) refuses the
    hello for a moment: it is asked again."""
    async def hello(i: int, conn: Conn) -> None:
        for _ in range(100):
            answer = await conn.request(msgspec.json.encode({"type": "hello",
                                                             "token": tokens[i]}))
            if answer.get("type") == "welcome":
                conn.handler = ignore_frame
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"hello refused: {answer}")

    return await connect_many("127.0.0.1", port, len(tokens), after=hello,
                              concurrency=concurrency)


async def open_watchers(port: int, lot_id: str, count: int, concurrency: int = 64
                        ) -> list[Conn]:
    """``count`` anonymous connections subscribed to ``lot_id`` (snapshot received)."""
    frame = b'{"type":"subscribe","lot":"' + lot_id.encode() + b'"}'

    async def subscribe(i: int, conn: Conn) -> None:
        for _ in range(100):
            answer = await conn.request(frame)
            if answer.get("type") == "snapshot":
                conn.handler = ignore_frame
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"subscribe refused: {answer}")

    return await connect_many("127.0.0.1", port, count, after=subscribe,
                              concurrency=concurrency)


# ====================================================================== CPU accounting
def _comm_ticks(names: tuple[str, ...]) -> dict[int, int]:
    """CPU ticks of every live process whose command name is one of ``names``, by pid."""
    out: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(f"/proc/{entry}/stat") as f:
                raw = f.read()
            comm = raw[raw.index("(") + 1:raw.rindex(")")]
            if comm in names:
                fields = raw.rsplit(")", 1)[1].split()
                out[int(entry)] = int(fields[11]) + int(fields[12])
    return out


def _grown(a: dict[int, int], b: dict[int, int]) -> float:
    """CPU seconds used between two ``_comm_ticks`` (a process started meanwhile counts in
    full; one that ended meanwhile is lost)."""
    return sum(max(0, v - a.get(pid, 0)) for pid, v in b.items()) / CLK_TCK


class BoxCpu(CpuMeter):
    """CPU of the client, of a set of server processes (summed; each also on its own),
    of PostgreSQL and Redis (every process of theirs on the box), and of everything else.

    ``pids()`` names the server processes at each sample (workers may come and go).
    ``sample()`` is what :func:`_load.measure` calls; :meth:`last` gives the breakdown of
    the last two samples (measure's window), since ``CpuMeter.cores`` would count
    PostgreSQL and Redis as "other processes"."""

    def __init__(self, pids: Callable[[], list[int]] | None = None) -> None:
        super().__init__(None)
        self.pids = pids or (lambda: [])
        self.samples: list[dict[str, Any]] = []

    def sample(self) -> dict[str, Any]:
        out: dict[str, Any] = super().sample()
        per: dict[int, tuple[float, float]] = {}
        for pid in self.pids():
            with contextlib.suppress(OSError):
                per[pid] = (_ticks(f"/proc/{pid}/stat") / CLK_TCK,
                            _ticks(f"/proc/{pid}/task/{pid}/stat") / CLK_TCK)
        if per:
            out["server"] = sum(v[0] for v in per.values())
            out["server_loop"] = sum(v[1] for v in per.values())
        out["per_pid"] = per
        out["postgres"] = _comm_ticks(("postgres",))
        out["redis"] = _comm_ticks(("redis-server",))
        self.samples = [*self.samples[-1:], out]
        return out

    @staticmethod
    def cores(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        common = set(a.get("per_pid") or {}) & set(b.get("per_pid") or {})
        if common:  # only the server processes alive at both samples (one may be killed)
            a = {**a, "server": sum(a["per_pid"][p][0] for p in common),
                 "server_loop": sum(a["per_pid"][p][1] for p in common)}
            b = {**b, "server": sum(b["per_pid"][p][0] for p in common),
                 "server_loop": sum(b["per_pid"][p][1] for p in common)}
        out: dict[str, Any] = CpuMeter.cores(a, b)
        wall = max(b["wall"] - a["wall"], 1e-9)
        if "postgres" in a:
            out["postgres_cores"] = r3(_grown(a["postgres"], b["postgres"]) / wall)
            out["redis_cores"] = r3(_grown(a["redis"], b["redis"]) / wall)
        if "server_other_threads_cores" in out:
            out["server_other_threads_cores"] = max(0.0, out["server_other_threads_cores"])
        per_a, per_b = a.get("per_pid") or {}, b.get("per_pid") or {}
        if len(per_b) > 1:
            out["per_server_process_cores"] = {
                str(pid): r3((per_b[pid][0] - per_a[pid][0]) / wall)
                for pid in per_b if pid in per_a}
        if "box_busy_cores" in out:
            out["other_processes_cores"] = r3(max(0.0, out["box_busy_cores"]
                                                  - out["client_cores"]
                                                  - out.get("server_cores", 0.0)
                                                  - out.get("postgres_cores", 0.0)
                                                  - out.get("redis_cores", 0.0)))
        return out

    def last(self) -> dict[str, Any]:
        return self.cores(self.samples[0], self.samples[1])


def log_cpu(label: str, cpu: dict[str, Any]) -> None:
    keys = ("client_cores", "server_cores", "postgres_cores", "redis_cores",
            "other_processes_cores")
    log(f"    cpu {label}: " + ", ".join(f"{k.removesuffix('_cores')} {cpu.get(k)}"
                                         for k in keys if k in cpu))


class QuietGate:
    """Before a measured window: wait (a few seconds at most, and ``budget`` seconds over the
    whole run) until processes other than this benchmark's (PostgreSQL and Redis included:
    they are idle for us between windows) use less than ``threshold`` cores. The box may be
    shared; each window reports what others used anyway, and a disturbed one is run again."""

    def __init__(self, mine: Callable[[], list[int]], budget: float, each: float = 6.0,
                 threshold: float = 0.3) -> None:
        self.mine, self.budget, self.each, self.threshold = mine, budget, each, threshold
        self.waited = 0.0

    def others(self, cpu: dict[str, Any]) -> float:
        return float(cpu.get("other_processes_cores", 0.0) + cpu.get("postgres_cores", 0.0)
                     + cpu.get("redis_cores", 0.0))

    async def wait(self, label: str) -> float:
        if self.budget - self.waited <= 0:
            return 0.0
        meter = BoxCpu(self.mine)
        t0 = time.monotonic()
        deadline = t0 + min(self.each, self.budget - self.waited)
        said = False
        while True:
            a = meter.sample()
            await asyncio.sleep(0.25)
            other = self.others(BoxCpu.cores(a, meter.sample()))
            if other < self.threshold or time.monotonic() >= deadline:
                break
            if not said:
                log(f"  ({label}: other processes use {other:.2f} cores; waiting up to "
                    f"{deadline - time.monotonic():.0f}s for a quieter box)")
                said = True
        spent = time.monotonic() - t0
        self.waited += spent
        return r3(spent)
