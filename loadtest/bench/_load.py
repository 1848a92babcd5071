"""Load generation and measurement: bidder slots, measured runs, the run matrix, fan-out.

See ``bid_latency.py`` for the load shapes and what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import itertools
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec

# Sibling modules: bid_latency.py is run as a script, so this directory is on sys.path.
from _common import SPREAD_LOTS, START_PRICE, perf
from _stats import CpuMeter, log, r3, summary_ms
from _wsclient import Conn, decode_reply, ignore_frame, log_frame

# ====================================================================== bidders and runs
COUNTER = itertools.count(1)  # amounts: START_PRICE + k, shared by every bidder


class Run:
    """The counters of one measured run (bids sent inside the window are measured)."""

    def __init__(self, closed_loop: bool, think_mean: float) -> None:
        self.closed_loop = closed_loop
        self.think_mean = think_mean
        self.sending = True
        self.win0 = float("inf")
        self.win1 = float("inf")
        self.inflight = 0
        self.ack_lat: list[float] = []
        self.reject_lat: list[float] = []
        self.sent = 0
        self.acks = 0
        self.codes: Counter[str] = Counter()
        self.acks_received_in_window = 0
        self.answers_received_in_window = 0
        self.stray = 0
        self.lost = 0
        self.drained: asyncio.Event | None = None
        self.last_answer = 0.0
        self.longest_gap = 0.0  # longest time inside the window without any answer


class Slot:
    """One benchmark bidder: a pair of bidder identities (connections) taking turns.

    A pair identity bids only while its partner holds the pair's latest ack, so it
    can never be the lot's leader: ``already_leading`` cannot happen. With the echo
    server the same code runs with the echo as the answer.
    """

    __slots__ = ("bid_id", "conns", "cur", "fmt", "loop", "run", "t_send")

    def __init__(self, conns: list[Conn], lot: str) -> None:
        self.conns = conns
        self.cur = 0
        self.fmt = (b'{"type":"bid","lot":"' + lot.encode()
                    + b'","amount":%d,"bid_id":"%d"}')
        self.run: Run | None = None
        self.bid_id: str | None = None
        self.t_send = 0.0
        self.loop = asyncio.get_running_loop()
        for conn in conns:
            conn.slot = self
            conn.handler = _on_answer

    def send_next(self) -> None:
        run = self.run
        if run is None or not run.sending or self.bid_id is not None:
            return
        k = next(COUNTER)
        self.bid_id = str(k)
        conn = self.conns[self.cur]
        if not conn.open:
            run.lost += 1
            self.bid_id = None
            return
        self.t_send = t = perf()
        conn.send(self.fmt % (START_PRICE + k, k))
        run.inflight += 1
        if t >= run.win0 and t < run.win1:
            run.sent += 1

    def after_think(self, run: Run) -> None:
        if self.run is run:  # not a timer left over from an earlier run
            self.send_next()

    def answered(self, t: float, ok: bool, code: str | None) -> None:
        run = self.run
        assert run is not None
        self.bid_id = None
        run.inflight -= 1
        last = run.last_answer
        run.last_answer = t
        if ok:
            self.cur ^= 1  # the partner bids next: it cannot be leading now
        if run.win0 <= t < run.win1:
            gap = t - max(last, run.win0)
            if gap > run.longest_gap:
                run.longest_gap = gap
            run.answers_received_in_window += 1
            if ok:
                run.acks_received_in_window += 1
        if run.win0 <= self.t_send < run.win1:
            lat = t - self.t_send
            if ok:
                run.acks += 1
                run.ack_lat.append(lat)
            else:
                run.codes[code or "?"] += 1
                run.reject_lat.append(lat)
        if run.sending:
            if run.closed_loop:
                self.send_next()
            else:
                self.loop.call_later(random.expovariate(1.0 / run.think_mean), self.after_think,
                                     run)
        elif run.inflight == 0 and run.drained is not None:
            run.drained.set()

    def conn_lost(self, conn: Conn) -> None:
        run = self.run
        if run is not None and self.bid_id is not None and conn is self.conns[self.cur]:
            run.lost += 1
            self.bid_id = None
            run.inflight -= 1
            if run.inflight == 0 and not run.sending and run.drained is not None:
                run.drained.set()


def _on_answer(conn: Conn, t: float, payload: bytes) -> None:
    slot = conn.slot
    try:
        reply = decode_reply(payload)
    except msgspec.DecodeError:
        return
    kind = reply.type
    if slot is None or slot.run is None:
        return
    if kind == "ack" or kind == "bid":  # "bid": the echo server's answer is the bid itself
        if reply.bid_id == slot.bid_id and conn is slot.conns[slot.cur]:
            slot.answered(t, True, None)
        else:
            slot.run.stray += 1
    elif kind == "reject":
        if reply.bid_id == slot.bid_id and conn is slot.conns[slot.cur]:
            slot.answered(t, False, reply.code)
        else:
            slot.run.stray += 1
    elif kind == "error" and slot.bid_id is not None and conn is slot.conns[slot.cur]:
        # e.g. rate_limited: the frame was refused, so it is this bid's answer
        slot.answered(t, False, f"error:{reply.code}")


async def measure(slots: list[Slot], *, closed_loop: bool, think_mean: float, warmup: float,
                  duration: float, cpu: CpuMeter, label: str,
                  pyspy: Callable[[str, float], Any] | None = None) -> dict[str, Any]:
    """One run: start every slot, measure for ``duration`` after ``warmup``, then drain."""
    run = Run(closed_loop, think_mean)
    loop = asyncio.get_running_loop()
    stuck = [s for s in slots if s.bid_id is not None]  # a bid of an earlier run unanswered
    slots = [s for s in slots if s.bid_id is None]
    gc.collect()
    gc.disable()
    try:
        for slot in slots:
            slot.run = run
            if closed_loop:
                slot.send_next()
            else:
                loop.call_later(random.uniform(0, 2 * think_mean), slot.after_think, run)
        await asyncio.sleep(warmup)
        profiler = pyspy(label, duration) if pyspy is not None else None
        c0 = cpu.sample()
        run.win0 = c0["wall"]
        await asyncio.sleep(duration)
        c1 = cpu.sample()
        run.win1 = c1["wall"]
        run.sending = False
        run.drained = asyncio.Event()
        if run.inflight > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.drained.wait(), 15)
        if profiler is not None:
            await profiler
    finally:
        gc.enable()
    for slot in slots:
        slot.run = None if slot.bid_id is None else slot.run
    window = run.win1 - run.win0
    out: dict[str, Any] = {
        "window_s": r3(window),
        "bids_sent": run.sent,
        "acks": run.acks,
        "rejects": dict(sorted(run.codes.items())),
        "already_leading": run.codes.get("already_leading", 0),
        "unanswered": run.inflight,
        "lost_with_connection": run.lost,
        "stray_answers": run.stray,
        "stuck_bidders_skipped": len(stuck),
        "ack_latency_ms": summary_ms(run.ack_lat),
        "reject_latency_ms": summary_ms(run.reject_lat),
        "longest_gap_between_answers_ms": r3(run.longest_gap * 1e3),
        "acks_per_s": r3(run.acks_received_in_window / window),
        "answers_per_s": r3(run.answers_received_in_window / window),
        "cpu": CpuMeter.cores(c0, c1),
    }
    lat = out["ack_latency_ms"]
    log(f"  {label}: {out['acks_per_s']:.0f} acks/s, p50 {lat.get('p50')} ms, "
        f"p99 {lat.get('p99')} ms, gap {out['longest_gap_between_answers_ms']} ms, "
        f"rejects {out['rejects']}, cpu {out['cpu']}")
    return out


def think_mean_for(bidders: int) -> float:
    """Mean think time of the latency shape: about 1,000 bids/s offered in total."""
    return max(bidders / 1000.0, 0.005)


class Target:
    """A server under test in the matrix: its slot groups and CPU meter."""

    def __init__(self, tag: str, cpu: CpuMeter, groups: dict[str, list[Slot]],
                 pyspy: Callable[[str, float], Any] | None = None) -> None:
        self.tag, self.cpu, self.groups, self.pyspy = tag, cpu, groups, pyspy
        self.results: dict[str, Any] = {"latency": {}, "saturation": {}}


async def run_matrix(targets: list[Target], counts: list[int], args: argparse.Namespace) -> None:
    """Latency then saturation runs; for each bidder count every target runs back to back
    (bidhall one lot, bidhall 100 lots, echo), so a ratio compares runs seconds apart."""
    for shape in ("latency", "saturation"):
        for n in counts:
            for target in targets:
                for group, slots in target.groups.items():
                    label = f"{target.tag} {shape} {group} bidders={n}"
                    result = await least_noisy(functools.partial(
                        measure, slots[:n], closed_loop=shape == "saturation",
                        think_mean=think_mean_for(n), warmup=args.warmup,
                        duration=args.lat_seconds if shape == "latency" else args.sat_seconds,
                        cpu=target.cpu, label=label,
                        pyspy=target.pyspy if shape == "saturation" else None), args, label)
                    lots = min(n, len(SPREAD_LOTS)) if group == "100_lots" else 1
                    target.results[shape].setdefault(group, {})[str(n)] = {
                        "bidders": n, "connections": 2 * n,
                        "lots": lots if target.tag == "bidhall" else None, **result}


async def least_noisy(attempt: Callable[[], Any], args: argparse.Namespace, label: str
                      ) -> dict[str, Any]:
    """Run ``attempt`` (a coroutine function returning a result with ``cpu``) again while
    other processes on the box used >= ``--noisy`` cores, ``--retries`` times at most."""
    tries: list[dict[str, Any]] = []
    for _ in range(1 + max(0, args.retries)):
        tries.append(await attempt())
        other = tries[-1]["cpu"].get("other_processes_cores", 0.0)
        if other < args.noisy:
            break
        log(f"  ({label}: other processes used {other} cores in that window)")
    result = min(tries, key=lambda r: r["cpu"].get("other_processes_cores", 0))
    if len(tries) > 1:
        result["discarded_noisy_attempts"] = [
            {"other_processes_cores": r["cpu"].get("other_processes_cores"),
             **{k: r[k] for k in ("acks_per_s", "delivery_ms", "last_watcher_ms") if k in r},
             **({"ack_p50_ms": r["ack_latency_ms"].get("p50"),
                 "ack_p99_ms": r["ack_latency_ms"].get("p99")} if "ack_latency_ms" in r
                else {})}
            for r in tries if r is not result]
    return result


# ====================================================================== fan-out
async def fanout(watchers: list[Conn], send: Callable[[int, int], Any], *, bids: int,
                 warm: int, interval: float, lot: str) -> dict[str, Any]:
    """Bid ``warm + bids`` times, ``interval`` apart; delays of each bid event at each watcher.

    ``send(i, amount)`` sends bid ``i`` and returns once it may send the next (for
    bidhall: after its ack); the send time is recorded just before.
    """
    for w in watchers:
        w.log = []
        w.handler = log_frame
    send_times: dict[int, float] = {}
    ack_lat: list[float] = []
    gc.collect()
    gc.disable()
    try:
        start = perf() + 0.2
        for i in range(warm + bids):
            delay = start + i * interval - perf()
            if delay > 0:
                await asyncio.sleep(delay)
            amount = START_PRICE + next(COUNTER)
            t = perf()
            if i >= warm:
                send_times[amount] = t
            answered = await send(i, amount)
            if answered is not None and i >= warm:
                ack_lat.append(answered - t)
        # let the last event reach everyone
        deadline = perf() + 5
        last = max(send_times) if send_times else None
        while perf() < deadline:
            if last is None or all(w.log and str(last).encode() in w.log[-1][1] for w in watchers):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)
    finally:
        gc.enable()
    per_bid: dict[int, list[float]] = {a: [] for a in send_times}
    pairs: list[float] = []
    decode = msgspec.json.decode
    for w in watchers:
        for t, payload in w.log:
            if b'"bid"' not in payload:
                continue
            msg = decode(payload)
            if msg.get("type") != "event" or msg.get("kind") != "bid" or msg.get("lot") != lot:
                continue
            sent = send_times.get(msg.get("amount"))
            if sent is None:
                continue
            pairs.append(t - sent)
            per_bid[msg["amount"]].append(t - sent)
        w.log = []
        w.handler = ignore_frame
    expected = len(watchers) * len(send_times)
    last_watcher = [max(v) for v in per_bid.values() if v]
    first_watcher = [min(v) for v in per_bid.values() if v]
    return {
        "watchers": len(watchers), "bids": len(send_times), "interval_ms": interval * 1e3,
        "deliveries": len(pairs), "missing_deliveries": expected - len(pairs),
        "delivery_ms": summary_ms(pairs),
        "last_watcher_ms": summary_ms(last_watcher),
        "first_watcher_ms": summary_ms(first_watcher),
        "bidder_ack_ms": summary_ms(ack_lat) if ack_lat else None,
    }
