"""Benchmark: bidhall's WebRTC relay (streaming/relay.py), viewers per core, frame loss and
glass-to-glass latency, beside aiortc's stock re-encoding path and a direct peer-to-peer link.

    .venv/bin/python loadtest/bench/stream_relay.py            # full run, ~5 minutes
    .venv/bin/python loadtest/bench/stream_relay.py --quick    # smoke run, ~1 minute
    .venv/bin/python loadtest/bench/stream_relay.py --help     # ladders, windows, processes

Prints ONE JSON document to stdout (progress goes to stderr). Everything runs on 127.0.0.1
(ICE candidates included, see ``_stream_peers.loopback_ice``); the bidhall server and the
viewer processes are subprocesses in a temp dir that is removed afterwards (also on failure
and Ctrl+C).

What is measured:

1. Passthrough capacity. One bidhall server (SQLite, one process: the relay under test).
   One publisher (this process) sends 1280x720 30 fps H.264 by WHIP: ~3 s of video encoded
   once with libx264 at start (baseline, no B-frames, a keyframe every second, ~2 Mbit/s)
   and looped as ``av.Packet`` from a track, so aiortc packetizes it without encoding. N
   viewers by WHEP, in ``--client-procs`` viewer processes, for N up a ladder (10, 25, 50,
   75, 100, 125, 150, 200). A viewer does not decode: its receiver's decoder queue is replaced by a
   queue that counts each frame the jitter buffer releases and drops it. Keyframes carry
   the publisher's frame number (a small SEI NAL unit, see ``_stream_peers``), so each
   viewer knows the number of every frame it gets: loss is counted per frame (frames the
   publisher sent in the window that a viewer never got, 1 s of grace after the window),
   and so is the delay from the publisher's sender to the viewer's jitter buffer
   ("transit"). Per step: the server process's CPU (utime + stime of all its threads from
   /proc, and of its event-loop thread alone), the CPU of the publisher's process and of
   each viewer process, the box's busy cores. The ladder stops at the first step that
   loses more than ``--max-loss`` % of frames or where the server's event loop (the
   relay runs on one thread) is saturated.

2. The stock path, same run, same server and publisher: viewers that offer VP8 only get
   bidhall's fallback (aiortc's ``MediaRelay``: the publisher's video decoded once,
   encoded for each viewer). Frames are counted the same way (the re-encoded stream has no
   stamp, so loss = 1 - frames received / frames sent in the window). Its ladder (1, 2, 3,
   4, 6, 8, 12) stops the same way, or when the server uses nearly every core of the box
   (the encoders run on threads).

   For both: viewers per core = viewers at the largest step within the loss bound / server
   cores used at that step; CPU per viewer = server cores / viewers (and the marginal cost
   over the publisher-only base). Client CPU is reported beside it, so a reader sees
   whether the server, the viewers or the box (2 cores shared by all) set the limit.

3. Glass-to-glass latency. A publisher in this process encodes live 640x360 30 fps frames
   into which it draws the time (ms since an origin, 32 black/white 16 px blocks and their
   inverse); viewers in this process decode every frame and read the time back; latency =
   time of the decoded frame's arrival at the viewer - drawn time (one clock). Paths:
   ``direct`` (aiortc publisher -> aiortc viewer peer-to-peer, no server), ``relay``
   (``--latency-viewers`` H.264 viewers through bidhall's passthrough relay) and ``stock``
   (the same number of VP8 viewers through the re-encoding fallback).

Ratios are passthrough / stock (viewers per core) and stock / passthrough (CPU per viewer);
relay latency is also given minus the direct baseline. Targets: >= 100 viewers per core
through the passthrough relay; glass-to-glass p50 <= 150 ms through it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

# Sibling modules: this file is run as a script, so its directory is on sys.path.
from _common import perf
from _procs import (
    Servers,
    environment,
    raise_fd_limit,
    run_bench,
    wait_for_quiet,
)
from _stats import T0, log, pct, r3, ratio, target_row
from _stream_bench import CLOCK_LOT, LOT, Bench, Meter
from _stream_peers import (
    ClockVideo,
    ClockViewer,
    http,
    loopback_ice,
    negotiate,
    now,
    preencode,
    prefer,
)
from aiortc import RTCPeerConnection

TARGETS = {"passthrough_viewers_per_core": 100.0, "glass_to_glass_relay_p50_ms": 150.0}


# ====================================================================== ladders
def summary(values_ms: list[float]) -> dict[str, Any]:
    v = sorted(values_ms)
    if not v:
        return {"n": 0}
    return {"n": len(v), "p50": r3(pct(v, 50)), "p90": r3(pct(v, 90)), "p99": r3(pct(v, 99)),
            "max": r3(v[-1]), "mean": r3(sum(v) / len(v))}


def judge(step: dict[str, Any], b: Bench, reencode: bool) -> None:
    """Adds ``sustained`` and the saturation flags to a measured step."""
    args = b.args
    cpu = step["cpu"]
    ncpu = os.cpu_count() or 1
    loop = cpu.get("server_event_loop_thread_cores") or 0.0
    server = cpu.get("server_cores") or 0.0
    step["server_event_loop_saturated"] = loop >= args.saturated
    step["server_cpu_saturated"] = loop >= args.saturated or (
        reencode and server >= args.saturated * ncpu)
    step["viewer_process_saturated"] = any(
        c >= args.saturated for c in cpu["viewer_process_event_loop_cores"])
    step["box_saturated"] = cpu.get("box_busy_cores", 0.0) >= args.saturated * ncpu
    step["publisher_behind"] = step["sent_fps"] < 0.97 * args.fps
    step["sustained"] = (step["loss_pct"]["aggregate"] <= args.max_loss
                         and step["viewers_connected"] == step["viewers"])
    n = step["viewers"]
    step["server_mcores_per_viewer"] = r3(1000 * server / n) if n else None
    if not reencode and n and b.rtp_packets_per_s:
        # Server CPU per RTP packet it sends (the publisher-only base taken out).
        step["server_us_per_rtp_packet_sent"] = r3(
            1e6 * max(0.0, server - b.base_server_cores)
            / (n * b.rtp_packets_per_s * step["sent_fps"] / args.fps))
    step["viewers_per_server_core"] = r3(n / server) if n and server else None


def limit_reason(step: dict[str, Any]) -> list[str]:
    why = []
    if step["server_cpu_saturated"]:
        why.append("server CPU saturated (its event-loop thread, or every core)")
    if step["viewer_process_saturated"]:
        why.append("a viewer process saturated its core (client-bound)")
    if step["box_saturated"]:
        why.append("the box's cores were all busy (server and clients share them)")
    if step["publisher_behind"]:
        why.append("the publisher sent fewer frames than it should (starved of CPU)")
    return why or ["none seen: neither the server nor a client was saturated"]


async def quiet(b: Bench, label: str) -> float:
    """Wait (a few seconds at most, ``--quiet-budget`` over the run) until processes other
    than this benchmark's use less than ``--noisy`` cores: the box may be shared."""
    assert b.meter is not None
    if b.quiet_left <= 0:
        return 0.0
    t0 = perf()
    deadline = t0 + min(6.0, b.quiet_left)
    said = False
    while True:
        a = b.meter.sample()
        await asyncio.sleep(0.5)
        other = Meter.cores(a, b.meter.sample()).get("other_processes_cores", 0.0)
        if other < b.args.noisy or perf() >= deadline:
            break
        if not said:
            log(f"  ({label}: other processes use {other:.2f} cores; waiting for a quieter "
                "box)")
            said = True
    spent = perf() - t0
    b.quiet_left -= spent
    return r3(spent)


async def measure_step(b: Bench, n: int, codec: str, reencode: bool) -> dict[str, Any]:
    """Open viewers up to ``n``, then measure a window (again, up to ``--retries`` times,
    when other processes disturbed it; the least disturbed attempt is kept)."""
    args = b.args
    t_add = perf()
    added = await b.pool.add(n, b.port, b.path(LOT, "whep"), codec, args.fps,
                             args.connect_concurrency)
    ready = await b.pool.all(op="ready", timeout=args.ready_timeout)
    log(f"  {n} {codec} viewers: opened in {perf() - t_add:.1f}s "
        f"({added['failed']} failed), {sum(r['ready'] for r in ready)} receiving")
    await asyncio.sleep(args.settle)
    attempts: list[dict[str, Any]] = []
    for attempt in range(1 + args.retries):
        waited = await quiet(b, f"{n} {codec}")
        step = await window(b, n, codec, reencode, added)
        step["waited_for_quiet_s"] = waited
        attempts.append(step)
        other = step["cpu"].get("other_processes_cores", 0.0)
        if other < args.noisy or attempt == args.retries or b.retry_left < args.window:
            break
        b.retry_left -= args.window
        log(f"  other processes used {other} cores during that window: measuring again")
    best = min(attempts, key=lambda x: x["cpu"].get("other_processes_cores", 0.0))
    best["attempts"] = len(attempts)
    if len(attempts) > 1:
        best["other_attempts"] = [{"loss_pct": x["loss_pct"]["aggregate"],
                                   "server_cores": x["cpu"]["server_cores"],
                                   "other_processes_cores": x["cpu"].get(
                                       "other_processes_cores")}
                                  for x in attempts if x is not best]
    return best


async def window(b: Bench, n: int, codec: str, reencode: bool, added: dict[str, Any]
                 ) -> dict[str, Any]:
    args = b.args
    assert b.track is not None and b.meter is not None
    track, meter = b.track, b.meter
    a = meter.sample()
    s0, t0 = track.seq, now()
    await asyncio.sleep(args.window)
    s1, t1 = track.seq, now()
    z = meter.sample()
    cpu = Meter.cores(a, z)
    wall = z["wall"] - a["wall"]
    sent = s1 - s0
    step: dict[str, Any] = {"viewers": n, "codec": codec, "window_s": r3(wall),
                            "frames_sent": sent, "sent_fps": r3(sent / wall)}
    await asyncio.sleep(args.grace)
    if reencode:
        # No stamp survives re-encoding: per viewer, the frames that arrived in the window,
        # the run of frame offsets they cover (gaps are losses) and how fast the viewer
        # fell behind real time (a growing backlog: frames not delivered in time).
        lines = await b.pool.all(op="timeline", t0=t0, t1=t1, fps=args.fps)
        received = [x for r in lines for x in r["received"]]
        spans = [x for r in lines for x in r["span"]]
        slopes = [x for r in lines for x in r["slope"]]
        delivered = [(got / span if span else 0.0) * (1 - min(1.0, max(0.0, slope)))
                     for got, span, slope in zip(received, spans, slopes, strict=True)]
        step["fell_behind_ms_per_s"] = {"mean": r3(1000 * sum(slopes) / max(1, len(slopes))),
                                        "max": r3(1000 * max(slopes, default=0.0))}
        transit = None
    else:
        stats = await b.pool.all(op="stats", s0=s0, sent_at=track.sent_at[s0:s1])
        received = [x for r in stats for x in r["received"]]
        delivered = [min(x, sent) / sent if sent else 0.0 for x in received]
        transit = summary([d / 1000 for r in stats for d in r["delays_us"]])
    connected = len(received)
    per_viewer_loss = [100 * (1 - d) for d in delivered]
    step.update({
        "viewers_connected": connected,
        "viewers_on_server": await b.viewers_on_server(LOT),
        "open_failures": added["failed"], "open_errors": added["errors"],
        "open_seconds": added["seconds"],
        "received_per_viewer": {"mean": r3(sum(received) / max(1, connected)),
                                "min": min(received, default=0)},
        # A viewer that never connected lost every frame.
        "loss_pct": {"aggregate": r3((sum(per_viewer_loss) + 100 * max(0, n - connected))
                                     / n) if n else None,
                     "worst_viewer": r3(max(per_viewer_loss, default=0.0)),
                     "viewers_over_limit": sum(x > b.args.max_loss
                                               for x in per_viewer_loss)},
        "loss_counted": ("per frame number (stamped keyframes + RTP timestamps): frames "
                         "sent in the window never received" if not reencode else
                         "gaps in the frames received in the window, plus the share of "
                         "real time a viewer fell behind"),
    })
    if transit is not None:
        step["transit_ms"] = transit
    step["cpu"] = cpu
    judge(step, b, reencode)
    log(f"  {n} {codec}: loss {step['loss_pct']['aggregate']}% (worst viewer "
        f"{step['loss_pct']['worst_viewer']}%), server {cpu['server_cores']} cores "
        f"(loop {cpu['server_event_loop_thread_cores']}), viewers "
        f"{cpu['viewer_process_cores']}, publisher {cpu['publisher_process_cores']}, box "
        f"{cpu.get('box_busy_cores')}, others {cpu.get('other_processes_cores')}"
        + (f", transit p50 {transit.get('p50')} ms p99 "
                                           f"{transit.get('p99')} ms" if transit else ""))
    return step


async def base_step(b: Bench) -> dict[str, Any]:
    """The publisher alone: the server's CPU with no viewer."""
    assert b.meter is not None and b.track is not None
    await asyncio.sleep(b.args.settle)
    a, s0 = b.meter.sample(), b.track.seq
    await asyncio.sleep(min(b.args.window, 5.0))
    z, s1 = b.meter.sample(), b.track.seq
    cpu = Meter.cores(a, z)
    log(f"  publisher only: server {cpu['server_cores']} cores, publisher "
        f"{cpu['publisher_process_cores']}")
    return {"viewers": 0, "frames_sent": s1 - s0,
            "sent_fps": r3((s1 - s0) / (z["wall"] - a["wall"])), "cpu": cpu}


async def ladder(b: Bench, counts: list[int], codec: str, reencode: bool,
                 base: dict[str, Any]) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    stopped = "ladder ended"
    for n in counts:
        try:
            step = await measure_step(b, n, codec, reencode)
        except Exception as exc:
            log(f"  {n} {codec} viewers: step failed: {exc!r}")
            steps.append({"viewers": n, "error": repr(exc)[:500], "sustained": False})
            stopped = f"step {n} failed: {exc!r}"[:300]
            break
        steps.append(step)
        if not step["sustained"]:
            stopped = (f"{n} viewers lost {step['loss_pct']['aggregate']}% of frames "
                       f"(> {b.args.max_loss}%)")
            break
        if step["server_cpu_saturated"]:
            stopped = f"server CPU saturated at {n} viewers"
            break
    await b.pool.close_viewers()
    await asyncio.sleep(1.0)
    return conclude(steps, base, stopped)


def conclude(steps: list[dict[str, Any]], base: dict[str, Any], stopped: str
             ) -> dict[str, Any]:
    ok = [s for s in steps if s.get("sustained") and "cpu" in s]
    best = ok[-1] if ok else None
    base_cores = base["cpu"]["server_cores"] or 0.0
    out: dict[str, Any] = {"steps": steps, "stopped": stopped,
                           "base_publisher_only_server_cores": base_cores}
    if best is None:
        out.update({"max_viewers_sustained": 0, "viewers_per_core": None,
                    "server_mcores_per_viewer": None})
        return out
    n, cores = best["viewers"], best["cpu"]["server_cores"]
    # Marginal cost: least-squares slope of server cores over viewers (base included).
    xs = [0] + [s["viewers"] for s in ok]
    ys = [base_cores] + [s["cpu"]["server_cores"] for s in ok]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0
    failed = steps[-1] if steps and steps[-1] is not best else None
    out.update({
        "max_viewers_sustained": n,
        "server_cores_at_max": cores,
        "viewers_per_core": r3(n / cores) if cores else None,
        "server_mcores_per_viewer": r3(1000 * cores / n),
        "server_mcores_per_viewer_marginal": r3(1000 * (cores - base_cores) / n),
        "server_mcores_per_viewer_fit": r3(1000 * slope),
        "server_us_per_rtp_packet_sent_at_max": best.get("server_us_per_rtp_packet_sent"),
        "viewers_per_core_from_fit": r3(1 / slope) if slope > 0 else None,
        "clients_total_cores_at_max": best["cpu"]["clients_total_cores"],
        "transit_ms_at_max": best.get("transit_ms"),
        "limits_seen_at_max": limit_reason(best),
        "limits_seen_at_first_failing_step": (limit_reason(failed)
                                              if failed and "cpu" in failed else None),
    })
    return out


# ====================================================================== latency
async def record(viewers: list[ClockViewer], args: argparse.Namespace, b: Bench | None
                 ) -> dict[str, Any]:
    for _ in range(int(args.ready_timeout * 10)):
        if all(v.frames >= 10 for v in viewers):
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    meter = Meter(b.proc.pid if b is not None and b.proc is not None else None, [])
    a = meter.sample()
    for v in viewers:
        v.recording = True
    await asyncio.sleep(args.latency_seconds)
    for v in viewers:
        v.recording = False
    cpu = Meter.cores(a, meter.sample())
    delays = [d for v in viewers for d in v.delays_ms]
    out = {**summary(delays), "viewers": len(viewers),
           "per_viewer_p50": [r3(pct(sorted(v.delays_ms), 50)) if v.delays_ms else None
                              for v in viewers],
           "frames_unreadable": sum(v.unreadable for v in viewers)}
    out["cpu"] = {"server_cores": cpu.get("server_cores"),
                  "client_process_cores": cpu.get("publisher_process_cores"),
                  "other_processes_cores": cpu.get("other_processes_cores")}
    return out


async def latency_direct(args: argparse.Namespace, origin: float) -> dict[str, Any]:
    pub, sub = RTCPeerConnection(), RTCPeerConnection()
    viewer = ClockViewer(sub, origin)
    viewer.attach()
    try:
        prefer(pub.addTransceiver(ClockVideo(origin, args.clock_width, args.clock_height,
                                             args.fps), direction="sendonly"), "video/H264")
        await pub.setLocalDescription(await pub.createOffer())
        await sub.setRemoteDescription(pub.localDescription)
        await sub.setLocalDescription(await sub.createAnswer())
        await pub.setRemoteDescription(sub.localDescription)
        out = await record([viewer], args, None)
    finally:
        await viewer.close()
        await pub.close()
    return out


async def latency_relay(b: Bench, origin: float) -> dict[str, Any]:
    args = b.args
    pub = RTCPeerConnection()
    out: dict[str, Any] = {}
    try:
        prefer(pub.addTransceiver(ClockVideo(origin, args.clock_width, args.clock_height,
                                             args.fps), direction="sendonly"), "video/H264")
        resource = await negotiate(pub, b.port, b.path(CLOCK_LOT, "whip"), b.token)
        for name, codec in (("relay", "H264"), ("stock", "VP8")):
            if name == "stock" and args.no_stock_latency:
                continue
            viewers = []
            try:
                for _ in range(args.latency_viewers):
                    pc = RTCPeerConnection()
                    v = ClockViewer(pc, origin)
                    v.attach()
                    viewers.append(v)
                    prefer(pc.addTransceiver("video", direction="recvonly"), f"video/{codec}")
                    v.resource = await negotiate(pc, b.port, b.path(CLOCK_LOT, "whep"))
                out[name] = await record(viewers, args, b)
                log(f"  latency {name}: {out[name]}")
            finally:
                await asyncio.gather(*(v.close(b.port) for v in viewers))
            await asyncio.sleep(0.5)
        with contextlib.suppress(Exception):
            await http("DELETE", b.port, resource, token=b.token, timeout=10)
    finally:
        await pub.close()
    return out


# ====================================================================== main
async def amain(args: argparse.Namespace, servers: Servers, tmp: Path) -> dict[str, Any]:
    loopback_ice()
    env = environment(("aiortc", "aioice", "av", "pylibsrtp", "uvicorn", "uvloop"))
    env["fd_limit"] = raise_fd_limit(65536)
    if args.quiet_wait > 0:
        env["other_processes_cores_at_start"] = await wait_for_quiet(args.quiet_wait)
    frames, video = await asyncio.to_thread(
        preencode, args.width, args.height, args.fps, args.fps * args.loop_seconds,
        args.kbps, args.fps)
    log(f"pre-encoded video: {video}")
    b = Bench(args, servers, tmp)
    await b.start_server()
    assert b.proc is not None
    log(f"bidhall (relay under test) pid {b.proc.pid} on port {b.port}")
    await b.pool.start(args.client_procs)
    b.meter = Meter(b.proc.pid, b.pool.pids)
    results: dict[str, Any] = {}
    await b.publish(frames, args.fps)
    log("publisher live (pre-encoded 720p, WHIP)")
    base = await base_step(b)
    results["base_publisher_only"] = base
    b.base_server_cores = base["cpu"]["server_cores"] or 0.0
    b.rtp_packets_per_s = video["rtp_packets_per_s"]
    log(f"passthrough ladder {args.ladder}")
    results["passthrough"] = await ladder(b, args.ladder, "H264", False, base)
    if args.stock_ladder:
        log(f"stock (re-encoding) ladder {args.stock_ladder}")
        results["stock_reencode"] = await ladder(b, args.stock_ladder, "VP8", True, base)
    await b.unpublish()
    await b.pool.stop()
    if args.latency_seconds > 0:
        log("glass-to-glass latency")
        origin = now()
        lat: dict[str, Any] = {"direct": await latency_direct(args, origin)}
        log(f"  latency direct: {lat['direct']}")
        lat.update(await latency_relay(b, origin))
        rp50, dp50 = lat.get("relay", {}).get("p50"), lat["direct"].get("p50")
        lat["relay_added_p50_ms"] = (r3(rp50 - dp50) if isinstance(rp50, float)
                                     and isinstance(dp50, float) else None)
        sp50 = lat.get("stock", {}).get("p50")
        lat["stock_added_p50_ms"] = (r3(sp50 - dp50) if isinstance(sp50, float)
                                     and isinstance(dp50, float) else None)
        results["latency"] = lat
    servers.stop(b.proc)
    return report(args, env, video, results)


def report(args: argparse.Namespace, env: dict[str, Any], video: dict[str, Any],
           results: dict[str, Any]) -> dict[str, Any]:
    p = results["passthrough"]
    s = results.get("stock_reencode") or {}
    lat = results.get("latency") or {}
    comparison = {
        "viewers_per_core": {"passthrough": p.get("viewers_per_core"),
                             "stock_reencode": s.get("viewers_per_core"),
                             "ratio_passthrough_over_stock": ratio(
                                 p.get("viewers_per_core"), s.get("viewers_per_core"))},
        "server_mcores_per_viewer": {
            "passthrough": p.get("server_mcores_per_viewer"),
            "stock_reencode": s.get("server_mcores_per_viewer"),
            "ratio_stock_over_passthrough": ratio(s.get("server_mcores_per_viewer"),
                                                  p.get("server_mcores_per_viewer"))},
        "max_viewers_sustained": {"passthrough": p.get("max_viewers_sustained"),
                                  "stock_reencode": s.get("max_viewers_sustained")},
    }
    if lat:
        comparison["glass_to_glass_p50_ms"] = {
            "direct": lat.get("direct", {}).get("p50"), "relay": lat.get("relay", {}).get("p50"),
            "stock_reencode": lat.get("stock", {}).get("p50"),
            "ratio_relay_over_direct": ratio(lat.get("relay", {}).get("p50"),
                                             lat.get("direct", {}).get("p50"))}
    targets = [
        target_row("passthrough viewers per server core (at the largest step with <= "
                   f"{args.max_loss}% loss)", p.get("viewers_per_core"),
                   TARGETS["passthrough_viewers_per_core"], True,
                   "passthrough.viewers_per_core"),
        target_row("glass-to-glass p50 through the relay, loopback (ms)",
                   lat.get("relay", {}).get("p50"), TARGETS["glass_to_glass_relay_p50_ms"],
                   False, "latency.relay.p50"),
    ]
    notes = [
        "All peers run on this box and share its cores with the server; the "
        "clients' CPU is reported with each step, so a client- or box-bound step shows.",
        "Server CPU = utime + stime of the bidhall process (all threads) over the window, "
        "from /proc; 'event loop thread' is its main thread alone (the relay's work).",
        "Passthrough viewers never decode (frames counted at the jitter buffer); stock "
        "viewers neither (VP8 frames counted the same way); only the latency viewers decode.",
        "Transit = publisher handing a frame to its RTP sender -> a viewer's jitter buffer "
        "releasing it (includes the publisher's packetization and SRTP, the relay, and the "
        "viewer's SRTP and reassembly; no decoding).",
        "Glass-to-glass = drawn time (ms, truncated: up to 1 ms is added) -> the decoded "
        "frame handed to the viewer's code; it includes encoding, the network, the relay, "
        "the jitter buffer and decoding, not capture or display.",
        "ICE: every peer (bidhall included) gathers one host candidate, 127.0.0.1.",
        "aiortc's JitterBuffer (1.16.0) releases a frame only when the first packet of the "
        "next frame arrives (the RTP marker bit is not used), so every aiortc receiver on a "
        "path holds each frame one frame interval (33 ms at 30 fps): transit crosses two "
        "(the relay's and the viewer's), direct glass-to-glass one, relayed two.",
        "Stock-path loss: the re-encoded stream carries no stamp; each viewer's RTP "
        "timestamps still give the frame offsets, so gaps count as lost and a viewer whose "
        "lag behind real time grows (least-squares slope over the window) counts that "
        "share as lost.",
    ]
    return {"benchmark": "stream_relay", "environment": env,
            "config": vars(args),
            "video": video,
            **results, "comparison": comparison, "targets": targets,
            "all_targets_pass": all(t["pass"] is True for t in targets),
            "notes": notes, "seconds_total": r3(perf() - T0)}


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small ladders, short windows (~1 min)")
    p.add_argument("--ladder", type=ints, default=[10, 25, 50, 75, 100, 125, 150, 200],
                   help="passthrough viewer counts (default 10,25,50,75,100,125,150,200)")
    p.add_argument("--stock-ladder", type=ints, default=[1, 2, 3, 4, 6, 8, 12],
                   help="re-encoding viewer counts (default 1,2,3,4,6,8,12; empty: skip)")
    p.add_argument("--client-procs", type=int, default=2, help="viewer processes (default 2)")
    p.add_argument("--window", type=float, default=8.0, help="seconds measured per step")
    p.add_argument("--settle", type=float, default=2.0,
                   help="seconds between every viewer receiving and the window")
    p.add_argument("--grace", type=float, default=1.0,
                   help="seconds after a window for its last frames to arrive")
    p.add_argument("--ready-timeout", type=float, default=20.0)
    p.add_argument("--max-loss", type=float, default=1.0, help="%% of frames (default 1)")
    p.add_argument("--saturated", type=float, default=0.95,
                   help="cores of one thread (or fraction of the box) that count as saturated")
    p.add_argument("--noisy", type=float, default=0.3,
                   help="cores used by other processes that make a window disturbed")
    p.add_argument("--retries", type=int, default=2,
                   help="extra windows of a step disturbed by other processes")
    p.add_argument("--retry-budget", type=float, default=90.0,
                   help="seconds of extra windows over the whole run")
    p.add_argument("--quiet-budget", type=float, default=60.0,
                   help="seconds of waiting for a quiet box over the whole run")
    p.add_argument("--connect-concurrency", type=int, default=8,
                   help="WHEP negotiations in flight per viewer process")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--kbps", type=int, default=2000, help="publisher's bitrate (default 2000)")
    p.add_argument("--loop-seconds", type=int, default=3, help="pre-encoded seconds, looped")
    p.add_argument("--latency-seconds", type=float, default=8.0,
                   help="seconds measured per latency path (0: skip latency)")
    p.add_argument("--latency-viewers", type=int, default=3)
    p.add_argument("--clock-width", type=int, default=640)
    p.add_argument("--clock-height", type=int, default=360)
    p.add_argument("--no-stock-latency", action="store_true",
                   help="skip the latency of the re-encoding path")
    p.add_argument("--quiet-wait", type=float, default=15.0,
                   help="seconds to wait at most for other processes to calm down (0: no)")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (logs, data)")
    args = p.parse_args(argv)
    if args.quick:
        args.ladder, args.stock_ladder = [10, 25], [1, 2]
        args.window, args.settle, args.latency_seconds = 3.0, 1.0, 3.0
        args.quiet_wait, args.retries, args.quiet_budget = 0.0, 0, 0.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bidhall-stream-bench-"))
    servers = Servers(tmp)
    return run_bench(lambda: amain(args, servers, tmp), servers, tmp, keep_tmp=args.keep_tmp,
                     logs=("bidhall", *(f"viewers{i}" for i in range(args.client_procs))))


if __name__ == "__main__":
    sys.exit(main())
