"""stream_relay.py's parts: the relay under test (a bidhall server and the publisher), the
viewer processes that load it, and the CPU each of them uses."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# Sibling modules: the benchmark is run as a script, so this directory is on sys.path.
from _common import HERE, REPO
from _procs import RawHttp, Servers, bin_command, free_port
from _procs import wait_listening as wait_port
from _stats import CLK_TCK, CpuMeter, _ticks, r3
from _stream_peers import PacketTrack, http, negotiate, prefer
from aiortc import RTCPeerConnection

LOT = "stream-bench-720p"
CLOCK_LOT = "stream-bench-clock"


# ====================================================================== CPU accounting
class Meter:
    """CPU of the server (all threads; its event-loop thread alone), of this process (the
    publishers), of each viewer process, and of the box."""

    def __init__(self, server_pid: int | None, worker_pids: list[int]) -> None:
        self.base = CpuMeter(server_pid)
        self.workers = worker_pids

    def sample(self) -> dict[str, Any]:
        out: dict[str, Any] = self.base.sample()
        ws = []
        for pid in self.workers:
            try:
                ws.append((_ticks(f"/proc/{pid}/stat") / CLK_TCK,
                           _ticks(f"/proc/{pid}/task/{pid}/stat") / CLK_TCK))
            except OSError:
                ws.append((0.0, 0.0))
        out["workers"] = ws
        return out

    @staticmethod
    def cores(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        c = CpuMeter.cores(a, b)
        wall = max(b["wall"] - a["wall"], 1e-9)
        workers = [r3((y[0] - x[0]) / wall) for x, y in zip(a["workers"], b["workers"],
                                                            strict=True)]
        loops = [r3((y[1] - x[1]) / wall) for x, y in zip(a["workers"], b["workers"],
                                                          strict=True)]
        out = {"server_cores": c.get("server_cores"),
               "server_event_loop_thread_cores": c.get("server_event_loop_thread_cores"),
               "server_other_threads_cores": max(0.0, c.get("server_other_threads_cores",
                                                            0.0)),
               "publisher_process_cores": c["client_cores"],
               "viewer_process_cores": workers,
               "viewer_process_event_loop_cores": loops,
               "clients_total_cores": r3(c["client_cores"] + sum(workers))}
        if "box_busy_cores" in c:
            out["box_busy_cores"] = c["box_busy_cores"]
            out["other_processes_cores"] = r3(max(0.0, c["box_busy_cores"]
                                                  - out["clients_total_cores"]
                                                  - (c.get("server_cores") or 0.0)))
            out["steal_cores"] = c.get("steal_cores")
        return out


# ====================================================================== viewer processes
class Worker:
    """One viewer process: JSON lines over a TCP connection it opened to us."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        self.name, self.proc = name, proc
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.viewers = 0
        self.lock = asyncio.Lock()

    async def call(self, timeout: float = 180.0, **req: Any) -> dict[str, Any]:
        assert self.reader is not None and self.writer is not None
        async with self.lock:
            self.writer.write(json.dumps(req).encode() + b"\n")
            await self.writer.drain()
            line = await asyncio.wait_for(self.reader.readline(), timeout)
        if not line:
            raise RuntimeError(f"{self.name} (pid {self.proc.pid}) went away")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.name}: {req.get('op')}: {reply['error']}")
        return reply


class Pool:
    """The viewer processes."""

    def __init__(self, servers: Servers) -> None:
        self.servers = servers
        self.workers: list[Worker] = []
        self.control: asyncio.Server | None = None

    async def start(self, count: int) -> None:
        pending: dict[str, Worker] = {}
        arrived = asyncio.Event()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                             ) -> None:
            hello = json.loads(await reader.readline())
            worker = pending.pop(hello["hello"])
            worker.reader, worker.writer = reader, writer
            if not pending:
                arrived.set()

        self.control = await asyncio.start_server(on_connect, "127.0.0.1", 0, limit=1 << 24)
        port = self.control.sockets[0].getsockname()[1]
        for i in range(count):
            name = f"viewers{i}"
            proc = self.servers.start(name, [sys.executable, str(HERE / "_stream_peers.py"),
                                             "viewers", "--control", str(port),
                                             "--name", name], dict(os.environ))
            worker = Worker(name, proc)
            pending[name] = worker
            self.workers.append(worker)
        await asyncio.wait_for(arrived.wait(), 60)

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self.workers]

    @property
    def viewers(self) -> int:
        return sum(w.viewers for w in self.workers)

    async def add(self, total: int, port: int, path: str, codec: str, fps: int,
                  concurrency: int) -> dict[str, Any]:
        """Open viewers until there are ``total``, keeping the processes balanced."""
        shares = [total // len(self.workers) + (i < total % len(self.workers))
                  for i in range(len(self.workers))]
        calls = [(w, s - w.viewers) for w, s in zip(self.workers, shares, strict=True)
                 if s > w.viewers]
        replies = await asyncio.gather(*(
            w.call(op="add", n=n, port=port, path=path, codec=codec, fps=fps,
                   concurrency=concurrency) for w, n in calls))
        failed, errors = 0, []
        for (w, _), reply in zip(calls, replies, strict=True):
            w.viewers = reply["viewers"]
            failed += reply["failed"]
            errors += reply["errors"]
        return {"failed": failed, "errors": errors[:3],
                "seconds": max((r["seconds"] for r in replies), default=0.0)}

    async def all(self, **req: Any) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(w.call(**req) for w in self.workers)))

    async def close_viewers(self) -> None:
        await self.all(op="close")
        for w in self.workers:
            w.viewers = 0

    async def stop(self) -> None:
        for w in self.workers:
            if w.writer is not None:
                with contextlib.suppress(Exception):
                    w.writer.write(b'{"op": "exit"}\n')
                    await w.writer.drain()
        for w in self.workers:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(w.proc.wait, 15)
            self.servers.stop(w.proc)
        if self.control is not None:
            self.control.close()


# ====================================================================== the server
class Bench:
    def __init__(self, args: argparse.Namespace, servers: Servers, tmp: Path) -> None:
        self.args, self.servers, self.tmp = args, servers, tmp
        self.port = 0
        self.token = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.pool = Pool(servers)
        self.meter: Meter | None = None
        self.track: PacketTrack | None = None
        self.publisher: RTCPeerConnection | None = None
        self.publisher_resource = ""
        self.quiet_left = args.quiet_budget
        self.retry_left = args.retry_budget
        self.base_server_cores = 0.0
        self.rtp_packets_per_s = 0.0

    def path(self, lot: str, what: str) -> str:
        return f"/api/streams/lot/{lot}/{what}"

    async def start_server(self) -> None:
        data = self.tmp / "bidhall-data"
        env = dict(os.environ, BIDHALL_MAX_VIEWERS="2000")
        for name in ("BIDHALL_DATABASE_URL", "BIDHALL_DATA_DIR", "BIDHALL_REDIS_URL",
                     "BIDHALL_HOST", "BIDHALL_PORT", "BIDHALL_STREAM_REDIRECT",
                     "BIDHALL_RELAY_PEERS", "BIDHALL_ICE_SERVERS"):
            env.pop(name, None)
        cmd = bin_command("bidhall", "server.cli")
        self.token = subprocess.run([*cmd, "staff-token", "--data-dir", str(data)], env=env,
                                    check=True, capture_output=True, text=True,
                                    cwd=str(REPO), timeout=60).stdout.strip().splitlines()[-1]
        self.port = free_port()
        self.proc = self.servers.start("bidhall", [
            sys.executable, str(HERE / "_stream_peers.py"), "serve", "--port", str(self.port),
            "--data-dir", str(data)], env)
        await wait_port(self.port, self.proc, timeout=60)
        now_ms = int(time.time() * 1000)
        async with RawHttp(self.port, self.token, 1) as api:
            for lot in (LOT, CLOCK_LOT):
                await api.post("/api/lots", {
                    "title": f"benchmark {lot}", "lot_id": lot, "preset": "qinzhou",
                    "start_price": 1_000_000, "deposit": 1, "listing_increment": 1,
                    "listing_start": now_ms - 60_000, "listing_end": now_ms + 3600_000})

    async def viewers_on_server(self, lot: str) -> int | None:
        with contextlib.suppress(Exception):
            status, _, body = await http("GET", self.port, f"/api/streams/lot/{lot}")
            if status == 200:
                return int(json.loads(body)["viewers"])
        return None

    async def publish(self, frames: list[Any], fps: int) -> None:
        pc = RTCPeerConnection()
        self.track = PacketTrack(frames, fps)
        prefer(pc.addTransceiver(self.track, direction="sendonly"), "video/H264")
        self.publisher = pc
        self.publisher_resource = await negotiate(pc, self.port, self.path(LOT, "whip"),
                                                  self.token)
        for _ in range(100):
            if self.track.seq > fps:
                return
            await asyncio.sleep(0.1)
        raise RuntimeError("the publisher did not start sending")

    async def unpublish(self) -> None:
        if self.publisher is not None:
            if self.publisher_resource:
                with contextlib.suppress(Exception):
                    await http("DELETE", self.port, self.publisher_resource,
                               token=self.token, timeout=10)
            await self.publisher.close()
            self.publisher = None
