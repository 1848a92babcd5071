"""Benchmark: tus upload throughput over loopback, beside a bare write + fsync of the same bytes.

    .venv/bin/python loadtest/bench/tus_upload.py              # 256 MiB, 3 runs per client
    .venv/bin/python loadtest/bench/tus_upload.py --mb 64 --runs 1

Prints ONE JSON document to stdout (progress goes to stderr). The server is
:class:`server.tus.TusServer` behind uvicorn with bidhall's own options
(:func:`server.net.uvicorn_options`), in a subprocess, its uploads in a temp dir that is
removed afterwards. Hooks are trivial (one owner, no checks), so the figure is the upload
path itself: HTTP parsing, the body copied to disk from a worker thread, an fsync and an
atomic record per PATCH.

Clients, each uploading the same random file (read from the page cache):

- ``httpx``: one keep-alive connection, POST then PATCHes of ``--chunk-mb`` MiB.
- ``tuspy``: the tuspy uploader (requests, a new connection per PATCH), same chunk size.

Baselines, same run, same directory: the same bytes written in the same pieces with an
fsync after each piece (what the server must do at least), and with one fsync at the end.
MB/s is 10^6 bytes per second, from the POST to the final answer. Every upload is checked
byte for byte (SHA-256) against the source afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

# Sibling modules: this file is run as a script, so its directory is on sys.path.
from _common import REPO, perf
from _procs import Servers, environment, free_port, run_bench, wait_listening
from _stats import CpuMeter, log, r3, ratio, target_row

MiB = 1 << 20
TOKEN = "bench"


# ====================================================================== the server process
def serve(port: int, root: Path) -> None:
    sys.path.insert(0, str(REPO))
    import uvicorn
    from starlette.applications import Starlette

    from server.config import Settings
    from server.net import uvicorn_options
    from server.tus import TusRefused, TusServer, Upload

    class Hooks:
        async def authorize(self, request: Any, scope: str) -> str:
            if request.headers.get("authorization") != f"Bearer {TOKEN}":
                raise TusRefused(401, "unauthorized", "a bearer token is required")
            return "bench-bidder"

        async def on_create(self, scope: str, owner: str, length: int,
                            metadata: dict[str, str]) -> None:
            return None

        async def on_patch(self, upload: Upload) -> None:
            return None

        async def on_complete(self, upload: Upload) -> dict[str, str]:
            return {}

    tus = TusServer(root, Hooks(), max_size=1 << 40)
    app = Starlette(routes=tus.routes("/api/tenders/{tender_id}/uploads"))
    options = uvicorn_options(Settings(host="127.0.0.1", port=port))
    uvicorn.run(app, **{**options, "lifespan": "off"})


# ====================================================================== clients
def upload_httpx(port: int, source: Path, chunk: int) -> str:
    import httpx

    size = source.stat().st_size
    head = {"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http, \
            source.open("rb") as f:
        r = http.post("/api/tenders/bench/uploads/", headers={**head,
                                                              "Upload-Length": str(size)})
        r.raise_for_status()
        url = r.headers["location"]
        offset = 0
        while offset < size:
            body = f.read(chunk)
            r = http.patch(url, content=body, headers={
                **head, "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream"})
            if r.status_code != 204:
                raise RuntimeError(f"PATCH -> {r.status_code}: {r.text}")
            offset = int(r.headers["upload-offset"])
    return str(url).rsplit("/", 1)[1]


def upload_tuspy(port: int, source: Path, chunk: int) -> str:
    from tusclient import client

    c = client.TusClient(f"http://127.0.0.1:{port}/api/tenders/bench/uploads/",
                         headers={"Authorization": f"Bearer {TOKEN}"})
    with source.open("rb") as f:
        up = c.uploader(file_stream=f, chunk_size=chunk)
        up.upload()
        return str(up.url).rsplit("/", 1)[1]


def write_fsync(source: Path, target: Path, chunk: int, every_piece: bool) -> float:
    """Seconds to copy ``source`` to ``target`` in ``chunk`` pieces, fsyncing after each
    piece (or once at the end), plus the directory."""
    t = perf()
    with source.open("rb") as src, target.open("wb") as dst:
        while piece := src.read(chunk):
            dst.write(piece)
            if every_piece:
                dst.flush()
                os.fsync(dst.fileno())
        dst.flush()
        os.fsync(dst.fileno())
    fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return perf() - t


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while piece := f.read(8 * MiB):
            h.update(piece)
    return h.hexdigest()


def mb_s(size: int, seconds: float) -> float:
    return round(size / seconds / 1e6, 1)


def runs_summary(size: int, times: list[float], extra: dict[str, Any]) -> dict[str, Any]:
    rates = [mb_s(size, t) for t in times]
    return {"mb_per_s_median": statistics.median(rates), "mb_per_s_best": max(rates),
            "mb_per_s_runs": rates, "seconds_runs": [r3(t) for t in times], **extra}


# ====================================================================== the run
async def run(args: argparse.Namespace, servers: Servers, tmp: Path) -> dict[str, Any]:
    env = environment()
    size = args.mb * MiB
    chunk = args.chunk_mb * MiB
    source = tmp / "source.bin"
    with source.open("wb") as f:
        for _ in range(args.mb):
            f.write(os.urandom(MiB))
    digest = sha256(source)
    root = tmp / "uploads"
    port = free_port()
    proc = servers.start("tus", [sys.executable, __file__, "--serve", "--port", str(port),
                                 "--root", str(root)], dict(os.environ))
    await wait_listening(port, proc)
    meter = CpuMeter(proc.pid)

    results: dict[str, Any] = {}
    for name, fn in (("httpx", upload_httpx), ("tuspy", upload_tuspy)):
        if name not in args.clients.split(","):
            continue
        times, cpus = [], []
        for i in range(args.runs):
            a = meter.sample()
            t = perf()
            upload_id = await asyncio.to_thread(fn, port, source, chunk)
            times.append(perf() - t)
            cpus.append(CpuMeter.cores(a, meter.sample()))
            stored = root / f"{upload_id}.bin"
            if sha256(stored) != digest:
                raise RuntimeError(f"{name} run {i}: stored bytes differ from the source")
            stored.unlink()
            log(f"tus via {name}, run {i + 1}: {mb_s(size, times[-1])} MB/s")
        results[f"tus_{name}"] = runs_summary(size, times, {"cpu_runs": cpus})

    for label, every in (("baseline_write_fsync_per_chunk", True),
                         ("baseline_write_fsync_once", False)):
        times = []
        for _ in range(args.runs):
            target = root / "baseline.bin"
            times.append(await asyncio.to_thread(write_fsync, source, target, chunk, every))
            target.unlink()
        results[label] = runs_summary(size, times, {})
        log(f"{label}: {results[label]['mb_per_s_median']} MB/s")

    base = results["baseline_write_fsync_per_chunk"]["mb_per_s_median"]
    ratios = {f"{k}_median_vs_write_fsync_per_chunk": ratio(v["mb_per_s_median"], base)
              for k, v in results.items() if k.startswith("tus_")}
    targets = [target_row(f"tus upload via {k[4:]} (MB/s, median) vs write+fsync per chunk",
                          ratios[f"{k}_median_vs_write_fsync_per_chunk"], 0.5, True,
                          f"results.{k}", informational=True)
               for k in results if k.startswith("tus_")]
    return {
        "benchmark": "bidhall tus_upload",
        "schema": 1,
        "environment": env,
        "params": {"file_mib": args.mb, "chunk_mib": args.chunk_mb, "runs": args.runs,
                   "directory": str(tmp), "mb": "10^6 bytes"},
        "targets": targets,
        "results": results,
        "ratios_tus_over_baseline": ratios,
        "notes": [
            "Client and server share the box and loopback; the client reads the source from "
            "the page cache. 'cpu_runs' is per upload run (server_cores: the tus server "
            "process, event loop and write threads).",
            "The server fsyncs each PATCH's bytes and then writes its JSON record with its "
            "own fsync, rename and directory fsync: per chunk that is two fsyncs more than "
            "the per-chunk baseline pays.",
            "tuspy opens a new connection per PATCH (requests without a session) and reads "
            "each chunk into memory; httpx keeps one connection.",
            "Not measured: concurrent uploads, non-loopback networks, TLS, checksums "
            "(Upload-Checksum), a browser client.",
        ],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mb", type=int, default=256, help="file size in MiB (default 256)")
    p.add_argument("--chunk-mb", type=int, default=8, help="PATCH size in MiB (default 8)")
    p.add_argument("--runs", type=int, default=3, help="uploads per client (default 3)")
    p.add_argument("--clients", default="httpx,tuspy", help="clients to run")
    p.add_argument("--dir", default=None, help="where the temp dir goes (default: TMPDIR)")
    p.add_argument("--keep-tmp", action="store_true")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--root", default="", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve(args.port, Path(args.root))
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="bidhall-tus-bench-", dir=args.dir))
    servers = Servers(tmp)
    return run_bench(lambda: run(args, servers, tmp), servers, tmp, keep_tmp=args.keep_tmp,
                     logs=("tus",))


if __name__ == "__main__":
    sys.exit(main())
