"""Benchmark: the sealed-bid opening (key release storm, decryption, upload), beside baselines.

    .venv/bin/python loadtest/bench/opening.py                 # 500 bidders, 3 storms, ~8 min
    .venv/bin/python loadtest/bench/opening.py --bidders 50 --spread 5 --runs 1 \\
        --big-mb 8 --upload-mb 32                              # smoke run, ~1 min

Prints ONE JSON document to stdout (progress goes to stderr). ``bidhall serve`` runs as a
subprocess on SQLite in a temp dir (removed afterwards, also on failure and Ctrl+C), with
a bare baseline server beside it; all traffic is on 127.0.0.1. Bidders make their keys and
seal their bids in the benchmark process (``opening.keys``, ``opening.envelope.seal``)
and speak the platform's HTTP API like ``tests/tenders.py``: staff create, publish and
invite; each bidder registers its public key and uploads its envelope with tus.

What is measured:

1. Key release storm. ``--runs`` tenders (each fresh, prepared before the first storm)
   with ``--bidders`` bidders, each with a ``--bid-kib`` sealed bid uploaded. After the
   deadline the host starts one tender; its bidders then release their keys at times
   drawn uniformly over ``--spread`` seconds. A release is what the bidder's page does:
   GET its header, unwrap the file key locally, POST ``release``; the platform checks
   the key, records the release, decrypts the bid and records the outcome before it
   answers. Figures: the release ack (POST sent -> 200 read), the time from a release's
   POST to its ``bid_decrypted`` row on the PUBLIC live feed (one SSE subscriber, no
   token), and the headline: the last release's POST -> the ``announced`` frame (the
   complete read-out) on that feed, p99 over the storms. Also given from the last
   release's ack (the latest ack of the storm): the announcement is decided inside the
   last release's request, so it can arrive before that ack; that figure is signed.
   The read-out is checked (every bidder, outcome ``decrypted``,
   the sealed price). Baselines: the same requests at the same times (same offsets,
   same client code, same unwrap) to a bare Starlette + uvicorn server with bidhall's
   own socket and uvicorn options, whose release answers at once and pushes the same
   frames to its own SSE feed; and, in-process, unwrapping and opening one small bid.
2. Server-side decryption. A tender of ``--big-bids`` bids of ``--big-mb`` MiB
   (``min_bids`` set to match); keys released one at a time. MB/s = plaintext bytes /
   release request time (it includes the key check, two store commits and the key file
   write beside the decryption). Baselines, after each release: AES-256-GCM decryption
   of the same document in 1 MiB chunks (``cryptography``'s AESGCM) and
   ``opening.envelope.open_envelope`` of the same envelope file, both in this process.
3. Upload. A ``--upload-mb`` MiB sealed bid uploaded ``--upload-runs`` times through the
   platform's tus endpoint (POST, then PATCHes of ``--chunk-mb`` MiB on one connection;
   the answer to the last PATCH comes after the envelope check, SHA-256, the store commit
   and the signed receipt); the receipt's SHA-256 is checked. Baseline after each
   upload: the same bytes written in the same pieces to the uploads directory with an
   fsync per piece (``tus_upload.write_fsync``), and with one fsync at the end.

MB/s is 10^6 bytes per second. CPU use of the client, the server and other processes is
reported per phase, since the box may be shared.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Sibling modules: this file is run as a script, so its directory is on sys.path.
from _common import REPO, perf
from _opening_load import (
    Api,
    Feed,
    MiB,
    Party,
    bare_sender,
    decryption_phase,
    enroll_all,
    in_process_small,
    platform_sender,
    price_of,
    random_file,
    run_storm,
    seal_all,
    seal_file,
    serve_bare,
    tus_upload_file,
    upload_phase,
)
from _procs import Servers, bin_command, environment, free_port, run_bench, wait_listening
from _stats import T0, CpuMeter, log, pct, r3, ratio, summary_ms

MINUTE_MS = 60_000
FAR_MS = 4 * 3600_000  # deadline of tenders that are never opened (calibration, uploads)


# ====================================================================== servers
async def start_servers(args: argparse.Namespace, servers: Servers, tmp: Path
                        ) -> tuple[int, subprocess.Popen[bytes], str, int,
                                   subprocess.Popen[bytes]]:
    data_dir = tmp / "bidhall-data"
    env = dict(os.environ, BIDHALL_MAX_UPLOAD=str(max(1 << 30, 2 * max(args.upload_mb,
                                                                       args.big_mb) * MiB)))
    for name in ("BIDHALL_DATABASE_URL", "BIDHALL_DATA_DIR", "BIDHALL_REDIS_URL"):
        env.pop(name, None)
    cmd = bin_command("bidhall", "server.cli")
    token = subprocess.run([*cmd, "staff-token", "--data-dir", str(data_dir)], env=env,
                           check=True, capture_output=True, text=True, cwd=str(REPO),
                           timeout=60).stdout.strip().splitlines()[-1]
    port = free_port()
    proc = servers.start("bidhall", [*cmd, "serve", "--port", str(port), "--data-dir",
                                     str(data_dir)], env)
    await wait_listening(port, proc)
    bare_port = free_port()
    bare = servers.start("bare", [sys.executable, __file__, "--serve-bare", "--port",
                                  str(bare_port)], dict(os.environ))
    await wait_listening(bare_port, bare)
    return port, proc, token, bare_port, bare


# ====================================================================== setup
async def prepare_storm(api: Api, args: argparse.Namespace, tender: str, allowance: float
                        ) -> tuple[str, list[Party], float, int]:
    """Seal ``--bidders`` bids, create the tender (deadline ``allowance`` seconds away) and
    set every bidder up. If the deadline passes first, once more under a new id with twice
    the allowance."""
    for attempt in range(2):
        tid = tender if attempt == 0 else f"{tender}-again"
        parties = [Party(tid, f"b{i:04d}", price_of(i)) for i in range(args.bidders)]
        await seal_all(parties, args.bid_kib)
        deadline = int((time.time() + allowance) * 1000)
        await api.create(tid, deadline, min_bids=min(args.bidders, 1000),
                         decrypt_window=window_ms(args))
        try:
            return tid, parties, await enroll_all(api, parties, args.concurrency), deadline
        except RuntimeError as exc:
            if "deadline_passed" not in str(exc):
                raise
            log(f"{tid}: the deadline ({allowance:.0f}s) passed during the setup; again")
            allowance *= 2
    raise RuntimeError(f"{tender}: could not set up {args.bidders} bidders before the "
                       "deadline; raise --setup-slack")


def window_ms(args: argparse.Namespace) -> int:
    return min(4 * 60 * MINUTE_MS, max(30 * MINUTE_MS, int(args.spread * 2000) + 10 * MINUTE_MS))


# ====================================================================== phase 1: the storm
async def storm_phase(api: Api, bare_port: int, args: argparse.Namespace,
                      tenders: list[str], parties: list[list[Party]], rng: random.Random,
                      meter: CpuMeter, bare_meter: CpuMeter) -> dict[str, Any]:
    import httpx

    runs: list[dict[str, Any]] = []
    bare_runs: list[dict[str, Any]] = []
    timeout = max(60.0, args.spread)
    bare_http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{bare_port}", timeout=120,
                                  limits=httpx.Limits(max_connections=64,
                                                      max_keepalive_connections=64))
    try:
        for k, (tender, group) in enumerate(zip(tenders, parties, strict=True)):
            offsets = [rng.uniform(0, args.spread) for _ in group]
            feed = Feed(api.http, f"/api/tenders/{tender}/live")
            feed.start()
            await asyncio.wait_for(feed.connected.wait(), 10)
            started = await api.staff_post(tender, "start")
            if started.get("kind") != "started":
                raise RuntimeError(f"start of {tender}: {started}")
            gc.collect()
            log(f"storm {k + 1}/{len(tenders)}: {tender} started ({started['kind']}); "
                f"{len(group)} releases over {args.spread}s")
            res = await run_storm(group, offsets, platform_sender(api), feed, meter, timeout)
            res = {"tender_id": tender, "started_bids": len((feed.started or {}).get("bids")
                                                            or []), **res}
            runs.append(res)
            log(f"  ack {res['release_ack_ms']}, row {res['release_sent_to_feed_row_ms']}, "
                f"last ack -> announced {res['last_ack_to_announced_ms']} ms, errors "
                f"{res['errors']}, read-out complete {res['read_out_complete']}")
            if args.baseline_storms == "every" or (args.baseline_storms == "first" and k == 0):
                bfeed = Feed(bare_http, f"/bare/r{k}/live")
                bfeed.start()
                await asyncio.wait_for(bfeed.connected.wait(), 10)
                gc.collect()
                bres = await run_storm(group, offsets, bare_sender(bare_http, f"r{k}",
                                                                   len(group)),
                                       bfeed, bare_meter, timeout, bare=True)
                bare_runs.append({"after_storm": k + 1, **bres})
                log(f"  bare: ack {bres['release_ack_ms']}, row "
                    f"{bres['release_sent_to_feed_row_ms']}, last ack -> announced "
                    f"{bres['last_ack_to_announced_ms']} ms")
    finally:
        await bare_http.aclose()

    def worst(rs: list[dict[str, Any]], key: str) -> dict[str, Any]:
        return {k: max((r[key].get(k, 0) for r in rs), default=None)
                for k in ("p50", "p90", "p99", "max")} if rs else {}

    def pooled(rs: list[dict[str, Any]], key: str) -> dict[str, Any]:
        return summary_ms(x for r in rs for x in r.pop(key))

    ack_all, row_all = pooled(runs, "_acks"), pooled(runs, "_rows")
    bare_ack_all, bare_row_all = pooled(bare_runs, "_acks"), pooled(bare_runs, "_rows")

    heads = sorted(r["last_ack_to_announced_ms"] for r in runs
                   if r["last_ack_to_announced_ms"] is not None)
    sent = sorted(r["last_release_sent_to_announced_ms"] for r in runs
                  if r["last_release_sent_to_announced_ms"] is not None)
    over = {"runs": len(runs),
            "last_ack_to_announced_ms": {"runs": heads, "p99": pct(heads, 99) if heads
                                         else None, "max": heads[-1] if heads else None},
            "last_release_sent_to_announced_ms": {"runs": sent, "p99": pct(sent, 99)
                                                  if sent else None,
                                                  "max": sent[-1] if sent else None},
            "all_runs_release_ack_ms": ack_all,
            "all_runs_release_sent_to_feed_row_ms": row_all,
            "worst_run_release_ack_ms": worst(runs, "release_ack_ms"),
            "worst_run_release_sent_to_feed_row_ms": worst(runs,
                                                           "release_sent_to_feed_row_ms"),
            "all_read_outs_complete": all(r["read_out_complete"] for r in runs),
            "errors": sum(sum(r["errors"].values()) for r in runs)}
    bare = {"runs": bare_runs, "all_runs_release_ack_ms": bare_ack_all,
            "all_runs_release_sent_to_feed_row_ms": bare_row_all,
            "worst_run_release_ack_ms": worst(bare_runs, "release_ack_ms"),
            "worst_run_release_sent_to_feed_row_ms": worst(bare_runs,
                                                           "release_sent_to_feed_row_ms")}
    return {"runs": runs, "over_runs": over, "bare_baseline": bare}


# ====================================================================== main
async def amain(args: argparse.Namespace, servers: Servers, tmp: Path) -> dict[str, Any]:
    env = environment(("uvicorn", "starlette", "httpx", "cryptography", "msgspec",
                       "uvloop"))
    rng = random.Random(args.seed)
    tag = secrets.token_hex(3)
    port, proc, token, bare_port, bare = await start_servers(args, servers, tmp)
    meter, bare_meter = CpuMeter(proc.pid), CpuMeter(bare.pid)
    api = Api(port, token, connections=max(32, 2 * args.concurrency))
    n, setup = args.bidders, {}
    try:
        # ---- large bids, sealed on the client side before their tenders exist
        big = [Party(f"bench-{tag}-big", f"big{i}", price_of(i)) for i in range(args.big_bids)]
        up = Party(f"bench-{tag}-upload", "up0", price_of(0))
        t = perf()
        big_doc = random_file(tmp / "big-doc.bin", args.big_mb)
        for i, p in enumerate(big):
            await asyncio.to_thread(seal_file, p, big_doc, tmp / f"big{i}.bidenv")
        up_doc = random_file(tmp / "upload-doc.bin", args.upload_mb)
        await asyncio.to_thread(seal_file, up, up_doc, tmp / "upload.bidenv")
        up_doc.unlink()
        setup["seal_large_s"] = r3(perf() - t)

        # ---- calibration (a tender never opened): how fast bidders are set up, once warm
        cal = [Party(f"bench-{tag}-cal", f"c{i:03d}", price_of(i)) for i in range(16 + 64)]
        await seal_all(cal, args.bid_kib)
        await api.create(cal[0].tender, int(time.time() * 1000) + FAR_MS)
        await enroll_all(api, cal[:16], args.concurrency)
        per_bidder = await enroll_all(api, cal[16:], args.concurrency) / 64
        setup.update(calibration_bidders=64, calibration_s_per_bidder=r3(per_bidder))

        # ---- the tenders to open, each set up before its own deadline
        big_bytes = sum(p.path.stat().st_size for p in big if p.path is not None)
        deadlines = [int((time.time() + 15 + big_bytes / 10e6) * 1000)]
        await api.create(big[0].tender, deadlines[0], min_bids=len(big),
                         decrypt_window=window_ms(args))
        t = perf()
        for p in big:
            await api.enroll(p)
            assert p.path is not None
            await asyncio.to_thread(tus_upload_file, api.base_url, p, p.path,
                                    args.chunk_mb * MiB)
        setup["big_uploads_s"] = r3(perf() - t)
        # The first tender's allowance is generous (a command's cost grows with the bidders
        # already in the tender); the next ones follow the measured setup time.
        allowance = 15 + 4 * per_bidder * n
        ids, groups, setup["storm_tenders"] = [], [], []
        for k in range(args.runs):
            tender, group, seconds, deadline = await prepare_storm(
                api, args, f"bench-{tag}-storm{k + 1}", allowance)
            ids.append(tender)
            groups.append(group)
            deadlines.append(deadline)
            setup["storm_tenders"].append({"tender_id": tender, "setup_s": r3(seconds),
                                           "allowance_s": r3(allowance), "margin_s":
                                           r3(deadline / 1000 - time.time())})
            log(f"set up {n} bidders of {tender} in {seconds:.1f}s "
                f"(deadline allowance {allowance:.0f}s)")
            allowance = 10 + args.setup_slack * seconds

        # ---- phase 3 while the deadlines come (its tender is never opened)
        await api.create(up.tender, int(time.time() * 1000) + FAR_MS)
        await api.enroll(up)
        upload = await upload_phase(api, up, args.upload_runs, args.chunk_mb * MiB,
                                    tmp / "bidhall-data" / "uploads", meter)
        wait = max(deadlines) / 1000 + 0.5 - time.time()
        setup["waited_for_deadlines_s"] = r3(max(0.0, wait))
        if wait > 0:
            log(f"waiting {wait:.0f}s for the last deadline")
            await asyncio.sleep(wait)

        # ---- phase 2, then phase 1
        gc.collect()
        gc.freeze()
        decryption = await decryption_phase(api, big[0].tender, big, big_doc, meter)
        release = await storm_phase(api, bare_port, args, ids, groups, rng, meter, bare_meter)
        release["in_process_one_small_bid"] = in_process_small(groups[0])
    finally:
        await api.close()
    env["seconds_total"] = r3(perf() - T0)
    return build_report(env, args, setup, release, decryption, upload)


def build_report(env: dict[str, Any], args: argparse.Namespace, setup: dict[str, Any],
                 release: dict[str, Any], decryption: dict[str, Any],
                 upload: dict[str, Any]) -> dict[str, Any]:
    over, bare = release["over_runs"], release["bare_baseline"]
    acks, bare_acks = over["all_runs_release_ack_ms"], bare["all_runs_release_ack_ms"]
    rows, bare_rows = (over["all_runs_release_sent_to_feed_row_ms"],
                       bare["all_runs_release_sent_to_feed_row_ms"])
    bare_sent = sorted(r["last_release_sent_to_announced_ms"] for r in bare["runs"]
                       if r["last_release_sent_to_announced_ms"] is not None)
    headline = {
        "last_release_sent_to_read_out_ms_p99_over_runs":
            over["last_release_sent_to_announced_ms"]["p99"],
        "last_release_sent_to_read_out_ms_max_over_runs":
            over["last_release_sent_to_announced_ms"]["max"],
        "last_release_sent_to_read_out_ms_p99_bare_baseline":
            pct(bare_sent, 99) if bare_sent else None,
        "last_release_ack_to_read_out_ms_p99_over_runs":
            over["last_ack_to_announced_ms"]["p99"],
        "release_ack_ms_p50": acks.get("p50"), "release_ack_ms_p99": acks.get("p99"),
        "release_ack_ms_max": acks.get("max"),
        "release_ack_ms_p99_bare_baseline": bare_acks.get("p99"),
        "release_sent_to_feed_row_ms_p50": rows.get("p50"),
        "release_sent_to_feed_row_ms_p99": rows.get("p99"),
        "release_sent_to_feed_row_ms_p99_bare_baseline": bare_rows.get("p99"),
        "read_outs_complete": over["all_read_outs_complete"],
        "release_errors": over["errors"],
        "decryption_server_mb_per_s": decryption["server_mb_per_s_median"],
        "decryption_raw_aesgcm_mb_per_s": decryption["raw_aesgcm_mb_per_s_median"],
        "decryption_open_envelope_in_process_mb_per_s":
            decryption["open_envelope_in_process_mb_per_s_median"],
        "upload_platform_mb_per_s": upload["platform_tus"]["mb_per_s_median"],
        "upload_write_fsync_per_piece_mb_per_s":
            upload["baseline_write_fsync_per_piece"]["mb_per_s_median"],
    }
    ratios = {
        "last_release_sent_to_read_out_p99_over_bare": ratio(
            headline["last_release_sent_to_read_out_ms_p99_over_runs"],
            headline["last_release_sent_to_read_out_ms_p99_bare_baseline"]),
        "release_ack_p50_over_bare": ratio(acks.get("p50"), bare_acks.get("p50")),
        "release_ack_p99_over_bare": ratio(acks.get("p99"), bare_acks.get("p99")),
        "release_sent_to_feed_row_p99_over_bare": ratio(rows.get("p99"), bare_rows.get("p99")),
        "decryption_server_over_raw_aesgcm": decryption["server_over_raw_aesgcm"],
        "decryption_server_over_open_envelope_in_process":
            decryption["server_over_open_envelope_in_process"],
        "upload_platform_over_write_fsync_per_piece":
            upload["platform_over_write_fsync_per_piece"],
    }
    return {
        "benchmark": "bidhall opening", "schema": 1, "environment": env,
        "params": {"bidders": args.bidders, "spread_s": args.spread, "runs": args.runs,
                   "bid_kib": args.bid_kib, "big_mib": args.big_mb, "big_bids": args.big_bids,
                   "upload_mib": args.upload_mb, "upload_runs": args.upload_runs,
                   "chunk_mib": args.chunk_mb, "setup_concurrency": args.concurrency,
                   "baseline_storms": args.baseline_storms, "seed": args.seed,
                   "mb": "10^6 bytes", "store": "SQLite (WAL, synchronous=FULL)"},
        "headline": headline, "ratios": ratios, "setup": setup,
        "results": {"release_storm": release, "decryption": decryption, "upload": upload},
        "notes": [
            "Every tender is prepared before the first storm, each with its own deadline, all "
            "passed before the first storm: each storm opens a fresh tender while the others "
            "wait in state deadline.",
            "last_ack_to_announced_ms is signed: the read-out is decided inside the last "
            "release's request and pushed to the feed before that request is answered, so it "
            "can reach the subscriber before the ack.",
            "The public feed's bid_decrypted frame names the bidder only; the prices come "
            "with the announced frame, which is checked against the sealed prices.",
            "One SSE subscriber; client and servers share the box and loopback. "
            "client_lateness_ms shows how late the client sent each release.",
            "Not measured: many feed subscribers, several processes (Redis), PostgreSQL, "
            "TLS, a browser client.",
        ],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bidders", type=int, default=500, help="bidders per storm (default 500)")
    p.add_argument("--spread", type=float, default=60.0,
                   help="seconds over which the releases are spread (default 60)")
    p.add_argument("--runs", type=int, default=3, help="storms, each a fresh tender (default 3)")
    p.add_argument("--bid-kib", type=int, default=16, help="storm bid size in KiB (default 16)")
    p.add_argument("--big-mb", type=int, default=64, help="large bid size in MiB (default 64)")
    p.add_argument("--big-bids", type=int, default=3, help="large bids released (default 3)")
    p.add_argument("--upload-mb", type=int, default=256, help="upload size in MiB (default 256)")
    p.add_argument("--upload-runs", type=int, default=3, help="uploads measured (default 3)")
    p.add_argument("--chunk-mb", type=int, default=8, help="tus PATCH size in MiB (default 8)")
    p.add_argument("--concurrency", type=int, default=16,
                   help="bidders set up at a time (default 16)")
    p.add_argument("--baseline-storms", choices=("every", "first", "none"), default="every",
                   help="bare baseline storm after every storm, the first only, or none")
    p.add_argument("--setup-slack", type=float, default=1.5,
                   help="a storm tender's deadline: 10 s + slack x the previous one's setup")
    p.add_argument("--seed", type=int, default=1, help="seed of the release times")
    p.add_argument("--dir", default=None, help="where the temp dir goes (default: TMPDIR)")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (logs, data)")
    p.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.bidders < 1 or args.runs < 1 or args.big_bids < 1 or args.upload_runs < 1:
        p.error("--bidders, --runs, --big-bids and --upload-runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_bare:
        serve_bare(args.port)
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="bidhall-opening-bench-", dir=args.dir))
    servers = Servers(tmp)
    return run_bench(lambda: amain(args, servers, tmp), servers, tmp, keep_tmp=args.keep_tmp,
                     logs=("bidhall", "bare"))


if __name__ == "__main__":
    sys.exit(main())
