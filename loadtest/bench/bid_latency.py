"""Benchmark: durable bid acks, throughput and fan-out of bidhall, beside bare baselines.

    .venv/bin/python loadtest/bench/bid_latency.py            # full run, 2-4 minutes
    .venv/bin/python loadtest/bench/bid_latency.py --quick    # short smoke run
    .venv/bin/python loadtest/bench/bid_latency.py --help     # windows, counts, py-spy

Prints ONE JSON document to stdout (progress goes to stderr). Everything runs on
127.0.0.1 with bounded counts and times; servers run as subprocesses in a temp dir
that is removed afterwards (also on failure and Ctrl+C).

What is measured (the JSON's ``load_shapes`` says the same in figures):

1. Durable bid acks: a bid's ``ack`` is sent only after its batch is committed to
   SQLite (WAL, ``synchronous=FULL``). Latency = client clock from just before the bid
   frame is written to the socket to when the answer frame is read. For 1, 100 and
   1,000 concurrent bidders on one lot and spread over 100 lots (bidder *i* on lot
   ``i % 100``), under two load shapes:

   - ``latency``: open-loop-ish. Each bidder waits an exponential think time after
     each answer (mean ``max(N / 1000 s, 5 ms)``: about 1,000 bids/s offered in total,
     far below the server's capacity) before its next bid.
   - ``saturation``: closed loop. Each bidder sends its next bid as soon as the
     previous one is answered (one bid in flight per bidder).

   Amounts come from one counter shared by every bidder of the client
   (``start_price + k``, increment 1, preset ``qinzhou``), so amounts rise in send
   order; bids reordered on the way in are rejected ``too_low``. Acks and each
   rejection code are counted separately. The server refuses a bid from the current
   leader (``already_leading``): each benchmark bidder is therefore a pair of qualified
   bidders (two connections) that take turns after each ack, which makes
   ``already_leading`` impossible (the count is reported, and should be 0).

2. Fan-out: 1,000 anonymous watchers subscribe to one lot; one bidder bids at a fixed
   interval. Delay = receive time of the ``bid`` event at a watcher minus the send
   time of that bid (so it includes the durable commit). Reported over all
   (watcher, bid) pairs and for the last watcher of each bid.

3. Baselines, same run, same client code: an echo server and a broadcast server
   (``_baselines.py``) on the same stack (Starlette + uvicorn, websockets-sansio, no
   deflate, same uvicorn options), plus the raw cost of one SQLite WAL+FULL commit
   on the same filesystem (the durability floor). Ratios are bidhall / baseline.

For each bidder count the runs of bidhall (one lot, 100 lots) and of the echo server
follow each other, so a ratio compares windows seconds apart. Each run also reports
``longest_gap_between_answers_ms`` (the longest stretch of its window without any
answer: a server pause, e.g. a full garbage collection, shows there) and the CPU used
by the client, the server (event-loop thread and other threads) and by other
processes on the box; a window disturbed by other processes is run again once.

The client is deliberately lean since it shares the two cores with the server: a
minimal RFC 6455 client on asyncio protocols (uvloop when available), msgspec
decoding, no per-message allocation beyond the frame, GC paused while measuring.
Client and server CPU use per run are reported, so a client-bound figure shows.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

# Sibling modules: this file is run as a script, so its directory is on sys.path.
from _common import FAN_LOT, HERE, HOT_LOT, REPO, SPREAD_LOTS, START_PRICE, perf
from _load import Slot, Target, fanout, least_noisy, run_matrix
from _procs import (
    RawHttp,
    Servers,
    bin_command,
    environment,
    free_port,
    make_pyspy,
    raise_fd_limit,
    run_bench,
    sqlite_commit_floor,
    wait_for_quiet,
    wait_listening,
)
from _report import build_report
from _stats import T0, CpuMeter, log, r3
from _wsclient import Conn, close_all, connect_many, decode_reply, ignore_frame


# ====================================================================== phases
class Bidhall:
    """The bidhall server under test, its lots, qualified bidders and connections."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.cpu = CpuMeter(None)
        self.conns: list[Conn] = []
        self.hot: list[Slot] = []
        self.spread: list[Slot] = []
        self.fan_pair: list[Conn] = []
        self.info: dict[str, Any] = {}


async def start_bidhall(args: argparse.Namespace, servers: Servers, tmp: Path,
                        counts: list[int]) -> Bidhall:
    bh = Bidhall()
    data_dir = tmp / "bidhall-data"
    env = dict(os.environ, BIDHALL_RATE="1000000", BIDHALL_BURST="1000000")
    env.pop("BIDHALL_DATABASE_URL", None)
    env.pop("BIDHALL_DATA_DIR", None)
    cmd = bin_command("bidhall", "server.cli")
    if os.environ.get("BENCH_BIDHALL_CMD"):  # e.g. a profiler wrapper; see --help
        cmd = os.environ["BENCH_BIDHALL_CMD"].split()
    token = subprocess.run([*cmd, "staff-token", "--data-dir", str(data_dir)], env=env,
                           check=True, capture_output=True, text=True, cwd=str(REPO)
                           ).stdout.strip().splitlines()[-1]
    bh.port = port = free_port()
    bh.proc = proc = servers.start("bidhall", [*cmd, "serve", "--port", str(port),
                                               "--data-dir", str(data_dir)], env)
    await wait_listening(port, proc)
    bh.cpu = CpuMeter(proc.pid)
    max_n = max(counts)
    per_lot = -(-max_n // len(SPREAD_LOTS))  # bidders per spread lot (10 for 1,000)
    bh.info = {"server_pid": proc.pid, "env": {"BIDHALL_RATE": "1000000",
                                                "BIDHALL_BURST": "1000000"}}

    # ---- lots and qualified bidders (two identities per benchmark bidder)
    t_setup = perf()
    now = int(time.time() * 1000)
    fields = {"preset": "qinzhou", "start_price": START_PRICE, "deposit": 1,
              "listing_increment": 1, "listing_start": now - 60_000,
              "listing_end": now + 2 * 3600_000}
    async with RawHttp(port, token, args.http_concurrency) as http:

        async def create(lot_id: str) -> None:
            await http.post("/api/lots", {"title": f"benchmark {lot_id}", "lot_id": lot_id,
                                          **fields})

        await asyncio.gather(*(create(x) for x in [HOT_LOT, FAN_LOT, *SPREAD_LOTS]))

        async def qualify(lot_id: str, bidder: str) -> str:
            answer = await http.post(f"/api/lots/{lot_id}/bidders",
                                     {"bidder": bidder, "deposit_ref": "BENCH-DEPOSIT"})
            token_: str = answer["token"]
            return token_

        hot_ids = [(HOT_LOT, f"hot-{i}-{j}") for i in range(max_n) for j in (0, 1)]
        spread_ids = [(SPREAD_LOTS[i % len(SPREAD_LOTS)], f"spread-{i}-{j}")
                      for i in range(max_n) for j in (0, 1)]
        fan_ids = [(FAN_LOT, f"fan-{j}") for j in (0, 1)]
        everyone = hot_ids + spread_ids + fan_ids
        t_q = perf()
        tokens = await asyncio.gather(*(qualify(lot, b) for lot, b in everyone))
        q_s = perf() - t_q
        log(f"qualified {len(everyone)} bidders on {2 + len(SPREAD_LOTS)} lots in {q_s:.1f}s "
            f"({len(everyone) / q_s:.0f}/s over HTTP, {args.http_concurrency} concurrent)")
    bh.info["setup"] = {"lots": 2 + len(SPREAD_LOTS), "qualified_bidders": len(everyone),
                        "qualify_per_s": r3(len(everyone) / q_s),
                        "qualified_per_spread_lot": 2 * per_lot}

    # ---- connections: hello, wait for welcome
    async def hello(i: int, conn: Conn) -> None:
        welcome = await conn.request(msgspec.json.encode({"type": "hello",
                                                          "token": tokens[i]}))
        if welcome.get("type") != "welcome":
            raise RuntimeError(f"hello refused: {welcome}")
        conn.handler = ignore_frame

    t_c = perf()
    bh.conns = conns = await connect_many("127.0.0.1", port, len(everyone), after=hello,
                                          concurrency=args.connect_concurrency)
    c_s = perf() - t_c
    log(f"opened {len(conns)} bidder connections (hello + welcome) in {c_s:.1f}s")
    bh.info["setup"]["bidder_connections"] = len(conns)
    bh.info["setup"]["connect_per_s"] = r3(len(conns) / c_s)
    nh = len(hot_ids)
    bh.hot = [Slot(conns[2 * i:2 * i + 2], HOT_LOT) for i in range(max_n)]
    bh.spread = [Slot(conns[nh + 2 * i:nh + 2 * i + 2], SPREAD_LOTS[i % len(SPREAD_LOTS)])
                 for i in range(max_n)]
    bh.fan_pair = conns[nh + len(spread_ids):]
    bh.info["setup"]["seconds"] = r3(perf() - t_setup)
    return bh


async def bidhall_fanout(bh: Bidhall, args: argparse.Namespace,
                         pyspy: Callable[[str, float], Any] | None) -> dict[str, Any]:
    """1,000 anonymous watchers of FAN_LOT; one bidder (a pair) bids at a fixed interval."""
    async def subscribe(i: int, conn: Conn) -> None:
        snap = await conn.request(b'{"type":"subscribe","lot":"' + FAN_LOT.encode() + b'"}')
        if snap.get("type") != "snapshot":
            raise RuntimeError(f"subscribe refused: {snap}")
        conn.handler = ignore_frame

    t_c = perf()
    watchers = await connect_many("127.0.0.1", bh.port, args.watchers, after=subscribe,
                                  concurrency=args.connect_concurrency)
    log(f"{len(watchers)} watchers subscribed to {FAN_LOT} in {perf() - t_c:.1f}s")
    state = {"cur": 0}
    loop = asyncio.get_running_loop()

    def fan_answer(conn: Conn, t: float, payload: bytes) -> None:
        if conn.waiter is not None and not conn.waiter.done():
            conn.waiter.set_result((t, decode_reply(payload)))

    for c in bh.fan_pair:
        c.handler = fan_answer
    fan_codes: Counter[str] = Counter()

    async def send_bid(i: int, amount: int) -> float | None:
        conn = bh.fan_pair[state["cur"]]
        fut = loop.create_future()
        conn.waiter = fut
        conn.send(b'{"type":"bid","lot":"%s","amount":%d,"bid_id":"f%d"}'
                  % (FAN_LOT.encode(), amount, amount))
        t, reply = await asyncio.wait_for(fut, 10)
        conn.waiter = None
        if reply.type == "ack":
            state["cur"] ^= 1
            return float(t)
        fan_codes[reply.code or reply.type] += 1
        return None

    async def attempt() -> dict[str, Any]:
        profiler = (pyspy("bidhall fanout", args.fanout_bids * args.fanout_interval)
                    if pyspy is not None else None)
        fan_codes.clear()
        c0 = bh.cpu.sample()
        fan = await fanout(watchers, send_bid, bids=args.fanout_bids, warm=5,
                           interval=args.fanout_interval, lot=FAN_LOT)
        fan["cpu"] = CpuMeter.cores(c0, bh.cpu.sample())
        fan["bid_rejects"] = dict(fan_codes)
        if profiler is not None:
            await profiler
        return fan

    fan = await least_noisy(attempt, args, "bidhall fan-out")
    log(f"  bidhall fan-out: all pairs {fan['delivery_ms']}, last watcher "
        f"{fan['last_watcher_ms']}, bidder ack {fan['bidder_ack_ms']}, "
        f"missing {fan['missing_deliveries']}, cpu {fan['cpu']}")
    fan["unexpected_disconnects"] = sum(c.unexpected_close for c in watchers)
    close_all(watchers)
    return fan


async def start_echo(args: argparse.Namespace, servers: Servers, counts: list[int]
                     ) -> tuple[subprocess.Popen[bytes], CpuMeter, list[Conn], list[Slot]]:
    port = free_port()
    proc = servers.start("echo", [sys.executable, str(HERE / "_baselines.py"), "echo",
                                  "--port", str(port)], dict(os.environ))
    await wait_listening(port, proc)
    max_n = max(counts)
    conns = await connect_many("127.0.0.1", port, 2 * max_n,
                               concurrency=args.connect_concurrency)
    log(f"opened {len(conns)} echo connections")
    slots = [Slot(conns[2 * i:2 * i + 2], HOT_LOT) for i in range(max_n)]
    return proc, CpuMeter(proc.pid), conns, slots


async def broadcast_phase(args: argparse.Namespace, servers: Servers) -> dict[str, Any]:
    port = free_port()
    proc = servers.start("broadcast", [sys.executable, str(HERE / "_baselines.py"),
                                       "broadcast", "--port", str(port)], dict(os.environ))
    await wait_listening(port, proc)
    cpu = CpuMeter(proc.pid)
    watchers = await connect_many("127.0.0.1", port, args.watchers,
                                  concurrency=args.connect_concurrency)
    sender = (await connect_many("127.0.0.1", port, 1))[0]
    await asyncio.sleep(0.5)  # let the server register every connection
    log(f"opened {len(watchers)} broadcast receivers and one sender")
    # a frame shaped like bidhall's public bid event
    fmt = (b'{"type":"event","lot":"' + FAN_LOT.encode() + b'","seq":%d,"kind":"bid",'
           b'"at":1700000000000,"paddle":4821,"amount":%d,"ends_at":null}')

    async def send(i: int, amount: int) -> None:
        sender.send(fmt % (i, amount))

    async def attempt() -> dict[str, Any]:
        c0 = cpu.sample()
        out = await fanout(watchers, send, bids=args.fanout_bids, warm=5,
                           interval=args.fanout_interval, lot=FAN_LOT)
        out["cpu"] = CpuMeter.cores(c0, cpu.sample())
        return out

    out = await least_noisy(attempt, args, "broadcast fan-out")
    log(f"  broadcast fan-out: all pairs {out['delivery_ms']}, last watcher "
        f"{out['last_watcher_ms']}, missing {out['missing_deliveries']}, cpu {out['cpu']}")
    out["unexpected_disconnects"] = sum(c.unexpected_close for c in watchers)
    close_all([*watchers, sender])
    await asyncio.sleep(0.3)
    servers.stop(proc)
    return out


# ====================================================================== main
async def amain(args: argparse.Namespace, servers: Servers, tmp: Path) -> dict[str, Any]:
    counts = [int(x) for x in args.bidders.split(",")]
    env = environment()
    fds = raise_fd_limit(max(8192, 8 * max(counts) + 2 * args.watchers + 1000))
    env["fd_limit"] = fds
    log(f"fd limit {fds}; loop {env['client_event_loop']}; commit {env['commit'][:12]}")
    if args.quiet_wait > 0:
        env["other_processes_cores_at_start"] = await wait_for_quiet(args.quiet_wait)
    floor = sqlite_commit_floor(tmp)
    log(f"SQLite WAL+FULL commit floor: {floor['commit_ms']}")
    only = set(args.only.split(","))
    results: dict[str, Any] = {}
    targets: list[Target] = []
    bh: Bidhall | None = None
    echo_proc = None
    pyspy = None
    if "bidhall" in only:
        bh = await start_bidhall(args, servers, tmp, counts)
        assert bh.proc is not None
        pyspy = make_pyspy(args, bh.proc.pid, "bidhall")
        targets.append(Target("bidhall", bh.cpu, {"one_lot": bh.hot, "100_lots": bh.spread},
                              pyspy))
    if "echo" in only:
        echo_proc, echo_cpu, echo_conns, echo_slots = await start_echo(args, servers, counts)
        targets.append(Target("echo", echo_cpu, {"one_lot": echo_slots}))
    gc.collect()
    gc.freeze()  # the client's long-lived objects: keep them out of its own collections
    if targets:
        await run_matrix(targets, counts, args)
    if echo_proc is not None:
        results["echo"] = {"server_pid": echo_proc.pid, **targets[-1].results,
                           "unexpected_disconnects": sum(c.unexpected_close
                                                         for c in echo_conns)}
        close_all(echo_conns)
        await asyncio.sleep(0.3)
        servers.stop(echo_proc)
    if bh is not None:
        assert bh.proc is not None
        results["bidhall"] = {**bh.info, **targets[0].results}
        results["bidhall"]["unexpected_disconnects"] = sum(c.unexpected_close
                                                           for c in bh.conns)
        close_all(bh.conns[:len(bh.conns) - len(bh.fan_pair)])
        await asyncio.sleep(0.5)
        results["bidhall"]["fanout"] = await bidhall_fanout(bh, args, pyspy)
        close_all(bh.fan_pair)
        await asyncio.sleep(0.3)
        servers.stop(bh.proc)
        log("bidhall stopped")
    if "broadcast" in only:
        results["broadcast"] = await broadcast_phase(args, servers)
    env["seconds_total"] = r3(perf() - T0)
    return build_report(env, args, counts, results, floor)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="BENCH_BIDHALL_CMD (environment): command run instead of .venv/bin/bidhall, "
               "with the same arguments (e.g. a wrapper that profiles the server).")
    p.add_argument("--quick", action="store_true", help="short windows (smoke run, ~1 min)")
    p.add_argument("--bidders", default="1,100,1000", help="bidder counts (default 1,100,1000)")
    p.add_argument("--watchers", type=int, default=1000)
    p.add_argument("--warmup", type=float, default=1.0, help="seconds before each window")
    p.add_argument("--lat-seconds", type=float, default=4.0, help="latency-shape window")
    p.add_argument("--sat-seconds", type=float, default=3.0, help="saturation window")
    p.add_argument("--retries", type=int, default=1,
                   help="extra attempts of a window in which other processes used "
                        ">= --noisy cores (the least disturbed attempt is kept)")
    p.add_argument("--noisy", type=float, default=0.5,
                   help="cores used by other processes that make a window noisy")
    p.add_argument("--fanout-bids", type=int, default=150)
    p.add_argument("--fanout-interval", type=float, default=0.06, help="seconds between bids")
    p.add_argument("--http-concurrency", type=int, default=32)
    p.add_argument("--connect-concurrency", type=int, default=64)
    p.add_argument("--only", default="bidhall,echo,broadcast",
                   help="phases to run (comma separated)")
    p.add_argument("--py-spy", metavar="DIR", default="",
                   help="record a py-spy flame graph of bidhall in each saturation run")
    p.add_argument("--py-spy-format", default="flamegraph",
                   choices=("flamegraph", "raw", "speedscope"))
    p.add_argument("--quiet-wait", type=float, default=20.0,
                   help="seconds to wait at most for other processes to calm down (0: no)")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (logs, data)")
    args = p.parse_args(argv)
    if args.quick:
        args.warmup, args.lat_seconds, args.sat_seconds = 0.5, 1.5, 1.5
        args.fanout_bids, args.retries, args.quiet_wait = 40, 0, 0.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bidhall-bench-"))
    servers = Servers(tmp)
    return run_bench(lambda: amain(args, servers, tmp), servers, tmp, keep_tmp=args.keep_tmp,
                     logs=("bidhall", "echo", "broadcast"))


if __name__ == "__main__":
    sys.exit(main())
