"""The JSON report of ``bid_latency.py``: ratios to the baselines, targets and notes."""

from __future__ import annotations

import argparse
from typing import Any

# Sibling modules: bid_latency.py is run as a script, so this directory is on sys.path.
from _common import HOT_LOT, START_PRICE, TARGETS
from _stats import ratio, target_row


def build_report(env: dict[str, Any], args: argparse.Namespace, counts: list[int],
                 results: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    bh = results.get("bidhall") or {}
    echo = results.get("echo") or {}
    bc = results.get("broadcast") or {}

    def get(d: Any, *path: str) -> Any:
        for p in path:
            if not isinstance(d, dict) or p not in d:
                return None
            d = d[p]
        return d

    ratios: dict[str, Any] = {}
    for shape in ("latency", "saturation"):
        for group in ("one_lot", "100_lots"):
            for n in map(str, counts):
                b = get(bh, shape, group, n)
                e = get(echo, shape, "one_lot", n)
                if b is None or e is None:
                    continue
                ratios[f"{shape}/{group}/bidders={n}"] = {
                    "ack_p50_vs_echo_p50": ratio(get(b, "ack_latency_ms", "p50"),
                                                 get(e, "ack_latency_ms", "p50")),
                    "ack_p99_vs_echo_p99": ratio(get(b, "ack_latency_ms", "p99"),
                                                 get(e, "ack_latency_ms", "p99")),
                    "acks_per_s_vs_echo_msgs_per_s": ratio(b["acks_per_s"], e["acks_per_s"]),
                }
    if bh.get("fanout") and bc:
        f = bh["fanout"]
        ratios["fanout/1000_watchers"] = {
            "delivery_p50_vs_broadcast": ratio(get(f, "delivery_ms", "p50"),
                                               get(bc, "delivery_ms", "p50")),
            "delivery_p99_vs_broadcast": ratio(get(f, "delivery_ms", "p99"),
                                               get(bc, "delivery_ms", "p99")),
            "last_watcher_p50_vs_broadcast": ratio(get(f, "last_watcher_ms", "p50"),
                                                   get(bc, "last_watcher_ms", "p50")),
            "last_watcher_p99_vs_broadcast": ratio(get(f, "last_watcher_ms", "p99"),
                                                   get(bc, "last_watcher_ms", "p99")),
        }

    targets: list[dict[str, Any]] = []

    def target(*args: Any, **kwargs: Any) -> None:
        targets.append(target_row(*args, **kwargs))

    lat100 = get(bh, "latency", "one_lot", "100")
    target("durable ack p50 (ms), 100 bidders, one lot", get(lat100, "ack_latency_ms", "p50"),
           TARGETS["ack_100_bidders_one_lot_p50_ms"], False,
           "bidhall.latency.one_lot.100 (think-time shape)")
    target("durable ack p99 (ms), 100 bidders, one lot", get(lat100, "ack_latency_ms", "p99"),
           TARGETS["ack_100_bidders_one_lot_p99_ms"], False,
           "bidhall.latency.one_lot.100 (think-time shape)")
    sat = get(bh, "saturation", "one_lot") or {}
    best_n = max(sat, key=lambda n: sat[n]["acks_per_s"]) if sat else None
    target("durable bids/s, one hot lot", sat[best_n]["acks_per_s"] if best_n else None,
           TARGETS["one_hot_lot_bids_per_s"], True,
           f"bidhall.saturation.one_lot.{best_n} (best bidder count, closed loop)")
    target("price update to 1,000 watchers p99 (ms), all (watcher, bid) pairs",
           get(bh, "fanout", "delivery_ms", "p99"), TARGETS["fanout_1000_watchers_p99_ms"],
           False, "bidhall.fanout.delivery_ms")
    target("price update to the LAST of 1,000 watchers p99 (ms)",
           get(bh, "fanout", "last_watcher_ms", "p99"), TARGETS["fanout_1000_watchers_p99_ms"],
           False, "bidhall.fanout.last_watcher_ms", informational=True)

    target("durable ack p50 (ms) of the bidder on the lot with 1,000 watchers (fan-out run)",
           get(bh, "fanout", "bidder_ack_ms", "p50"), TARGETS["ack_100_bidders_one_lot_p50_ms"],
           False, "bidhall.fanout.bidder_ack_ms (one bidder; not a stated target)",
           informational=True)

    notes = notes_for(bh, echo, bc, counts)
    if env.get("worktree_changes"):
        notes.insert(0, "The server code measured differs from the commit recorded: "
                     + "; ".join(env["worktree_changes"]))
    return {
        "benchmark": "bidhall bid_latency",
        "schema": 1,
        "environment": env,
        "load_shapes": {
            "latency": "open-loop-ish: each bidder waits an exponential think time after each "
                       "answer, mean max(N/1000 s, 5 ms), i.e. ~1,000 bids/s offered in total "
                       "(N=1: ~200/s); one bid in flight per bidder",
            "saturation": "closed loop: each bidder sends its next bid as soon as the "
                          "previous one is answered (one in flight per bidder)",
            "bidder": "a pair of qualified bidders on one connection each, taking turns "
                      "after each ack (so never already_leading); connections = 2 x bidders",
            "amounts": f"start_price {START_PRICE} + k, k from one counter shared by every "
                       "bidder (increment 1, preset qinzhou, listing phase)",
            "lots": {"one_lot": HOT_LOT, "100_lots": "bidder i bids on lot i % 100 "
                     "(N=1: 1 lot, N=100: 1 bidder per lot, N=1000: 10 per lot)"},
            "ack_latency": "client clock, from just before the bid frame is written to when "
                           "the ack frame is read; only bids sent inside the window count",
            "throughput": "acks received inside the window / window length",
            "noisy_windows": "a window (or fan-out run) in which other processes on the box "
                             f"used >= {args.noisy} cores is run again (at most "
                             f"{args.retries} more times); the least disturbed attempt is "
                             "kept and the others are listed under 'discarded_noisy_attempts'",
            "warmup_s": args.warmup, "latency_window_s": args.lat_seconds,
            "saturation_window_s": args.sat_seconds,
            "fanout": f"{args.watchers} anonymous watchers subscribed to one lot; one bidder "
                      f"bids {args.fanout_bids} times (after 5 warm-up bids), "
                      f"{args.fanout_interval * 1e3:.0f} ms apart, each after the previous "
                      "ack; delay = watcher receive time - bid send time",
            "echo_baseline": "same client, same slots and connection counts, bid frame "
                             "echoed back by a bare Starlette route on the same uvicorn "
                             "options",
            "broadcast_baseline": "same watchers; the sender's frame is sent by a bare "
                                  "Starlette route to every other connection, one awaited "
                                  "send after another",
        },
        "targets": targets,
        "all_targets_pass": all(t["pass"] for t in targets if not t.get("informational")),
        "results": {"bidhall": bh, "baseline_echo": echo, "baseline_broadcast": bc,
                    "baseline_sqlite_commit": floor},
        "ratios_bidhall_over_baseline": ratios,
        "notes": notes,
    }


def notes_for(bh: dict[str, Any], echo: dict[str, Any], bc: dict[str, Any],
              counts: list[int]) -> list[str]:
    notes = [
        "Client and servers share the same 2 cores; per-run CPU use is under each result "
        "('cpu': cores used by the client process, the server, the server's event-loop "
        "thread and its other threads: SQLite writer/reader).",
        "Not measured: HTTP API latency (qualifying is only timed as setup), reconnect and "
        "resume, snapshots to slow or stalled watchers, countdown phases (all bids are in the "
        "listing phase), several server processes, PostgreSQL/Redis backends, networks other "
        "than loopback, long runs (each window is seconds; the store grows by ~100k events "
        "per run), and many bidders on a lot that also has many watchers (only the single "
        "fan-out bidder's ack is measured with watchers present).",
    ]
    noisy: list[str] = []
    for source, tree in (("bidhall", bh), ("echo", echo)):
        for shape in ("latency", "saturation"):
            for group, runs in (tree.get(shape) or {}).items():
                for n, r in runs.items():
                    cpu = r.get("cpu", {})
                    client = cpu.get("client_cores", 0)
                    loop_ = cpu.get("server_event_loop_thread_cores", 0)
                    other = cpu.get("other_processes_cores", 0)
                    if other >= 0.25:
                        noisy.append(f"{source} {shape} {group} N={n} ({other})")
                    if client >= 0.85:
                        notes.append(f"{source} {shape} {group} N={n}: the client used "
                                     f"{client} cores: the figure may be client-bound.")
                    elif shape == "saturation" and (
                            loop_ + cpu.get("server_other_threads_cores", 0) >= 0.9):
                        notes.append(
                            f"{source} {shape} {group} N={n}: server-bound (event loop "
                            f"{loop_} cores + other threads "
                            f"{cpu.get('server_other_threads_cores', 0)}: about one core, "
                            f"i.e. the GIL; client {client} cores).")
                    if r.get("unanswered") or r.get("lost_with_connection"):
                        notes.append(f"{source} {shape} {group} N={n}: {r.get('unanswered')} "
                                     f"unanswered, {r.get('lost_with_connection')} lost bids.")
    if noisy:
        notes.append("Other processes on the box used >= 0.25 cores during these runs "
                     "(their figures are noisier; 'other_processes_cores' under 'cpu'): "
                     + ", ".join(noisy))
    fan = bh.get("fanout") or {}
    ack = (fan.get("bidder_ack_ms") or {}).get("p50")
    last = (fan.get("last_watcher_ms") or {}).get("p50")
    if isinstance(ack, float) and isinstance(last, float) and ack >= 0.9 * last:
        notes.append(f"bidhall fan-out: the bidder's own ack (p50 {ack} ms) arrived only after "
                     f"the event reached the last of the watchers (p50 {last} ms): on a lot "
                     "with many watchers, acks wait behind the fan-out.")
    for name, f in (("bidhall", bh.get("fanout")), ("broadcast", bc)):
        if f and f.get("cpu", {}).get("client_cores", 0) >= 0.5:
            notes.append(f"{name} fan-out: the client used {f['cpu']['client_cores']} cores "
                         "reading 1,000 watchers; delivery times include the client's own "
                         "time to read 1,000 sockets in turn.")
    return notes
