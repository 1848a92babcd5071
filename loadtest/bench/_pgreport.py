"""The JSON report of ``pg_cluster.py``: targets with pass/fail, ratios, load shapes, notes."""

from __future__ import annotations

import argparse
from typing import Any

# Sibling modules: pg_cluster.py is run as a script, so this directory is on sys.path.
from _stats import ratio, target_row

TARGETS = {
    "ack_100_bidders_p50_ms": 1.5,
    "ack_100_bidders_p99_ms": 10.0,
    "hot_lot_vs_row_lock": 3.0,
    "takeover_s": 5.0,
}


def get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def build_report(env: dict[str, Any], args: argparse.Namespace, results: dict[str, Any]
                 ) -> dict[str, Any]:
    lat = results.get("ack_latency") or {}
    sat = results.get("hot_lot_throughput") or {}
    fan = results.get("fanout") or {}
    tko = results.get("takeover") or {}

    ratios: dict[str, Any] = {}
    for n, r in lat.items():
        b, base = r.get("bidhall"), r.get("bare_insert_commit")
        ratios[f"ack_latency/bidders={n}"] = {
            "bidhall_p50_vs_bare_insert_p50": ratio(get(b, "ack_latency_ms", "p50"),
                                                    get(base, "ack_latency_ms", "p50")),
            "bidhall_p99_vs_bare_insert_p99": ratio(get(b, "ack_latency_ms", "p99"),
                                                    get(base, "ack_latency_ms", "p99")),
        }
    for n, r in sat.items():
        ratios[f"hot_lot/bidders={n}"] = {
            "bidhall_acks_per_s_vs_row_lock": ratio(get(r, "bidhall", "acks_per_s"),
                                                    get(r, "row_lock", "acks_per_s")),
            "bidhall_answers_per_s_vs_row_lock": ratio(get(r, "bidhall", "answers_per_s"),
                                                       get(r, "row_lock", "answers_per_s")),
        }
    if fan:
        w1, w2, bc = fan.get("workers_1"), fan.get("workers_2"), fan.get("bare_broadcast")
        ratios["fanout"] = {
            "workers_2_vs_workers_1_msgs_per_s": ratio(get(w2, "delivered_msgs_per_s"),
                                                       get(w1, "delivered_msgs_per_s")),
            "workers_1_vs_broadcast_msgs_per_s": ratio(get(w1, "delivered_msgs_per_s"),
                                                       get(bc, "delivered_msgs_per_s")),
            "workers_2_vs_broadcast_msgs_per_s": ratio(get(w2, "delivered_msgs_per_s"),
                                                       get(bc, "delivered_msgs_per_s")),
            "workers_1_vs_broadcast_delivery_p99": ratio(get(w1, "delivery_ms", "p99"),
                                                         get(bc, "delivery_ms", "p99")),
            "workers_2_vs_broadcast_delivery_p99": ratio(get(w2, "delivery_ms", "p99"),
                                                         get(bc, "delivery_ms", "p99")),
        }

    targets: list[dict[str, Any]] = []

    def target(*args: Any, **kwargs: Any) -> None:
        targets.append(target_row(*args, **kwargs))

    l100 = get(lat, "100", "bidhall", "ack_latency_ms")
    if lat:
        target("durable ack p50 (ms), 100 bidders on one lot, PostgreSQL", get(l100, "p50"),
               TARGETS["ack_100_bidders_p50_ms"], False,
               "results.ack_latency.100.bidhall (think-time shape)")
        target("durable ack p99 (ms), 100 bidders on one lot, PostgreSQL", get(l100, "p99"),
               TARGETS["ack_100_bidders_p99_ms"], False,
               "results.ack_latency.100.bidhall (think-time shape)")
    for n in sat:
        target(f"hot lot durable bids/s, bidhall / row-lock baseline, {n} bidders",
               get(ratios, f"hot_lot/bidders={n}", "bidhall_acks_per_s_vs_row_lock"),
               TARGETS["hot_lot_vs_row_lock"], True,
               f"results.hot_lot_throughput.{n} (closed loop)")
        target(f"hot lot answered bids/s (accepted + refused), bidhall / row-lock, {n} "
               "bidders (conservative: the baseline's refusals are cheap rollbacks)",
               get(ratios, f"hot_lot/bidders={n}", "bidhall_answers_per_s_vs_row_lock"),
               TARGETS["hot_lot_vs_row_lock"], True,
               f"results.hot_lot_throughput.{n} (answers_per_s)", informational=True)
    if tko:
        target("takeover: SIGKILL of the owner -> first ack by the new owner (s), worst round",
               tko.get("worst_s"), TARGETS["takeover_s"], False,
               "results.takeover.rounds[*].kill_to_first_ack_s (every bidder count)")
        for k, v in (tko.get("by_bidders") or {}).items():
            target(f"takeover with {k} bidder(s) through a non-owner: first ack, worst round (s)",
                   get(v, "first_ack", "worst_s"), TARGETS["takeover_s"], False,
                   f"results.takeover.by_bidders.{k}.first_ack", informational=True)
            target(f"takeover with {k} bidder(s) through a non-owner: EVERY bidder acked "
                   "again, worst round (s)", get(v, "every_bidder_acked", "worst_s"),
                   TARGETS["takeover_s"], False,
                   f"results.takeover.by_bidders.{k}.every_bidder_acked", informational=True)
    return {
        "benchmark": "bidhall pg_cluster",
        "schema": 1,
        "environment": env,
        "load_shapes": load_shapes(args),
        "targets": targets,
        "all_targets_pass": all(t["pass"] for t in targets if not t.get("informational")),
        "results": results,
        "ratios": ratios,
        "notes": notes_for(results, args),
    }


def load_shapes(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "ack_latency": "think-time shape of bid_latency.py: each bidder waits an exponential "
                       "think time after each answer (mean max(N/1000 s, 5 ms): ~1,000 bids/s "
                       "offered in total, ~200/s for N=1), one bid in flight per bidder; a "
                       "bidder is a pair of qualified identities taking turns after each ack; "
                       f"bidders {args.lat_bidders}; warm-up {args.warmup} s, window "
                       f"{args.lat_seconds} s; latency from just before the frame is written to "
                       "when the answer is read; only bids sent inside the window count",
        "bare_insert_commit": "the same number of asyncpg clients with the same think times, "
                              "each answer = one INSERT of a ~150-byte row as one autocommit "
                              "statement (its COMMIT waits for the WAL flush, "
                              "synchronous_commit on), same database, run right after bidhall's "
                              "window; clients share a pool when the server's connection limit "
                              "leaves fewer connections than clients ('connections')",
        "hot_lot_throughput": "closed loop (next bid as soon as the previous is answered), "
                              f"bidders {args.sat_bidders} on one lot, warm-up {args.warmup} s, "
                              f"window {args.sat_seconds} s; throughput = acks read inside the "
                              "window / window; bidhall and the row-lock baseline alternate "
                              "per bidder count, same client code and connections",
        "row_lock_baseline": "loadtest/bench/_pgrowlock.py: same Starlette/uvicorn stack and "
                             "frames; per bid BEGIN; SELECT ... FOR UPDATE; check; UPDATE; "
                             "INSERT; COMMIT on an asyncpg pool of "
                             f"{args.rowlock_pool}; answered after COMMIT; refusals rolled back "
                             "and not recorded",
        "hot_lot_figures": "acks_per_s = accepted durable bids/s (the target's figure); "
                           "answers_per_s adds refusals (too_low: a bid overtaken by a higher "
                           "one); bidhall records refusals durably, the row-lock baseline "
                           "rolls them back",
        "fanout": f"{args.watchers} anonymous watchers of one lot; {args.fan_senders} bidders "
                  "(pairs) in closed loop on their ack; window "
                  f"{args.fan_seconds} s after {args.fan_warmup} s; delivered msgs/s = bid "
                  "events read by watchers in the window / window; delivery = watcher read "
                  "time - bid send time (includes the durable commit), over (watcher, bid) "
                  "pairs of bids sent in the window; bidhall serve --workers 1 and 2 with "
                  "PostgreSQL and Redis (the kernel spreads connections over the workers; "
                  "'per_node' gives the split); bare broadcast: _baselines.py broadcast, "
                  f"{args.fan_senders} senders each sending its next frame once a watcher "
                  "read its previous one",
        "takeover": f"{args.takeover_nodes} bidhall serve processes (own ports, same "
                    "PostgreSQL and Redis); per round a new lot created on one process (its "
                    f"owner), {args.takeover_bidders} bidders (pairs; {args.takeover_rounds} "
                    "rounds per count) connected to another process bid in closed loop with "
                    f"exponential think time (mean {args.takeover_think * 1e3:.0f} ms) for "
                    f"{args.takeover_before} s, then the owner (pid from the lease "
                    "{prefix}:lease:{lot}) is SIGKILLed; first ack = kill -> first ack of a bid "
                    "attempt sent after the kill (any bidder); every bidder acked = until the "
                    "last bidder's first such ack; 'unavailable' answers (and error frames) "
                    "are retried with the same bid_id after 20 ms; a replacement process is "
                    "started after each round",
    }


def notes_for(results: dict[str, Any], args: argparse.Namespace) -> list[str]:
    notes = [
        "Client, servers, PostgreSQL and Redis share the same cores; each run's 'cpu' gives "
        "cores used by the client (this process), the server process(es) (event-loop thread "
        "and others), PostgreSQL (all its processes on the box), Redis, and the rest of the "
        "box.",
        "Not measured: networks other than loopback (every PostgreSQL round trip here is a "
        "loopback one), PostgreSQL on its own machine or with replication "
        "(synchronous_commit=remote_*), long runs (windows are seconds; the store grows by "
        "~10^5 events), many lots under load on PostgreSQL (only one hot lot), forwarded bids "
        "under load (fan-out and takeover bidders go through whichever process they reach; "
        "throughput with --workers is not measured), --workers on more cores than the box's 2 "
        "(shared with the client), Redis failures, a takeover under heavy load, a paused "
        "(not killed) owner, the HTTP API (only used for setup).",
    ]
    notes.append(
        f"Redis: the run's lease keys live in {args.redis_url} (a database index of its own), "
        "so no other bidhall on that Redis can hold or take over this run's lots; pub/sub "
        "channels are global in Redis whatever the index, so events and forwarded commands "
        "of this run and of any other bidhall on the same Redis (e.g. tests running "
        "meanwhile) reach each other's processes (bidhall's key prefix and channel names "
        "are fixed in server/app.py).")
    for n, r in (results.get("ack_latency") or {}).items():
        b = r.get("bidhall") or {}
        base = r.get("bare_insert_commit") or {}
        if n == "100":
            notes.append(
                f"ack latency N=100: the longest stretch without any answer was "
                f"{b.get('longest_gap_between_answers_ms')} ms for bidhall (max ack "
                f"{get(b, 'ack_latency_ms', 'max')} ms) and "
                f"{base.get('longest_gap_between_answers_ms')} ms for the bare INSERT (max "
                f"{get(base, 'ack_latency_ms', 'max')} ms). Stalls of 15-45 ms (a slow WAL "
                "flush; the server's event loop held up by a collection or by the box) come a "
                "few times a minute here; every bid of the lot arriving meanwhile waits behind "
                "the one commit in flight, so one stall in a window moves its p99.")
        cpu = b.get("cpu") or {}
        if (cpu.get("server_cores") or 0) >= 0.9:
            notes.append(f"ack latency N={n}: the server used {cpu['server_cores']} cores: "
                         "latency includes queueing behind the event loop.")
    for n, r in (results.get("hot_lot_throughput") or {}).items():
        for name in ("bidhall", "row_lock"):
            cpu = get(r, name, "cpu") or {}
            client, server = cpu.get("client_cores", 0), cpu.get("server_cores", 0)
            pg = cpu.get("postgres_cores", 0)
            if client >= 0.85:
                notes.append(f"hot lot {name} N={n}: the client used {client} cores: the "
                             "figure may be client-bound.")
            elif server >= 0.9:
                notes.append(f"hot lot {name} N={n}: server-bound ({server} cores in the "
                             f"server process, i.e. one interpreter; PostgreSQL {pg}).")
            elif name == "row_lock":
                rl = get(r, name) or {}
                too_low = (rl.get("rejects") or {}).get("too_low", 0)
                notes.append(f"hot lot row-lock N={n}: {rl.get('acks_per_s')} acks/s but "
                             f"{rl.get('answers_per_s')} answers/s ({too_low} too_low in the "
                             "window): concurrent transactions take the row lock out of "
                             "arrival order, so most bids find a higher one committed first; "
                             "each accepted bid holds the lock across 4 round trips and its "
                             f"WAL flush (client {client}, server {server}, PostgreSQL {pg} "
                             "cores: none saturated).")
    for name, f in (results.get("fanout") or {}).items():
        if not isinstance(f, dict) or "cpu" not in f:
            continue
        client = f["cpu"].get("client_cores", 0)
        if client >= 0.7:
            notes.append(f"fanout {name}: the client used {client} cores reading "
                         f"{f.get('watchers')} sockets: delivered msgs/s and delivery times "
                         "are partly client-bound.")
        if f.get("missing_deliveries") or f.get("snapshots_instead_of_events"):
            notes.append(f"fanout {name}: {f.get('missing_deliveries')} (watcher, bid) "
                         f"deliveries missing, {f.get('snapshots_instead_of_events')} "
                         "snapshots sent instead of a backlog (watchers that fell "
                         "BIDHALL_SEND_QUEUE events behind).")
    w2 = get(results, "fanout", "workers_2") or {}
    by_pid = w2.get("delivery_ms_by_server_pid") or {}
    if by_pid:
        owner = str(w2.get("owner_pid"))
        bidders = [str(p) for p in w2.get("bidder_connections_by_server_pid") or []]
        parts = [f"pid {pid}{' (owner)' if pid == owner else ''}: {v.get('watchers')} "
                 f"watchers, {bidders.count(pid)} bidder connections, delivery p50 "
                 f"{v.get('p50')} / p99 {v.get('p99')} ms" for pid, v in by_pid.items()]
        notes.append("fanout --workers 2, per process: " + "; ".join(parts) + ". The kernel "
                     "decides which process a connection reaches. A bid reaching the non-owner "
                     "is forwarded through Redis and its ack relayed back; events reach the "
                     "non-owner through Redis. Nothing slows the bidders when one process "
                     "falls behind with its watchers: its queues grow (up to "
                     "BIDHALL_SEND_QUEUE events per watcher, then a snapshot).")
    busy = get(w2, "cpu", "box_busy_cores")
    if isinstance(busy, float) and busy >= 1.7:
        notes.append(f"fanout --workers 2: the box was busy ({busy} of 2 cores: client "
                     f"{get(w2, 'cpu', 'client_cores')}, servers {get(w2, 'cpu', 'server_cores')})"
                     ": a second process cannot add throughput on 2 cores shared with the "
                     "client reading 1,000 sockets; this run does not show how --workers "
                     "scales on more cores.")
    tko = results.get("takeover") or {}
    for r in tko.get("rounds", []):
        if str(r.get("new_owner_is", "")).startswith("NOT"):
            notes.append(f"takeover round {r.get('round')}: the lot was taken over by a process "
                         f"that is not this run's ({r['new_owner_is']}): another bidhall shares "
                         "this Redis database; the round's time is not bidhall's.")
        stuck = []
        for b in r.get("per_bidder") or []:
            stuck += [a for a in b.get("attempts_after_kill_ms") or []
                      if a[2] in ("unavailable", "client_timeout") and a[1] - a[0] >= 4000]
            inflight = b.get("bid_in_flight_at_kill") or {}
            if (inflight.get("answered_after_kill_ms") or 0) >= 4000:
                stuck.append([-inflight.get("sent_before_kill_ms", 0),
                              inflight["answered_after_kill_ms"], inflight.get("answer")])
        if stuck:
            sent, answered, _ = stuck[0]
            when = (f"sent {sent} ms after the kill" if sent >= 0
                    else f"sent {-sent} ms before the kill")
            line = r.get("lease_timeline_after_kill_ms") or {}
            notes.append(f"takeover round {r.get('round')}: a bid attempt {when} was forwarded "
                         "to the dead owner (in flight there, or published while Redis still "
                         "counted the owner's subscription: "
                         f"{line.get('owner_channel_unsubscribed_ms')}"
                         " ms after the kill) and answered 'unavailable' only "
                         f"{answered} ms after the kill, when FORWARD_TIMEOUT (5 s) ran out, "
                         "though the lease had moved at "
                         f"{line.get('new_lease_ms')} ms ({len(stuck)} of {r.get('bidders')} "
                         f"bidders stuck so; first ack {r.get('kill_to_first_ack_s')} s, every "
                         f"bidder acked {r.get('kill_to_every_bidder_acked_s')} s after the "
                         "kill). A forward is failed early only when another request to the "
                         "dead node finds no subscriber (RedisCluster._abandon).")
    return notes
