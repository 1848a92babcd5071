"""Benchmark: bidhall on PostgreSQL and as a cluster, each figure beside a baseline.

    .venv/bin/python loadtest/bench/pg_cluster.py            # full run, ~2 min (3 on a busy box)
    .venv/bin/python loadtest/bench/pg_cluster.py --quick    # ~1-minute smoke run
    .venv/bin/python loadtest/bench/pg_cluster.py --help     # windows, counts, phases

Prints ONE JSON document to stdout (progress on stderr). Needs PostgreSQL at
127.0.0.1:5432 (user postgres, trust) and Redis at 127.0.0.1:6379. Everything runs on
127.0.0.1 with bounded counts and times; the run creates its own database
``bidhall_bench_<random>`` (dropped WITH (FORCE) at the end), lots named
``pgb<random>-*`` (their lease keys are deleted at the end) and a temp dir
for the servers' logs; all of it is removed also on failure and Ctrl+C.

Phases (the JSON's ``load_shapes`` gives the figures):

1. ``latency``: durable bid ack latency of ``bidhall serve`` on PostgreSQL (one process,
   no Redis), 1 and 100 bidders on one lot under bid_latency.py's think-time shape,
   beside the same number of asyncpg clients each doing one INSERT + COMMIT
   (synchronous_commit on) in the same database right after.
2. ``throughput``: one hot lot in closed loop, 100 and 1,000 bidders: bidhall (group
   commit) beside the row-lock baseline ``_pgrowlock.py`` (one transaction per bid with
   SELECT ... FOR UPDATE, the way national land-auction systems serialise bids).
3. ``fanout``: bid events delivered to 1,000 watchers, ``--workers 1`` and ``--workers 2``
   (PostgreSQL + Redis), beside the bare broadcast server of ``_baselines.py``.
4. ``takeover``: three processes; the owner of a lot with ongoing bids (through another
   process) is SIGKILLed; time to the first ack by the new owner, three times.

The websocket client, statistics, process and load helpers are bid_latency.py's
(``_wsclient``, ``_stats``, ``_procs``, ``_load``); CPU of the client, the servers,
PostgreSQL and Redis is reported per run (``_pgenv.BoxCpu``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import os
import secrets
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg

# Sibling modules: this file is run as a script, so its directory is on sys.path.
from _common import HERE, START_PRICE, perf
from _load import Slot, least_noisy, measure, think_mean_for
from _pgenv import (
    REDIS_URL,
    BoxCpu,
    PgAdmin,
    PgServers,
    QuietGate,
    RedisKeys,
    delete_leases,
    healthz_nodes,
    log_cpu,
    node_pid,
    open_bidders,
    open_watchers,
    server_pids,
    socket_pids,
    staff_token,
    start_bidhall,
)
from _pgload import Fan, TakeoverBidder, bare_insert, fan_run, poll_gone, poll_lease
from _pgreport import build_report
from _procs import (
    RawHttp,
    environment,
    free_port,
    make_pyspy,
    raise_fd_limit,
    run_bench,
    wait_for_quiet,
    wait_listening,
)
from _stats import T0, log, r3, summary_ms
from _wsclient import close_all, connect_many


class Run:
    """What the phases share: arguments, the database, Redis keys, processes, the staff token."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args, self.tmp = args, tmp
        self.tag = secrets.token_hex(3)
        self.pg = PgAdmin(self.tag)
        self.servers = PgServers(tmp)
        self.keys: RedisKeys | None = None
        self.lots: set[str] = set()  # every lot created: their leases are deleted at the end
        self.token = ""
        self.gate = QuietGate(lambda: [pid for p in self.servers.procs for pid in server_pids(p)],
                              budget=args.quiet_budget)

    def lot(self, name: str) -> str:
        lot_id = f"pgb{self.tag}-{name}"
        self.lots.add(lot_id)
        return lot_id


async def create_lot(http: RawHttp, lot_id: str) -> None:
    now = int(time.time() * 1000)
    await http.post("/api/lots", {"title": f"benchmark {lot_id}", "lot_id": lot_id,
                                  "preset": "qinzhou", "start_price": START_PRICE, "deposit": 1,
                                  "listing_increment": 1, "listing_start": now - 60_000,
                                  "listing_end": now + 2 * 3600_000})


async def qualify(http: RawHttp, lot_id: str, bidders: list[str]) -> list[str]:
    """Qualify ``bidders``; a process that has not yet heard of the lot (another process
    created it a moment ago) answers unknown_lot: asked again."""
    async def one(bidder: str) -> str:
        for attempt in range(100):
            try:
                answer = await http.post(f"/api/lots/{lot_id}/bidders",
                                         {"bidder": bidder, "deposit_ref": "BENCH-DEPOSIT"})
                return str(answer["token"])
            except RuntimeError as exc:
                if "unknown_lot" not in str(exc) or attempt == 99:
                    raise
                await asyncio.sleep(0.1)
        raise AssertionError("unreachable")
    return list(await asyncio.gather(*(one(b) for b in bidders)))


async def measured(run: Run, slots: list[Slot], n: int, closed: bool, cpu: BoxCpu,
                   label: str, pyspy: Any = None) -> dict[str, Any]:
    """``_load.measure`` on the first ``n`` slots, least disturbed of ``--retries`` + 1."""
    a = run.args

    async def attempt() -> dict[str, Any]:
        waited = await run.gate.wait(label)
        out = await measure(slots[:n], closed_loop=closed, think_mean=think_mean_for(n),
                            warmup=a.warmup, duration=a.sat_seconds if closed else a.lat_seconds,
                            cpu=cpu, label=label, pyspy=pyspy)
        out["cpu"] = cpu.last()  # with PostgreSQL and Redis apart from "other processes"
        out["waited_for_quiet_box_s"] = waited
        log_cpu(label, out["cpu"])
        return out

    result = await least_noisy(attempt, a, label)
    return {"bidders": n, "connections": 2 * n, **result}


# ====================================================================== phases 1 and 2
async def phase_single(run: Run, phases: set[str]) -> dict[str, Any]:
    a, out = run.args, dict[str, Any]()
    lat_counts = [int(x) for x in a.lat_bidders.split(",")] if "latency" in phases else []
    sat_counts = [int(x) for x in a.sat_bidders.split(",")] if "throughput" in phases else []
    max_n = max(lat_counts + sat_counts)
    proc, port = await start_bidhall(run.servers, "bidhall-pg", run.tmp, run.pg.dsn, redis=None)
    cpu = BoxCpu(lambda: [proc.pid])
    hot = run.lot("hot")
    await run.pg.baseline_tables(hot, START_PRICE, 1)
    names = [f"hot-{i}-{j}" for i in range(max_n) for j in (0, 1)]
    t0 = perf()
    async with RawHttp(port, run.token, a.http_concurrency) as http:
        await create_lot(http, hot)
        tokens = await qualify(http, hot, names)
    conns = await open_bidders(port, tokens, a.connect_concurrency)
    slots = [Slot(conns[2 * i:2 * i + 2], hot) for i in range(max_n)]
    log(f"bidhall (PostgreSQL, one process, pid {proc.pid}): {len(names)} bidders qualified "
        f"and connected in {perf() - t0:.1f}s")
    setup = {"server_pid": proc.pid, "lot": hot, "qualified_bidders": len(names),
             "bidder_connections": len(conns), "setup_s": r3(perf() - t0)}
    gc.collect()
    gc.freeze()
    pyspy = make_pyspy(a, proc.pid, "bidhall-pg")
    client_cpu = BoxCpu()
    if lat_counts:
        out["ack_latency"] = lat = {}
        for n in lat_counts:
            b = await measured(run, slots, n, False, cpu, f"bidhall latency bidders={n}")
            free = await run.pg.free_connections()

            async def bare(n: int = n, free: int = free) -> dict[str, Any]:
                label = f"bare INSERT+COMMIT clients={n}"
                waited = await run.gate.wait(label)
                r = await bare_insert(run.pg.dsn, n, free, closed_loop=False,
                                      think_mean=think_mean_for(n), warmup=a.warmup,
                                      duration=a.lat_seconds, cpu=client_cpu, label=label)
                return {**r, "waited_for_quiet_box_s": waited}

            lat[str(n)] = {"bidhall": b, "bare_insert_commit": await least_noisy(
                bare, a, f"bare insert {n}")}
        out["bare_insert_commit_closed_loop"] = await bare_insert(
            run.pg.dsn, a.rowlock_pool, a.rowlock_pool, closed_loop=True, think_mean=0,
            warmup=a.warmup, duration=a.sat_seconds, cpu=client_cpu,
            label=f"bare INSERT+COMMIT closed loop, {a.rowlock_pool} connections")
    if sat_counts:
        rl_port = free_port()
        rl = run.servers.start("rowlock", [sys.executable, str(HERE / "_pgrowlock.py"),
                                           "--port", str(rl_port), "--dsn", run.pg.dsn,
                                           "--pool", str(a.rowlock_pool)], dict(os.environ))
        await wait_listening(rl_port, rl)
        rl_cpu = BoxCpu(lambda: [rl.pid])
        rl_conns = await open_bidders(rl_port, names, a.connect_concurrency)
        log(f"row-lock baseline (pid {rl.pid}, pool {a.rowlock_pool}): "
            f"{len(rl_conns)} connections")
        rl_slots = [Slot(rl_conns[2 * i:2 * i + 2], hot) for i in range(max_n)]

        out["hot_lot_throughput"] = sat = {}
        for n in sat_counts:
            sat[str(n)] = {
                "bidhall": await measured(run, slots, n, True, cpu,
                                          f"bidhall saturation bidders={n}", pyspy),
                "row_lock": await measured(run, rl_slots, n, True, rl_cpu,
                                           f"row-lock saturation bidders={n}")}
        async with asyncio.timeout(30):
            conn = await asyncpg.connect(run.pg.dsn)
            row = await conn.fetchrow("SELECT price, (SELECT count(*) FROM bench.bids) AS n "
                                      "FROM bench.lot WHERE id = $1", hot)
            await conn.close()
        setup["row_lock"] = {"server_pid": rl.pid, "pool": a.rowlock_pool,
                             "connections": len(rl_conns), "bids_recorded": row["n"],
                             "final_price": row["price"],
                             "unexpected_disconnects": sum(c.unexpected_close
                                                           for c in rl_conns)}
        close_all(rl_conns)
        await asyncio.sleep(0.3)
        run.servers.stop(rl)
    setup["unexpected_disconnects"] = sum(c.unexpected_close for c in conns)
    close_all(conns)
    await asyncio.sleep(0.5)
    run.servers.stop(proc)
    out["single_process_setup"] = setup
    return out


# ====================================================================== phase 3: fan-out
async def fan_broadcast(run: Run) -> dict[str, Any]:
    a = run.args
    port = free_port()
    proc = run.servers.start("broadcast", [sys.executable, str(HERE / "_baselines.py"),
                                           "broadcast", "--port", str(port)], dict(os.environ))
    await wait_listening(port, proc)
    watchers = await connect_many("127.0.0.1", port, a.watchers,
                                  concurrency=a.connect_concurrency)
    senders = await connect_many("127.0.0.1", port, a.fan_senders)
    await asyncio.sleep(0.5)
    log(f"bare broadcast (pid {proc.pid}): {len(watchers)} watchers, {len(senders)} senders")

    async def attempt() -> dict[str, Any]:
        waited = await run.gate.wait("bare broadcast")
        fan = Fan()
        r = await fan_run(fan, [functools.partial(fan.broadcast_sender, s, "bench-fan")
                                for s in senders], watchers, warmup=a.fan_warmup,
                          duration=a.fan_seconds, cpu=BoxCpu(lambda: [proc.pid]),
                          label="bare broadcast")
        log_cpu("bare broadcast", r["cpu"])
        return {**r, "waited_for_quiet_box_s": waited}

    out = await least_noisy(attempt, a, "bare broadcast")
    close_all([*watchers, *senders])
    await asyncio.sleep(0.3)
    run.servers.stop(proc)
    return {"server_pid": proc.pid, **out}


async def fan_bidhall(run: Run, workers: int) -> dict[str, Any]:
    a = run.args
    await run.pg.reset_bidhall()
    proc, port = await start_bidhall(run.servers, f"bidhall-w{workers}", run.tmp, run.pg.dsn,
                                     redis=a.redis_url, workers=workers)
    lot = run.lot(f"fan{workers}")
    names = [f"fan-{i}-{j}" for i in range(a.fan_senders) for j in (0, 1)]
    async with RawHttp(port, run.token, 8) as http:
        await create_lot(http, lot)
        tokens = await qualify(http, lot, names)
    bidders = await open_bidders(port, tokens)
    watchers = await open_watchers(port, lot, a.watchers, a.connect_concurrency)
    await asyncio.sleep(0.5)
    pids = server_pids(proc)
    nodes = await healthz_nodes(port) if workers > 1 else {}
    owner = [node_pid(n) for n, v in nodes.items() if v.get("serving")]
    where = socket_pids(port, pids) if workers > 1 else {}
    groups = {id(w): where.get(w.transport.get_extra_info("sockname")[1], 0)
              for w in watchers if w.transport is not None} if where else {}
    bidder_pids = sorted(where.get(b.transport.get_extra_info("sockname")[1], 0)
                         for b in bidders if b.transport is not None) if where else []
    log(f"bidhall --workers {workers} (pids {pids}): {len(watchers)} watchers, "
        f"{len(bidders)} bidder connections; per node {nodes}")
    gc.collect()
    label = f"bidhall --workers {workers}"

    async def attempt() -> dict[str, Any]:
        waited = await run.gate.wait(label)
        fan = Fan()
        fan.group_of = groups
        r = await fan_run(fan, [functools.partial(fan.bidhall_pair, bidders[2 * i:2 * i + 2],
                                                  lot) for i in range(a.fan_senders)],
                          watchers, warmup=a.fan_warmup, duration=a.fan_seconds,
                          cpu=BoxCpu(lambda: server_pids(proc)), label=label)
        log_cpu(label, r["cpu"])
        return {**r, "waited_for_quiet_box_s": waited}

    out = await least_noisy(attempt, a, label)
    close_all([*watchers, *bidders])
    await asyncio.sleep(0.5)
    run.servers.stop(proc)
    return {"workers": workers, "pids": pids, "lot": lot, "per_node": nodes,
            **({"owner_pid": owner[0] if owner else None,
                "bidder_connections_by_server_pid": bidder_pids} if workers > 1 else {}),
            **out}


# ====================================================================== phase 4: takeover
async def takeover_round(run: Run, i: int, k: int, alive: list[tuple[Any, int]]
                         ) -> dict[str, Any]:
    """A new lot owned by ``alive[0]``; ``k`` bidders (pairs) bid through ``alive[1]``; the
    owner is SIGKILLed; until every bidder has an ack from the new owner (or the timeout)."""
    a = run.args
    assert run.keys is not None
    (owner, owner_port), (via, via_port) = alive[0], alive[1]
    lot = run.lot(f"tko{i}")
    async with RawHttp(owner_port, run.token, 4) as http:
        await create_lot(http, lot)
        tokens = await qualify(http, lot, [f"tko-{i}-{b}-{j}" for b in range(k) for j in (0, 1)])
    conns = await open_bidders(via_port, tokens)
    bidders = [TakeoverBidder(conns[2 * b:2 * b + 2], lot, a.takeover_think) for b in range(k)]
    cpu = BoxCpu(lambda: [p.pid for p, _ in alive if p.poll() is None])
    tasks = [asyncio.ensure_future(b.run()) for b in bidders]
    await asyncio.sleep(a.takeover_before)
    node = await run.keys.lease(lot)
    pid = node_pid(node or "")
    if pid is None or pid != owner.pid:
        raise RuntimeError(f"lot {lot}: lease held by {node}, expected pid {owner.pid}")
    c0 = cpu.sample()
    t_kill = perf()
    victim = run.servers.kill(pid)
    for b in bidders:
        b.mark_kill(t_kill)
    stop = asyncio.Event()
    timeline: dict[str, Any] = {}
    poller = asyncio.ensure_future(poll_lease(functools.partial(run.keys.lease, lot), node or "",
                                              t_kill, stop, timeline))
    gone = asyncio.ensure_future(poll_gone(functools.partial(run.keys.subscribers,
                                                             run.keys.node_channel(node or "")),
                                           t_kill, timeline))
    waits = [asyncio.ensure_future(b.acked_event.wait()) for b in bidders]
    await asyncio.wait(waits, timeout=a.takeover_timeout, return_when=asyncio.FIRST_COMPLETED)
    c1 = cpu.sample()
    await asyncio.wait(waits, timeout=max(0.1, a.takeover_timeout - (perf() - t_kill)))
    stop.set()
    await asyncio.sleep(0.1)
    for task in (poller, gone, *waits):
        task.cancel()
    for b in bidders:
        b.running = False
    await asyncio.wait(tasks, timeout=20)
    for task in tasks:
        task.cancel()
    close_all(conns)
    new_node = timeline.get("new_owner_node") or await run.keys.lease(lot)  # the first holder
    new_pid = node_pid(new_node or "")
    mine = {p.pid for p, _ in alive}
    acks = [None if b.first_ack is None else r3(b.first_ack - t_kill) for b in bidders]
    took = min((x for x in acks if x is not None), default=None)
    out = {"round": i, "bidders": k, "lot": lot, "killed_owner_pid": pid,
           "bidders_via_pid": via.pid, "new_owner_pid": new_pid,
           "new_owner_is": ("the process the bidders are connected to" if new_pid == via.pid
                            else "another process of this run" if new_pid in mine
                            else f"NOT a process of this run: {new_node}" if new_node
                            else None),
           "kill_to_first_ack_s": took,
           "kill_to_every_bidder_acked_s": (None if any(x is None for x in acks)
                                            else max(x for x in acks if x is not None)),
           "lease_timeline_after_kill_ms": timeline,
           "per_bidder": [{"first_ack_after_kill_s": x, "bid_in_flight_at_kill": b.stranded,
                           "answers_after_kill": dict(b.after_kill),
                           "attempts_after_kill_ms": b.attempts[:12]}
                          for x, b in zip(acks, bidders, strict=True)],
           "forwarded_ack_before_kill_ms": summary_ms([x for b in bidders for x in b.before]),
           "cpu_kill_to_first_ack": BoxCpu.cores(c0, c1)}
    if took is not None and "new_lease_ms" in timeline:
        out["new_lease_to_first_ack_ms"] = r3(took * 1e3 - timeline["new_lease_ms"])
    log(f"  takeover round {i} ({k} bidders): kill -> first ack {took}s, every bidder {acks}; "
        f"lease {timeline}")
    run.servers.reap(victim)
    alive[:] = [pv for pv in alive if pv[0] is not victim]
    return out


async def phase_takeover(run: Run) -> dict[str, Any]:
    a = run.args
    run.keys = run.keys or RedisKeys(a.redis_url)
    await run.pg.reset_bidhall()
    started = await asyncio.gather(*(start_bidhall(run.servers, f"node{i}", run.tmp, run.pg.dsn,
                                                   redis=a.redis_url)
                                     for i in range(a.takeover_nodes)))
    alive: list[tuple[Any, int]] = list(started)
    log(f"takeover: processes {[p.pid for p, _ in alive]}")
    plan = [int(k) for k in a.takeover_bidders.split(",") for _ in range(a.takeover_rounds)]
    rounds = []
    for i, k in enumerate(plan):
        rounds.append(await takeover_round(run, i, k, alive))
        if i + 1 < len(plan):  # back to full strength before the next round
            alive.append(await start_bidhall(run.servers, f"node{a.takeover_nodes + i}",
                                             run.tmp, run.pg.dsn, redis=a.redis_url))
            await asyncio.sleep(0.5)
    for proc, _ in alive:
        run.servers.stop(proc)

    def summary(rs: list[dict[str, Any]], key: str) -> dict[str, Any]:
        times = [r[key] for r in rs]
        ok = [t for t in times if t is not None]
        return {"all_s": times, "worst_s": max(ok) if ok and len(ok) == len(times) else None,
                "median_s": statistics.median(ok) if ok else None}

    by_k = {str(k): {"first_ack": summary([r for r in rounds if r["bidders"] == k],
                                          "kill_to_first_ack_s"),
                     "every_bidder_acked": summary([r for r in rounds if r["bidders"] == k],
                                                   "kill_to_every_bidder_acked_s")}
            for k in dict.fromkeys(plan)}
    return {"processes": a.takeover_nodes, **summary(rounds, "kill_to_first_ack_s"),
            "by_bidders": by_k, "rounds": rounds}


# ====================================================================== main
async def amain(run: Run) -> dict[str, Any]:
    a = run.args
    phases = set(a.only.split(","))
    env = environment()
    env["fd_limit"] = raise_fd_limit(max(8192, 8 * 1000 + 4 * a.watchers + 1000))
    for mod in ("asyncpg", "redis", "hiredis"):
        with contextlib.suppress(Exception):
            env["packages"][mod] = version(mod)
    if a.quiet_wait > 0:
        env["other_processes_cores_at_start"] = await wait_for_quiet(a.quiet_wait)
    await run.pg.create()
    log(f"database {run.pg.name} created; commit {env['commit'][:12]}; "
        f"loop {env['client_event_loop']}")
    env["postgresql"] = await run.pg.info()
    run.keys = RedisKeys(a.redis_url)
    env["redis"] = await run.keys.info()
    env["run_tag"] = run.tag
    run.token = staff_token(run.pg.dsn, run.tmp)
    results: dict[str, Any] = {}
    if phases & {"latency", "throughput"}:
        results.update(await phase_single(run, phases))
    if "fanout" in phases:
        results["fanout"] = {"bare_broadcast": await fan_broadcast(run)}
        for workers in (1, 2):
            results["fanout"][f"workers_{workers}"] = await fan_bidhall(run, workers)
    if "takeover" in phases:
        results["takeover"] = await phase_takeover(run)
    env["seconds_total"] = r3(perf() - T0)
    env["seconds_waited_for_a_quiet_box"] = r3(run.gate.waited)
    return build_report(env, a, results)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short windows, one takeover round")
    p.add_argument("--only", default="latency,throughput,fanout,takeover",
                   help="phases to run (comma separated)")
    p.add_argument("--lat-bidders", default="1,100")
    p.add_argument("--sat-bidders", default="100,1000")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--lat-seconds", type=float, default=8.0,
                   help="latency window: ~1,000 bids/s, so one 30 ms stall is ~0.4%% of it")
    p.add_argument("--sat-seconds", type=float, default=3.0)
    p.add_argument("--rowlock-pool", type=int, default=20)
    p.add_argument("--redis-url", default=REDIS_URL,
                   help="Redis for the cluster phases; a database index of its own keeps the "
                        f"run's lease keys apart from other bidhall users (default {REDIS_URL})")
    p.add_argument("--watchers", type=int, default=1000)
    p.add_argument("--fan-senders", type=int, default=4, help="bidders in the fan-out runs")
    p.add_argument("--fan-warmup", type=float, default=1.0)
    p.add_argument("--fan-seconds", type=float, default=4.0)
    p.add_argument("--takeover-nodes", type=int, default=3)
    p.add_argument("--takeover-rounds", type=int, default=3, help="rounds per bidder count")
    p.add_argument("--takeover-bidders", default="1,4",
                   help="bidders (pairs) through the non-owner, one set of rounds per count")
    p.add_argument("--takeover-think", type=float, default=0.01,
                   help="mean think time of the takeover bidder (s)")
    p.add_argument("--takeover-before", type=float, default=1.0,
                   help="seconds of bidding before the kill")
    p.add_argument("--takeover-timeout", type=float, default=20.0)
    p.add_argument("--retries", type=int, default=1,
                   help="extra attempts of a window in which other processes (not "
                        "PostgreSQL/Redis) used >= --noisy cores")
    p.add_argument("--noisy", type=float, default=0.5)
    p.add_argument("--http-concurrency", type=int, default=32)
    p.add_argument("--connect-concurrency", type=int, default=64)
    p.add_argument("--quiet-wait", type=float, default=20.0,
                   help="seconds to wait at most at the start for a quiet box")
    p.add_argument("--quiet-budget", type=float, default=45.0,
                   help="seconds to wait at most, over the whole run, before windows for "
                        "other processes to calm down (at most 6 s before one window)")
    p.add_argument("--py-spy", metavar="DIR", default="",
                   help="py-spy flame graph of bidhall in each hot-lot saturation run")
    p.add_argument("--py-spy-format", default="flamegraph",
                   choices=("flamegraph", "raw", "speedscope"))
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (server logs)")
    args = p.parse_args(argv)
    if args.quick:
        args.warmup, args.lat_seconds, args.sat_seconds = 0.5, 1.5, 1.5
        args.fan_warmup, args.fan_seconds, args.takeover_rounds = 0.5, 1.5, 1
        args.retries, args.quiet_wait, args.quiet_budget = 0, 0.0, 0.0
    return args


def cleanup(run: Run) -> None:
    """Processes, Redis keys, the database: each step tried whatever the others did."""
    run.servers.stop_all()
    try:
        n = delete_leases(run.lots, run.args.redis_url)
        log(f"deleted {n} lease keys of {len(run.lots)} lots")
    except Exception as exc:
        log(f"could not delete lease keys: {exc}")
    try:
        asyncio.run(run.pg.drop())
        log(f"database {run.pg.name} dropped")
    except Exception as exc:
        log(f"could not drop database {run.pg.name}: {exc}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bidhall-pgbench-"))
    run = Run(args, tmp)

    async def go() -> dict[str, Any]:
        try:
            return await amain(run)
        finally:
            if run.keys is not None:
                await run.keys.close()

    return run_bench(go, run.servers, tmp, keep_tmp=args.keep_tmp, cleanup=lambda: cleanup(run),
                     logs=("bidhall-pg", "rowlock", "broadcast", "bidhall-w1", "bidhall-w2",
                           "node0"))


if __name__ == "__main__":
    sys.exit(main())
