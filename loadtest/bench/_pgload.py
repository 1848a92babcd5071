"""Load of ``pg_cluster.py`` beyond ``_load.measure``: the bare INSERT+COMMIT clients, the
fan-out run (bidders or broadcast senders in closed loop, 1,000 watchers timing each bid
event) and the takeover bidder (retries ``unavailable`` with the same bid_id).

Amounts come from ``_load.COUNTER`` (``START_PRICE + k``), shared with every other run of
the client, so they rise in send order and never repeat across runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

# Sibling modules: pg_cluster.py is run as a script, so this directory is on sys.path.
from _common import START_PRICE, perf
from _load import COUNTER
from _pgenv import BASELINE_SCHEMA, BoxCpu
from _stats import log, r3, summary_ms
from _wsclient import Conn, decode_reply

INF = float("inf")
INSERT = (f"INSERT INTO {BASELINE_SCHEMA}.bare_insert (lot_id, bidder, bid_id, amount, at, body) "
          "VALUES ($1, $2, $3, $4, $5, $6)")
# About the size of a stored bid event's JSON body.
BODY = ('{"seq":0,"pseq":0,"at":1700000000000,"bidder":"hot-17-1","paddle":4821,'
        '"amount":1000000,"bid_id":"123456","ends_at":null}')


# ====================================================================== bare INSERT + COMMIT
async def bare_insert(dsn: str, clients: int, connections: int, *, closed_loop: bool,
                      think_mean: float, warmup: float, duration: float, cpu: BoxCpu,
                      label: str) -> dict[str, Any]:
    """``clients`` asyncpg clients, each inserting one row per transaction (one statement,
    autocommit: its COMMIT waits for the WAL flush; synchronous_commit on), with the same
    think time or closed loop as the bidders. With fewer ``connections`` than clients (the
    server's connection limit), the clients share a pool of that size and the wait for a
    connection counts in the latency."""
    settings = {"synchronous_commit": "on", "application_name": "bench-bare-insert"}
    own = connections >= clients
    pool: Any = None
    conns: list[Any] = []
    if own:
        conns = list(await asyncio.gather(*(asyncpg.connect(dsn, server_settings=settings)
                                            for _ in range(clients))))
        sync = await conns[0].fetchval("SHOW synchronous_commit")
    else:
        pool = await asyncpg.create_pool(dsn, min_size=connections, max_size=connections,
                                         server_settings=settings)
        sync = await pool.fetchval("SHOW synchronous_commit")
    state = {"win0": INF, "win1": INF, "sending": True, "done": 0, "gap": 0.0, "last": 0.0}
    lat: list[float] = []
    errors: Counter[str] = Counter()

    async def client(i: int) -> None:
        conn = conns[i] if own else None
        if not closed_loop:
            await asyncio.sleep(random.uniform(0, 2 * think_mean))
        while state["sending"]:
            k = next(COUNTER)
            args = ("bench-bare", f"bare-{i}", str(k), START_PRICE + k,
                    int(time.time() * 1000), BODY)
            t = perf()
            try:
                if conn is not None:
                    await conn.execute(INSERT, *args)
                else:
                    async with pool.acquire() as c:
                        await c.execute(INSERT, *args)
            except (asyncpg.PostgresError, OSError) as exc:
                errors[type(exc).__name__] += 1
                continue
            t1 = perf()
            if state["win0"] <= t < state["win1"]:
                lat.append(t1 - t)
            if state["win0"] <= t1 < state["win1"]:
                state["done"] += 1
                gap = t1 - max(state["last"], state["win0"])
                state["gap"] = max(state["gap"], gap)
            state["last"] = t1
            if not closed_loop:
                await asyncio.sleep(random.expovariate(1.0 / think_mean))

    gc.collect()
    gc.disable()
    try:
        tasks = [asyncio.ensure_future(client(i)) for i in range(clients)]
        await asyncio.sleep(warmup)
        c0 = cpu.sample()
        state["win0"] = c0["wall"]
        await asyncio.sleep(duration)
        c1 = cpu.sample()
        state["win1"] = c1["wall"]
        state["sending"] = False
        await asyncio.wait(tasks, timeout=15)
    finally:
        gc.enable()
        for task in tasks:
            task.cancel()
        for conn in conns:
            await conn.close()
        if pool is not None:
            await pool.close()
    window = state["win1"] - state["win0"]
    out = {"clients": clients, "connections": min(clients, connections),
           "synchronous_commit": sync, "window_s": r3(window), "commits": len(lat),
           "ack_latency_ms": summary_ms(lat), "acks_per_s": r3(state["done"] / window),
           "longest_gap_between_answers_ms": r3(state["gap"] * 1e3), "errors": dict(errors),
           "cpu": BoxCpu.cores(c0, c1)}
    s = out["ack_latency_ms"]
    log(f"  {label}: {out['acks_per_s']:.0f} commits/s, p50 {s.get('p50')} ms, "
        f"p99 {s.get('p99')} ms, connections {out['connections']}, cpu {out['cpu']}")
    return out


# ====================================================================== fan-out
class Fan:
    """One fan-out run: send times of every bid, and what the watchers received."""

    def __init__(self) -> None:
        self.win0 = self.win1 = INF
        self.running = True
        self.sent: dict[int, float] = {}
        self.acked: set[int] = set()
        self.waiters: dict[int, asyncio.Future[float]] = {}
        self.delays: list[float] = []
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.delivered = 0
        self.snapshots = 0
        self.last_delivery = 0.0
        self.ack_lat: list[float] = []
        self.codes: Counter[str] = Counter()
        #: id(watcher) -> group (e.g. the server process it reached), for delays per group
        self.group_of: dict[int, int] = {}
        self.by_group: dict[int, list[float]] = {}

    def on_watch(self, conn: Conn, t: float, payload: bytes) -> None:
        """Watcher frame handler: find the bid's amount without decoding the JSON."""
        if b'"kind":"bid"' not in payload:
            if payload.startswith(b'{"type":"snapshot"'):
                self.snapshots += 1  # a watcher fell behind and was sent a snapshot
            return
        i = payload.find(b'"amount":') + 9
        j = payload.find(b",", i)
        if j < 0:
            j = payload.find(b"}", i)
        amount = int(payload[i:j])
        sent = self.sent.get(amount)
        if sent is None:
            return
        self.last_delivery = t
        if self.win0 <= t < self.win1:
            self.delivered += 1
        if self.waiters:
            waiter = self.waiters.pop(amount, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(t)
        if self.win0 <= sent < self.win1:
            self.delays.append(t - sent)
            if self.group_of:
                group = self.group_of.get(id(conn), 0)
                self.by_group.setdefault(group, []).append(t - sent)
            if amount not in self.first:
                self.first[amount] = t
            self.last[amount] = t

    # ---------------------------------------------------------------- senders
    async def bidhall_pair(self, pair: list[Conn], lot: str) -> None:
        """One bidder (two identities taking turns, never already_leading), closed loop."""
        loop = asyncio.get_running_loop()

        def answer(conn: Conn, t: float, payload: bytes) -> None:
            reply = decode_reply(payload)
            if reply.type in ("ack", "reject", "error") and conn.waiter is not None \
                    and not conn.waiter.done():
                conn.waiter.set_result((t, reply))

        for conn in pair:
            conn.handler = answer
        fmt = b'{"type":"bid","lot":"' + lot.encode() + b'","amount":%d,"bid_id":"f%d"}'
        cur = 0
        while self.running:
            k = next(COUNTER)
            amount = START_PRICE + k
            conn = pair[cur]
            conn.waiter = fut = loop.create_future()
            self.sent[amount] = t = perf()
            conn.send(fmt % (amount, k))
            try:
                t1, reply = await asyncio.wait_for(fut, 10)
            except TimeoutError:
                self.codes["client_timeout"] += 1
                continue
            finally:
                conn.waiter = None
            if reply.type == "ack":
                self.acked.add(amount)
                cur ^= 1
                if self.win0 <= t < self.win1:
                    self.ack_lat.append(t1 - t)
            else:
                self.codes[reply.code or reply.type] += 1

    async def broadcast_sender(self, conn: Conn, lot: str) -> None:
        """A sender of the bare broadcast server, closed loop on its frame's FIRST delivery
        to a watcher (bidhall's ack goes out just ahead of the fan-out, so this is the
        nearest equivalent of "as fast as acks allow")."""
        loop = asyncio.get_running_loop()
        fmt = (b'{"type":"event","lot":"' + lot.encode() + b'","seq":%d,"kind":"bid",'
               b'"at":1700000000000,"paddle":4821,"amount":%d,"ends_at":null}')
        while self.running:
            k = next(COUNTER)
            amount = START_PRICE + k
            self.waiters[amount] = fut = loop.create_future()
            self.sent[amount] = t = perf()
            self.acked.add(amount)
            conn.send(fmt % (k, amount))
            try:
                t1 = await asyncio.wait_for(fut, 10)
            except TimeoutError:
                self.codes["client_timeout"] += 1
                continue
            if self.win0 <= t < self.win1:
                self.ack_lat.append(t1 - t)


async def fan_run(fan: Fan, senders: list[Callable[[], Awaitable[None]]],
                  watchers: list[Conn], *, warmup: float, duration: float, cpu: BoxCpu,
                  label: str) -> dict[str, Any]:
    """Run ``senders`` in closed loop; measure deliveries to ``watchers`` in the window."""
    for w in watchers:
        w.handler = fan.on_watch
    gc.collect()
    gc.disable()
    try:
        tasks = [asyncio.ensure_future(s()) for s in senders]
        await asyncio.sleep(warmup)
        c0 = cpu.sample()
        fan.win0 = c0["wall"]
        await asyncio.sleep(duration)
        c1 = cpu.sample()
        fan.win1 = c1["wall"]
        fan.running = False
        await asyncio.wait(tasks, timeout=15)
        deadline = perf() + 10  # the last events reach the last watchers
        while perf() < deadline and perf() - fan.last_delivery < 0.5:
            await asyncio.sleep(0.1)
    finally:
        gc.enable()
        for task in tasks:
            task.cancel()
    window = fan.win1 - fan.win0
    bids = [a for a, t in fan.sent.items() if fan.win0 <= t < fan.win1 and a in fan.acked]
    expected = len(bids) * len(watchers)
    last = [fan.last[a] - fan.sent[a] for a in bids if a in fan.last]
    first = [fan.first[a] - fan.sent[a] for a in bids if a in fan.first]
    out: dict[str, Any] = {
        "watchers": len(watchers), "senders": len(senders), "window_s": r3(window),
        "bids_in_window": len(bids), "bids_per_s": r3(len(bids) / window),
        "delivered_msgs_per_s": r3(fan.delivered / window),
        "delivery_ms": summary_ms(fan.delays),
        "first_watcher_ms": summary_ms(first), "last_watcher_ms": summary_ms(last),
        "sender_answer_ms": summary_ms(fan.ack_lat),
        **({"delivery_ms_by_server_pid": {
            str(g): {"watchers": sum(1 for w in watchers if fan.group_of.get(id(w)) == g),
                     **summary_ms(v)} for g, v in sorted(fan.by_group.items())}}
           if fan.group_of else {}),
        "missing_deliveries": expected - len(fan.delays),
        "snapshots_instead_of_events": fan.snapshots,
        "sender_rejects": dict(fan.codes),
        "unexpected_disconnects": sum(w.unexpected_close for w in watchers),
        "cpu": BoxCpu.cores(c0, c1),
    }
    log(f"  {label}: {out['delivered_msgs_per_s']:.0f} msgs/s delivered, "
        f"{out['bids_per_s']:.0f} bids/s, delivery p50 {out['delivery_ms'].get('p50')} "
        f"p99 {out['delivery_ms'].get('p99')} ms, missing {out['missing_deliveries']}, "
        f"snapshots {fan.snapshots}, cpu {out['cpu']}")
    return out


# ====================================================================== takeover
class TakeoverBidder:
    """Bids on and on through one process; an ``unavailable`` answer (or an error frame) is
    retried with the same bid_id, as a client is told to. ``kill_at`` is set by the caller
    when the lot's owner is killed; ``first_ack`` is then the first ack of an attempt SENT
    after the kill (an attempt sent before could have been acked by the old owner)."""

    def __init__(self, pair: list[Conn], lot: str, think: float) -> None:
        self.pair, self.lot, self.think = pair, lot, think
        self.running = True
        self.kill_at = INF
        self.first_ack: float | None = None
        self.acked_event = asyncio.Event()
        self.before: list[float] = []  # ack latencies of bids sent before the kill
        self.after_kill: Counter[str] = Counter()
        self.codes: Counter[str] = Counter()
        self.inflight_since: float | None = None
        self.stranded: dict[str, Any] | None = None  # the attempt in flight at the kill
        self.retry_pause = 0.02
        #: [sent, answered] ms after the kill, and the answer, of each attempt sent after it
        self.attempts: list[list[Any]] = []

    def mark_kill(self, t: float) -> None:
        self.kill_at = t
        if self.inflight_since is not None:
            self.stranded = {"sent_before_kill_ms": r3((t - self.inflight_since) * 1e3)}

    async def run(self) -> None:
        loop = asyncio.get_running_loop()

        def answer(conn: Conn, t: float, payload: bytes) -> None:
            reply = decode_reply(payload)
            if reply.type in ("ack", "reject", "error") and conn.waiter is not None \
                    and not conn.waiter.done():
                conn.waiter.set_result((t, reply))

        for conn in self.pair:
            conn.handler = answer
        cur = 0
        while self.running:
            k = next(COUNTER)
            frame = (b'{"type":"bid","lot":"%s","amount":%d,"bid_id":"t%d"}'
                     % (self.lot.encode(), START_PRICE + k, k))
            conn = self.pair[cur]
            while True:  # attempts of one bid
                conn.waiter = fut = loop.create_future()
                self.inflight_since = t = perf()
                conn.send(frame)
                try:
                    t1, reply = await asyncio.wait_for(fut, 15)
                except TimeoutError:
                    reply, t1 = None, perf()
                finally:
                    conn.waiter = None
                    self.inflight_since = None
                code = "client_timeout" if reply is None else (
                    "ack" if reply.type == "ack" else reply.code or reply.type)
                if self.stranded is not None and "answer" not in self.stranded:
                    if t1 < self.kill_at:  # read before the kill, handled just after it
                        self.stranded = None
                    else:
                        self.stranded["answered_after_kill_ms"] = r3((t1 - self.kill_at) * 1e3)
                        self.stranded["answer"] = code
                if t > self.kill_at:
                    self.after_kill[code] += 1
                    if len(self.attempts) < 50:
                        self.attempts.append([r3((t - self.kill_at) * 1e3),
                                              r3((t1 - self.kill_at) * 1e3), code])
                if code == "ack":
                    if t < self.kill_at:
                        self.before.append(t1 - t)
                    elif self.first_ack is None:
                        self.first_ack = t1
                        self.acked_event.set()
                    cur ^= 1
                    break
                self.codes[code] += 1
                if code in ("unavailable", "client_timeout") or reply.type == "error":
                    await asyncio.sleep(self.retry_pause)
                    continue  # the same bid, the same bid_id
                break  # refused for good (too_low...): next bid
            await asyncio.sleep(random.expovariate(1.0 / self.think))


async def poll_lease(read: Callable[[], Awaitable[str | None]], old: str, since: float,
                     stop: asyncio.Event, timeline: dict[str, Any]) -> None:
    """Record when the lease of the killed owner vanished and when another node held it."""
    while not stop.is_set():
        try:
            value = await read()
        except Exception as exc:  # counted, not fatal: the round goes on
            timeline["lease_poll_errors"] = timeline.get("lease_poll_errors", 0) + 1
            timeline["lease_poll_last_error"] = f"{type(exc).__name__}: {exc}"
        else:
            now = perf()
            if value != old and "lease_gone_ms" not in timeline:
                timeline["lease_gone_ms"] = r3((now - since) * 1e3)
            if value is not None and value != old and "new_lease_ms" not in timeline:
                timeline["new_lease_ms"] = r3((now - since) * 1e3)
                timeline["new_owner_node"] = value
                return
        await asyncio.sleep(0.05)


async def poll_gone(count: Callable[[], Awaitable[int]], since: float, timeline: dict[str, Any],
                    limit: float = 3.0) -> None:
    """Record when Redis stopped counting the killed owner's subscription to its node
    channel: until then a forwarded command is published to it and waits FORWARD_TIMEOUT."""
    while perf() - since < limit:
        with contextlib.suppress(Exception):
            if await count() == 0:
                timeline["owner_channel_unsubscribed_ms"] = r3((perf() - since) * 1e3)
                return
        await asyncio.sleep(0.001)
