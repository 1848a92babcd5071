"""Bidders, HTTP calls, the live feed, the phases and the bare baseline server of ``opening.py``.

Bidders are made and sealed in the benchmark process with ``opening.keys`` and
``opening.envelope``; every call to the platform mirrors ``tests/tenders.py`` (staff
create, publish and invite; the bidder registers its key, uploads with tus, fetches its
header at the opening, unwraps the file key locally and posts it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import json
import math
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# Sibling modules: opening.py is run as a script, so this directory is on sys.path.
from _common import REPO, perf
from _stats import CpuMeter, log, r3, ratio, summary_ms
from tus_upload import mb_s, runs_summary, sha256, write_fsync

# The repository first: this directory holds opening.py, which would shadow the package.
sys.path.insert(0, str(REPO))

from opening.crypto_errors import b64u, unb64u
from opening.envelope import open_envelope, parse_header, seal, unwrap
from opening.keys import generate, public_bytes

MiB = 1 << 20
TUS = {"Tus-Resumable": "1.0.0"}
SUMMARY = {"duration_days": 180, "quality": "合格", "manager": "张工"}


# ====================================================================== bidders
@dataclass
class Party:
    """One bidder of one tender: its key pair, its sealed bid and its token."""

    tender: str
    bidder: str
    price: str
    key: Any = field(default_factory=generate)
    envelope: bytes = b""  # small bids: the sealed bytes; large ones live in ``path``
    path: Path | None = None
    size: int = 0  # plaintext bytes (summary + document), from the header
    token: str = ""
    receipt: dict[str, Any] | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    @property
    def base(self) -> str:
        return f"/api/tenders/{self.tender}"


def price_of(i: int) -> str:
    return f"{1_000_000 + 137 * i}.{i % 100:02d}"


def seal_small(p: Party, document: bytes) -> None:
    out = io.BytesIO()
    header = seal(io.BytesIO(document), out, public_key=public_bytes(p.key), tender=p.tender,
                  bidder=p.bidder, summary={"price": p.price, **SUMMARY})
    p.envelope, p.size = out.getvalue(), header.size


def seal_file(p: Party, document: Path, target: Path) -> None:
    with document.open("rb") as src, target.open("wb") as dst:
        header = seal(src, dst, public_key=public_bytes(p.key), tender=p.tender,
                      bidder=p.bidder, summary={"price": p.price, **SUMMARY})
    p.path, p.size = target, header.size


def random_file(path: Path, mib: int) -> Path:
    with path.open("wb") as f:
        for _ in range(mib):
            f.write(os.urandom(MiB))
    return path


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ====================================================================== the platform API
class Api:
    """Staff and bidder calls over one keep-alive pool (setup, start, releases)."""

    def __init__(self, port: int, staff_token: str, connections: int = 64) -> None:
        self.base_url = f"http://127.0.0.1:{port}"
        self.staff = {"authorization": f"Bearer {staff_token}"}
        limits = httpx.Limits(max_connections=connections,
                              max_keepalive_connections=connections)
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=120, limits=limits)

    async def close(self) -> None:
        await self.http.aclose()

    @staticmethod
    def _ok(r: httpx.Response, status: int, what: str) -> Any:
        if r.status_code != status:
            raise RuntimeError(f"{what} -> {r.status_code}: {r.text[:300]}")
        return r.json() if r.content else None

    async def create(self, tender: str, deadline_ms: int, **terms: Any) -> None:
        body = {"tender_id": tender, "title": f"基准测试标段 bench {tender}",
                "deadline": deadline_ms, **terms}
        self._ok(await self.http.post("/api/tenders", json=body, headers=self.staff), 201,
                 f"create {tender}")
        self._ok(await self.http.post(f"/api/tenders/{tender}/publish", headers=self.staff),
                 200, f"publish {tender}")

    async def staff_post(self, tender: str, action: str) -> Any:
        r = await self.http.post(f"/api/tenders/{tender}/{action}", json={},
                                 headers=self.staff)
        return self._ok(r, 200, f"{action} {tender}")

    async def view(self, tender: str) -> Any:
        return self._ok(await self.http.get(f"/api/tenders/{tender}"), 200, f"view {tender}")

    async def enroll(self, p: Party) -> None:
        """Invite (staff) and register the bidder's public key (bidder)."""
        r = await self.http.post(p.base + "/bidders", json={"bidder": p.bidder},
                                 headers=self.staff)
        p.token = self._ok(r, 201, f"invite {p.bidder}")["token"]
        r = await self.http.put(p.base + "/key", headers=p.auth, json={
            "name": f"{p.bidder} 建设有限公司", "public_key": b64u(public_bytes(p.key))})
        self._ok(r, 200, f"register {p.bidder}")

    async def upload_small(self, p: Party) -> None:
        """tus creation-with-upload: the whole envelope in the POST; checks the receipt."""
        meta = "filename " + base64.b64encode(f"{p.bidder}.bidenv".encode()).decode()
        r = await self.http.post(p.base + "/uploads/", content=p.envelope, headers={
            **TUS, **p.auth, "Upload-Length": str(len(p.envelope)), "Upload-Metadata": meta,
            "Content-Type": "application/offset+octet-stream"})
        if r.status_code != 201 or "upload-receipt" not in r.headers:
            raise RuntimeError(f"upload {p.bidder} -> {r.status_code}: {r.text[:300]}")
        p.receipt = json.loads(unb64u(r.headers["upload-receipt"]))
        if p.receipt.get("sha256") != sha256_bytes(p.envelope):
            raise RuntimeError(f"upload {p.bidder}: the receipt's sha256 is not the envelope's")

    async def file_key(self, p: Party) -> bytes:
        """What the bidder's page does at the opening: fetch the header, unwrap locally."""
        r = await self.http.get(p.base + "/header", headers=p.auth)
        if r.status_code != 200:
            raise RuntimeError(f"header {p.bidder} -> {r.status_code}: {r.text[:300]}")
        return unwrap(parse_header(r.content), p.key)

    async def release(self, p: Party, file_key: bytes) -> httpx.Response:
        return await self.http.post(p.base + "/release", headers={
            **p.auth, "content-type": "application/json"},
            content=b'{"file_key":"%s"}' % b64u(file_key).encode())


def tus_upload_file(base_url: str, p: Party, source: Path, chunk: int) -> tuple[float, str]:
    """Upload ``source`` as ``p``'s bid (POST, then PATCHes of ``chunk`` bytes, one
    keep-alive connection). Returns the seconds from the POST to the final answer and the
    upload id; ``p.receipt`` gets the signed receipt."""
    size = source.stat().st_size
    head = {**TUS, **p.auth}
    meta = "filename " + base64.b64encode(f"{p.bidder}.bidenv".encode()).decode()
    with httpx.Client(base_url=base_url, timeout=300) as http, source.open("rb") as f:
        t = perf()
        r = http.post(p.base + "/uploads/", headers={**head, "Upload-Length": str(size),
                                                     "Upload-Metadata": meta})
        if r.status_code != 201:
            raise RuntimeError(f"tus POST {p.bidder} -> {r.status_code}: {r.text[:300]}")
        url = r.headers["location"]
        offset = 0
        while offset < size:
            r = http.patch(url, content=f.read(chunk), headers={
                **head, "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream"})
            if r.status_code != 204:
                raise RuntimeError(f"tus PATCH {p.bidder} -> {r.status_code}: {r.text[:300]}")
            offset = int(r.headers["upload-offset"])
        seconds = perf() - t
    if "upload-receipt" not in r.headers:
        raise RuntimeError(f"tus upload {p.bidder}: no receipt on the final answer")
    p.receipt = json.loads(unb64u(r.headers["upload-receipt"]))
    return seconds, str(url).rsplit("/", 1)[1]


# ====================================================================== the live feed (SSE)
class Feed:
    """One public SSE subscriber: when each ``bid_decrypted`` row and the read-out arrived
    (client clock, at the read that completed the event)."""

    def __init__(self, http: httpx.AsyncClient, path: str) -> None:
        self.http, self.path = http, path
        self.rows: dict[str, float] = {}
        self.kinds: dict[str, int] = {}
        self.started: dict[str, Any] | None = None
        self.announced: dict[str, Any] | None = None
        self.announced_at = math.nan
        self.connected = asyncio.Event()
        self.done = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def _frame(self, t: float, frame: dict[str, Any]) -> None:
        kind = str(frame.get("kind"))
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if kind == "bid_decrypted":
            self.rows.setdefault(str(frame["bidder"]), t)
        elif kind == "started":
            self.started = frame
        elif kind in ("announced", "failed"):
            self.announced, self.announced_at = frame, t
            self.done.set()

    async def _run(self) -> None:
        async with self.http.stream("GET", self.path, timeout=httpx.Timeout(None)) as r:
            if r.status_code != 200:
                raise RuntimeError(f"SSE {self.path} -> {r.status_code}")
            self.connected.set()
            buf = b""
            async for chunk in r.aiter_raw():
                t = perf()
                buf += chunk
                while b"\n\n" in buf:
                    block, buf = buf.split(b"\n\n", 1)
                    data = [line[5:].strip() for line in block.split(b"\n")
                            if line.startswith(b"data:")]
                    if data:
                        self._frame(t, json.loads(b"\n".join(data)))


# ====================================================================== the storm
@dataclass
class Release:
    bidder: str
    due: float  # when it was scheduled (client clock)
    t_begin: float = math.nan  # header request sent
    t_sent: float = math.nan  # release request sent
    t_ack: float = math.nan  # release answer read
    status: int = 0
    error: str = ""


Sender = Callable[[Party, Release], Awaitable[None]]


async def storm(parties: list[Party], offsets: list[float], send: Sender,
                lead: float = 0.3) -> list[Release]:
    """Each party's ``send`` at its own offset (seconds after a common start)."""
    t0 = perf() + lead

    async def one(p: Party, offset: float) -> Release:
        rec = Release(p.bidder, t0 + offset)
        await asyncio.sleep(max(0.0, rec.due - perf()))
        rec.t_begin = perf()
        try:
            await send(p, rec)
        except Exception as exc:  # counted in the report, the storm goes on
            rec.error = f"{type(exc).__name__}: {exc}"[:300]
        return rec

    return list(await asyncio.gather(*(one(p, o) for p, o in zip(parties, offsets,
                                                                   strict=True))))


def platform_sender(api: Api) -> Sender:
    async def send(p: Party, rec: Release) -> None:
        file_key = await api.file_key(p)
        rec.t_sent = perf()
        r = await api.release(p, file_key)
        rec.t_ack = perf()
        rec.status = r.status_code
        if r.status_code != 200 or r.json().get("outcome") != "decrypted":
            rec.error = r.text[:300]

    return send


def bare_sender(http: httpx.AsyncClient, run: str, total: int) -> Sender:
    """The same two requests to the bare server, and the same unwrap in between (from the
    bidder's own copy of its header, since the bare server holds no envelopes)."""
    async def send(p: Party, rec: Release) -> None:
        header = parse_header(p.envelope)
        r = await http.get(f"/bare/{run}/header", params={"n": str(header.prefix_length)})
        r.raise_for_status()
        file_key = unwrap(header, p.key)
        rec.t_sent = perf()
        r = await http.post(f"/bare/{run}/release", params={"bidder": p.bidder,
                                                            "total": str(total)},
                            headers={"content-type": "application/json"},
                            content=b'{"file_key":"%s"}' % b64u(file_key).encode())
        rec.t_ack = perf()
        rec.status = r.status_code
        if r.status_code != 200:
            rec.error = r.text[:300]

    return send


# ====================================================================== bare server
def serve_bare(port: int) -> None:
    """Starlette + uvicorn with bidhall's own socket and options; three routes shaped like
    the opening's (header, release, live) that do no work: no auth, no store, no crypto."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    from server.config import Settings
    from server.net import build, listen

    runs: dict[str, dict[str, Any]] = {}

    def state(run: str) -> dict[str, Any]:
        return runs.setdefault(run, {"seq": 0, "count": 0, "bidders": [], "watchers": set()})

    def push(st: dict[str, Any], frame: dict[str, Any]) -> None:
        st["seq"] += 1
        frame = {"seq": st["seq"], **frame}
        for queue in st["watchers"]:
            queue.put_nowait(frame)

    async def header(request: Request) -> Response:
        n = int(request.query_params.get("n", "600"))
        return Response(b"\0" * n, media_type="application/octet-stream",
                        headers={"cache-control": "no-store"})

    async def release(request: Request) -> Response:
        body = await request.json()
        if not isinstance(body.get("file_key"), str):
            return JSONResponse({"error": "file_key"}, 422)
        st = state(request.path_params["run"])
        bidder = request.query_params["bidder"]
        st["count"] += 1
        st["bidders"].append(bidder)
        push(st, {"kind": "bid_decrypted", "at": 0, "bidder": bidder})
        if st["count"] == int(request.query_params["total"]):
            rows = [{"bidder": b, "name": f"{b} 建设有限公司", "outcome": "decrypted",
                     "summary": {"price": "1000000.00", **SUMMARY}}
                    for b in sorted(st["bidders"])]
            push(st, {"kind": "announced", "at": 0, "trigger": "all_settled",
                      "read_out": rows})
        return JSONResponse({"outcome": "decrypted", "summary": {"price": "1000000.00",
                                                                 **SUMMARY}, "reason": None})

    async def live(request: Request) -> Response:
        st = state(request.path_params["run"])
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        st["watchers"].add(queue)

        async def stream() -> Any:
            try:
                yield b"retry: 1000\n\n"
                while True:
                    try:
                        frame = await asyncio.wait_for(queue.get(), 15.0)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    data = json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
                    yield f"id: {frame['seq']}\nevent: tender\ndata: {data}\n\n".encode()
            finally:
                st["watchers"].discard(queue)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache"})

    app = Starlette(routes=[Route("/bare/{run}/header", header),
                            Route("/bare/{run}/release", release, methods=["POST"]),
                            Route("/bare/{run}/live", live)])
    settings = Settings(host="127.0.0.1", port=port)
    sock = listen(settings)
    server, _ = build(app, settings, sock=sock)
    server.run(sockets=[sock])


# ====================================================================== phase 2: decryption
def aes_baseline(document: bytes) -> float:
    """Seconds to decrypt ``document`` (encrypted here in 1 MiB chunks) with AESGCM."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aes, aad = AESGCM(AESGCM.generate_key(256)), os.urandom(32)
    chunks = []
    for i in range(0, len(document), MiB):
        nonce = os.urandom(12)
        chunks.append((nonce, aes.encrypt(nonce, document[i:i + MiB], aad)))
    t = perf()
    for nonce, data in chunks:
        aes.decrypt(nonce, data, aad)
    return perf() - t


def envelope_baseline(path: Path, file_key: bytes) -> float:
    t = perf()
    with path.open("rb") as f:
        open_envelope(f, file_key)
    return perf() - t


async def decryption_phase(api: Api, tender: str, big: list[Party], document: Path,
                           meter: CpuMeter) -> dict[str, Any]:
    await api.staff_post(tender, "start")
    doc = document.read_bytes()
    rows = []
    for p in big:
        assert p.path is not None
        file_key = await api.file_key(p)
        a = meter.sample()
        t = perf()
        r = await api.release(p, file_key)
        seconds = perf() - t
        cpu = CpuMeter.cores(a, meter.sample())
        if r.status_code != 200 or r.json().get("outcome") != "decrypted":
            raise RuntimeError(f"release of {p.bidder} -> {r.status_code}: {r.text[:300]}")
        raw = await asyncio.to_thread(aes_baseline, doc)
        env_s = await asyncio.to_thread(envelope_baseline, p.path, file_key)
        rows.append({"bidder": p.bidder, "plaintext_bytes": p.size,
                     "envelope_bytes": p.path.stat().st_size, "release_s": r3(seconds),
                     "server_mb_per_s": mb_s(p.size, seconds),
                     "raw_aesgcm_mb_per_s": mb_s(len(doc), raw),
                     "open_envelope_in_process_mb_per_s": mb_s(p.size, env_s), "cpu": cpu})
        log(f"release of a {p.size / MiB:.0f} MiB bid: {rows[-1]['server_mb_per_s']} MB/s "
            f"(raw AES-GCM {rows[-1]['raw_aesgcm_mb_per_s']}, open_envelope in-process "
            f"{rows[-1]['open_envelope_in_process_mb_per_s']})")
    view = await api.view(tender)

    def med(k: str) -> float:
        return sorted(x[k] for x in rows)[len(rows) // 2]

    out = {"bids": len(big), "state_after": view["state"], "releases": rows,
           "server_mb_per_s_median": med("server_mb_per_s"),
           "raw_aesgcm_mb_per_s_median": med("raw_aesgcm_mb_per_s"),
           "open_envelope_in_process_mb_per_s_median":
               med("open_envelope_in_process_mb_per_s")}
    out["server_over_raw_aesgcm"] = ratio(out["server_mb_per_s_median"],
                                          out["raw_aesgcm_mb_per_s_median"])
    out["server_over_open_envelope_in_process"] = ratio(
        out["server_mb_per_s_median"], out["open_envelope_in_process_mb_per_s_median"])
    return out


# ====================================================================== phase 3: upload
async def upload_phase(api: Api, p: Party, runs: int, chunk: int, uploads_dir: Path,
                       meter: CpuMeter) -> dict[str, Any]:
    assert p.path is not None
    source, size = p.path, p.path.stat().st_size
    digest = await asyncio.to_thread(sha256, source)
    times, cpus, per_piece, once = [], [], [], []
    for i in range(runs):
        a = meter.sample()
        seconds, _ = await asyncio.to_thread(tus_upload_file, api.base_url, p, source, chunk)
        cpus.append(CpuMeter.cores(a, meter.sample()))
        receipt = p.receipt or {}
        if receipt.get("sha256") != digest or receipt.get("size") != size:
            raise RuntimeError(f"upload {i}: the receipt does not match the source: {receipt}")
        times.append(seconds)
        target = uploads_dir / "bench-baseline.bin"
        per_piece.append(await asyncio.to_thread(write_fsync, source, target, chunk, True))
        target.unlink()
        once.append(await asyncio.to_thread(write_fsync, source, target, chunk, False))
        target.unlink()
        log(f"upload {i + 1}: {mb_s(size, seconds)} MB/s through the platform; write+fsync "
            f"per piece {mb_s(size, per_piece[-1])} MB/s, once {mb_s(size, once[-1])} MB/s")
    out = {"envelope_bytes": size, "chunk_bytes": chunk,
           "platform_tus": runs_summary(size, times, {"cpu_runs": cpus}),
           "baseline_write_fsync_per_piece": runs_summary(size, per_piece, {}),
           "baseline_write_fsync_once": runs_summary(size, once, {})}
    out["platform_over_write_fsync_per_piece"] = ratio(
        out["platform_tus"]["mb_per_s_median"],
        out["baseline_write_fsync_per_piece"]["mb_per_s_median"])
    return out


# ====================================================================== phase 1: the storm
async def run_storm(parties: list[Party], offsets: list[float], send: Any, feed: Feed,
                    meter: CpuMeter, timeout: float, bare: bool = False) -> dict[str, Any]:
    a = meter.sample()
    recs = await storm(parties, offsets, send)
    ok = [r for r in recs if not r.error]
    last_ack = max((r.t_ack for r in ok), default=float("nan"))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(feed.done.wait(), timeout)
    cpu = CpuMeter.cores(a, meter.sample())
    await feed.close()
    errors: dict[str, int] = {}
    for r in recs:
        if r.error:
            key = f"{r.status or 'exception'}: {r.error[:120]}"
            errors[key] = errors.get(key, 0) + 1
    announced = feed.announced or {}
    acks = [r.t_ack - r.t_sent for r in ok]
    rows = [feed.rows[r.bidder] - r.t_sent for r in ok if r.bidder in feed.rows]
    out: dict[str, Any] = {
        "_acks": acks, "_rows": rows,  # raw seconds, pooled over runs by the caller
        "releases": len(recs), "ok": len(ok), "errors": errors,
        "release_ack_ms": summary_ms(acks),
        "header_and_unwrap_ms": summary_ms(r.t_sent - r.t_begin for r in ok),
        "client_lateness_ms": summary_ms(r.t_begin - r.due for r in recs),
        "release_sent_to_feed_row_ms": summary_ms(rows),
        "feed_rows": len(feed.rows),
        "missing_feed_rows": sorted({p.bidder for p in parties} - set(feed.rows))[:20],
        "announced_kind": announced.get("kind"),
        "last_ack_to_announced_ms": r3((feed.announced_at - last_ack) * 1e3)
        if feed.announced else None,
        "last_release_sent_to_announced_ms":
            r3((feed.announced_at - max(r.t_sent for r in ok)) * 1e3)
            if feed.announced and ok else None,
        "feed_frames": feed.kinds, "cpu": cpu,
    }
    read_out = announced.get("read_out") or []
    # the sealed prices (the bare server reads out a fixed one)
    prices = {p.bidder: "1000000.00" if bare else p.price for p in parties}
    out["read_out_rows"] = len(read_out)
    out["read_out_complete"] = (
        sorted(str(row.get("bidder")) for row in read_out) == sorted(prices)
        and all(row.get("outcome") == "decrypted"
                and (row.get("summary") or {}).get("price") == prices[row["bidder"]]
                for row in read_out))
    return out


def in_process_small(parties: list[Party], n: int = 200) -> dict[str, Any]:
    """Unwrap and open a small bid in this process: the crypto floor of one release."""
    unwraps, opens = [], []
    for p in parties[:n]:
        t = perf()
        file_key = unwrap(parse_header(p.envelope), p.key)
        t1 = perf()
        open_envelope(io.BytesIO(p.envelope), file_key)
        unwraps.append(t1 - t)
        opens.append(perf() - t1)
    return {"bids": len(unwraps), "unwrap_ms": summary_ms(unwraps),
            "open_envelope_ms": summary_ms(opens)}


# ====================================================================== setup
async def seal_all(parties: list[Party], kib: int) -> float:
    t = perf()
    sem = asyncio.Semaphore(16)

    async def one(p: Party) -> None:
        async with sem:
            await asyncio.to_thread(seal_small, p, os.urandom(kib * 1024))

    await asyncio.gather(*(one(p) for p in parties))
    return perf() - t


async def enroll_all(api: Api, parties: list[Party], concurrency: int) -> float:
    """Invite, register and upload every party (``concurrency`` bidders at a time)."""
    t = perf()
    sem = asyncio.Semaphore(concurrency)

    async def one(p: Party) -> None:
        async with sem:
            await api.enroll(p)
            await api.upload_small(p)

    try:
        async with asyncio.TaskGroup() as tasks:  # the first failure cancels the rest
            for p in parties:
                tasks.create_task(one(p))
    except BaseExceptionGroup as group:
        raise group.exceptions[0] from None
    return perf() - t
