"""aiortc peers of ``stream_relay.py``: a cheap publisher of pre-encoded H.264, viewers that
count frames without decoding them, and a clock drawn into frames for glass-to-glass latency.

Also run as a script by the benchmark, in two roles:

    python _stream_peers.py serve --port P --data-dir D    # bidhall, ICE on 127.0.0.1 only
    python _stream_peers.py viewers --control PORT --name N # a process of counting viewers

ICE: aioice offers every host address except 127.0.0.1; :func:`loopback_ice` makes each
peer of the benchmark (the bidhall subprocess included) offer 127.0.0.1 and nothing else,
so all media stays on loopback. Nothing else of bidhall is changed.

Frame identity without decoding: the publisher loops a few seconds of pre-encoded video
(GOP = 1 s, no B-frames) and puts a tiny SEI NAL unit (user data unregistered, 41 bytes)
carrying its frame number ``seq`` in front of the IDR slice of each keyframe; it travels in
the keyframe's first RTP packet (STAP-A with SPS and PPS), so it adds no packet. Every RTP
timestamp is ``seq * 90000 / fps``; aiortc's receivers rebase timestamps to the first frame
they see, which for a relay viewer is a keyframe (the relay starts each viewer on one), so
a viewer knows the ``seq`` of every frame: ``stamp of the last keyframe + (timestamp delta)
/ (90000 / fps)``. Loss is then counted per frame, and the time from the publisher handing
a frame to its sender to a viewer's jitter buffer releasing it is known for every frame
(CLOCK_MONOTONIC is one clock for all processes of the box).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import os
import queue
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs.h264 import H264Encoder
from aiortc.mediastreams import MediaStreamError

VIDEO_CLOCK = 90_000
#: 16 bytes: the SEI's UUID, and the marker a viewer looks for.
MARK = b"bidhall-stamp-v1"
now = time.monotonic  # CLOCK_MONOTONIC: the same clock in every process of the box


def loopback_ice() -> None:
    """Make aioice gather one host candidate, 127.0.0.1 (it skips loopback by default)."""
    import aioice.ice

    def addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return ["127.0.0.1"] if use_ipv4 else []

    aioice.ice.get_host_addresses = addresses


def prefer(transceiver: Any, mime: str) -> None:
    caps = RTCRtpSender.getCapabilities(transceiver.kind).codecs
    transceiver.setCodecPreferences([c for c in caps if c.mimeType in (mime, "video/rtx")])


# ====================================================================== HTTP (WHIP, WHEP)
async def http(method: str, port: int, path: str, body: bytes = b"", *,
               content_type: str = "", token: str = "", timeout: float = 30.0
               ) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection (``Connection: close``): status, headers, body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
                f"Content-Length: {len(body)}\r\n")
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        writer.write(head.encode() + b"\r\n" + body)
        raw = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    top, _, payload = raw.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, payload


async def negotiate(pc: RTCPeerConnection, port: int, path: str, token: str = "") -> str:
    """POST ``pc``'s offer (WHIP or WHEP), apply the answer; returns the resource path."""
    await pc.setLocalDescription(await pc.createOffer())
    status, headers, body = await http("POST", port, path, pc.localDescription.sdp.encode(),
                                       content_type="application/sdp", token=token)
    if status != 201:
        raise RuntimeError(f"POST {path} -> {status}: {body[:300]!r}")
    await pc.setRemoteDescription(RTCSessionDescription(body.decode(), "answer"))
    return headers.get("location", "")


# ====================================================================== pre-encoded video
@dataclass(slots=True)
class Encoded:
    """One pre-encoded access unit (Annex B); a keyframe's stamp goes between head and tail."""

    head: bytes
    tail: bytes
    keyframe: bool


def _nals(data: bytes) -> list[tuple[int, int]]:
    """(start of the start code, NAL type) of each NAL unit of an Annex B access unit."""
    out = []
    at = data.find(b"\x00\x00\x01")
    while at != -1 and at + 3 < len(data):
        start = at - 1 if at > 0 and data[at - 1] == 0 else at
        out.append((start, data[at + 3] & 0x1F))
        at = data.find(b"\x00\x00\x01", at + 3)
    return out


def _split_keyframe(data: bytes) -> tuple[bytes, bytes]:
    """(parameter sets, rest from the first slice on), dropping x264's own SEI."""
    nals = _nals(data)
    head = b""
    for i, (start, kind) in enumerate(nals):
        end = nals[i + 1][0] if i + 1 < len(nals) else len(data)
        if kind in (1, 5):
            return head, data[start:]
        if kind != 6:
            head += data[start:end]
    return head, b""


def stamp(seq: int) -> bytes:
    """An SEI NAL unit (user data unregistered) carrying ``seq`` as 8 hex digits (no zero
    bytes, so no emulation prevention is needed)."""
    return b"\x00\x00\x00\x01\x06\x05\x18" + MARK + b"%08x" % (seq & 0xFFFFFFFF) + b"\x80"


def read_stamp(data: bytes) -> int | None:
    at = data.find(MARK, 0, 256)
    if at < 0:
        return None
    try:
        return int(data[at + 16:at + 24], 16)
    except ValueError:
        return None


def preencode(width: int, height: int, fps: int, frames: int, kbps: int, gop: int
              ) -> tuple[list[Encoded], dict[str, Any]]:
    """``frames`` frames of a panning, noisy picture encoded once with libx264 (baseline,
    no B-frames, a keyframe every ``gop`` frames, rate-capped at ``kbps``)."""
    t0 = time.perf_counter()
    rnd = random.Random(20240611)
    pan = 4 * frames + 1
    cols = width + pan
    texture = rnd.randbytes(cols * (height // 8 + 1))
    rows = []
    for y in range(height):
        base = (y // 8) * cols
        rows.append(bytes(((x * 3 + y * 2) // 4 + (texture[base + x] >> 3)) & 0xFF
                          for x in range(cols)))
    chroma = bytes([128]) * (width * height // 4)
    cc: Any = av.CodecContext.create("libx264", "w")
    cc.width, cc.height, cc.pix_fmt = width, height, "yuv420p"
    cc.framerate = fractions.Fraction(fps, 1)
    cc.time_base = fractions.Fraction(1, fps)
    cc.bit_rate = kbps * 1000
    cc.profile = "Baseline"
    cc.options = {"preset": "veryfast", "tune": "zerolatency", "level": "31",
                  "maxrate": str(kbps * 1000), "bufsize": str(kbps * 1000 // 2),
                  "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:"
                                 "repeat-headers=1"}
    patch = min(160, width // 4, height // 4)
    packets: list[Any] = []
    for i in range(frames):
        frame = av.VideoFrame(width, height, "yuv420p")
        off = 4 * i
        luma = bytearray(b"".join(r[off:off + width] for r in rows))
        noise = rnd.randbytes(patch * patch)  # a part of the picture that never repeats
        x0 = (i * 7) % (width - patch)
        for r in range(patch):
            s = (height // 3 + r) * width + x0
            luma[s:s + patch] = noise[r * patch:(r + 1) * patch]
        plane = frame.planes[0]
        if plane.line_size != width:
            luma = bytearray(b"".join(bytes(luma[y * width:(y + 1) * width]).ljust(
                plane.line_size, b"\x00") for y in range(height)))
        plane.update(bytes(luma))
        for p in frame.planes[1:]:
            p.update(chroma if p.line_size == width // 2
                     else bytes([128]) * p.buffer_size)
        frame.pts = i
        frame.time_base = cc.time_base
        packets.extend(cc.encode(frame))
    packets.extend(cc.encode(None))
    out = []
    for p in packets[:frames]:
        data = bytes(p)
        if p.is_keyframe:
            head, tail = _split_keyframe(data)
            out.append(Encoded(head, tail, True))
        else:
            out.append(Encoded(b"", data, False))
    sizes = [len(e.head) + len(e.tail) for e in out]
    keys = [s for s, e in zip(sizes, out, strict=True) if e.keyframe]
    others = [s for s, e in zip(sizes, out, strict=True) if not e.keyframe]
    info = {"width": width, "height": height, "fps": fps, "frames_looped": len(out),
            "gop_frames": gop, "target_kbps": kbps,
            "kbps": round(sum(sizes) * 8 * fps / len(out) / 1000, 1),
            "keyframe_bytes_mean": round(sum(keys) / max(1, len(keys))),
            "other_frame_bytes_mean": round(sum(others) / max(1, len(others))),
            "rtp_packets_per_s": round(sum(
                len(H264Encoder._packetize(H264Encoder._split_bitstream(
                    e.head + stamp(0) + e.tail if e.keyframe else e.tail))) for e in out)
                * fps / len(out), 1),
            "encoder": "libx264 veryfast zerolatency, Baseline, level 3.1, no B-frames, "
                       "VBV maxrate=target bufsize=target/2",
            "encode_seconds": round(time.perf_counter() - t0, 2)}
    if len(out) != frames:
        raise RuntimeError(f"the encoder gave {len(out)} frames for {frames}")
    return out, info


class PacketTrack(MediaStreamTrack):
    """Loops pre-encoded frames as ``av.Packet`` at ``fps`` (aiortc's sender packetizes a
    packet without encoding it). ``sent_at[seq]``: when frame ``seq`` went to the sender."""

    kind = "video"

    def __init__(self, frames: list[Encoded], fps: int) -> None:
        super().__init__()
        self.frames, self.fps = frames, fps
        self.seq = 0
        self.sent_at: list[float] = []
        self.start: float | None = None
        self.step = VIDEO_CLOCK // fps
        self.base = fractions.Fraction(1, VIDEO_CLOCK)

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        if self.start is None:
            self.start = now()
        delay = self.start + self.seq / self.fps - now()
        if delay > 0:
            await asyncio.sleep(delay)
        f = self.frames[self.seq % len(self.frames)]
        data = f.head + stamp(self.seq) + f.tail if f.keyframe else f.tail
        packet = av.Packet(data)
        packet.pts = self.seq * self.step
        packet.time_base = self.base
        self.sent_at.append(now())
        self.seq += 1
        return packet


# ====================================================================== counting viewers
class CountingTap(queue.Queue):  # type: ignore[type-arg]
    """Stands in for a viewer receiver's decoder queue: counts each reassembled frame and
    drops it; only the ``None`` that stops the decoder thread is queued."""

    def __init__(self, viewer: CountingViewer) -> None:
        super().__init__()
        self.viewer = viewer

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            super().put(None, block, timeout)
        else:
            self.viewer.frame(item[1])


class CountingViewer:
    """A WHEP viewer that never decodes: counts frames and, for stamped streams, when each
    frame number arrived."""

    def __init__(self, pc: RTCPeerConnection, fps: int, stamped: bool) -> None:
        self.pc = pc
        self.step = VIDEO_CLOCK // fps
        self.frames = 0
        self.base: int | None = None  # seq of the frame with (rebased) timestamp 0
        self.arrived: dict[int, float] = {}
        #: Unstamped streams (re-encoded): (arrival, frame offset from the viewer's first).
        self.timeline: list[tuple[float, int]] | None = None if stamped else []
        self.resource = ""

    def frame(self, encoded: Any) -> None:
        t = now()
        self.frames += 1
        offset = (encoded.timestamp + self.step // 2) // self.step
        if self.timeline is not None:
            self.timeline.append((t, offset))
            return
        seq = read_stamp(encoded.data)
        if seq is not None:
            self.base = seq - offset
        if self.base is not None:
            self.arrived[self.base + offset] = t


async def open_counting_viewer(port: int, path: str, codec: str, fps: int) -> CountingViewer:
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver("video", direction="recvonly")
    prefer(transceiver, f"video/{codec}")
    viewer = CountingViewer(pc, fps, stamped=codec == "H264")
    # Before the receiver starts its decoder thread (on connecting), which reads this queue.
    transceiver.receiver._RTCRtpReceiver__decoder_queue = CountingTap(viewer)  # type: ignore[attr-defined]
    try:
        viewer.resource = await negotiate(pc, port, path)
    except BaseException:
        await pc.close()
        raise
    return viewer


async def close_viewer(pc: RTCPeerConnection, port: int, resource: str) -> None:
    if resource:
        with contextlib.suppress(Exception):
            await http("DELETE", port, resource, timeout=10)
    with contextlib.suppress(Exception):
        await pc.close()


class ViewerProcess:
    """The ``viewers`` role: counting viewers, driven by JSON lines over a TCP connection."""

    def __init__(self) -> None:
        self.viewers: list[CountingViewer] = []
        self.port = 0

    async def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req["op"]
        if op == "add":
            return await self.add(req)
        if op == "ready":
            deadline = now() + req.get("timeout", 15.0)
            while now() < deadline:
                if all(v.frames > 0 for v in self.viewers):
                    break
                await asyncio.sleep(0.1)
            return {"viewers": len(self.viewers),
                    "ready": sum(v.frames > 0 for v in self.viewers)}
        if op == "stats":
            return self.stats(req["s0"], req["sent_at"])
        if op == "timeline":
            return self.timeline(req["t0"], req["t1"], req["fps"])
        if op == "close":
            n = len(self.viewers)
            await asyncio.gather(*(close_viewer(v.pc, self.port, v.resource)
                                   for v in self.viewers))
            self.viewers.clear()
            return {"closed": n}
        raise ValueError(f"unknown op {op!r}")

    async def add(self, req: dict[str, Any]) -> dict[str, Any]:
        self.port = req["port"]
        gate = asyncio.Semaphore(req.get("concurrency", 8))
        errors: list[str] = []
        t0 = now()

        async def one() -> None:
            async with gate:
                try:
                    v = await open_counting_viewer(req["port"], req["path"], req["codec"],
                                                   req["fps"])
                except Exception as exc:
                    errors.append(repr(exc)[:300])
                else:
                    self.viewers.append(v)

        await asyncio.gather(*(one() for _ in range(req["n"])))
        return {"viewers": len(self.viewers), "failed": len(errors), "errors": errors[:3],
                "seconds": round(now() - t0, 2)}

    def stats(self, s0: int, sent_at: list[float]) -> dict[str, Any]:
        """Per viewer: frames ``s0 .. s0 + len(sent_at) - 1`` received; their delays (µs)."""
        s1 = s0 + len(sent_at)
        received, delays = [], []
        for v in self.viewers:
            got = 0
            arrived = v.arrived
            for seq in range(s0, s1):
                t = arrived.get(seq)
                if t is not None:
                    got += 1
                    delays.append(round((t - sent_at[seq - s0]) * 1e6))
            received.append(got)
            v.arrived = {k: t for k, t in arrived.items() if k >= s1}
        return {"received": received, "delays_us": delays,
                "frames": [v.frames for v in self.viewers]}

    def timeline(self, t0: float, t1: float, fps: int) -> dict[str, Any]:
        """Per viewer of an unstamped stream, over frames that arrived in [t0, t1]: frames
        received, the span of frame offsets they cover, and how fast the viewer fell
        behind (least-squares slope of arrival - offset / fps over arrival, s per s)."""
        received, span, slope = [], [], []
        for v in self.viewers:
            points = [(t, o) for t, o in v.timeline or () if t0 <= t <= t1]
            if v.timeline is not None:
                v.timeline = [(t, o) for t, o in v.timeline if t > t1]
            received.append(len(points))
            if len(points) < 2:
                span.append(len(points))
                slope.append(0.0)
                continue
            span.append(max(o for _, o in points) - min(o for _, o in points) + 1)
            xs = [t for t, _ in points]
            ys = [t - o / fps for t, o in points]
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            var = sum((x - mx) ** 2 for x in xs)
            slope.append(sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var
                         if var else 0.0)
        return {"received": received, "span": span, "slope": slope,
                "frames": [v.frames for v in self.viewers]}


async def viewers_main(control: int, name: str) -> None:
    loopback_ice()
    reader, writer = await asyncio.open_connection("127.0.0.1", control, limit=1 << 24)
    writer.write(json.dumps({"hello": name, "pid": os.getpid()}).encode() + b"\n")
    proc = ViewerProcess()
    try:
        while line := await reader.readline():
            req = json.loads(line)
            if req.get("op") == "exit":
                break
            try:
                reply = await proc.handle(req)
            except Exception as exc:
                reply = {"error": repr(exc)[:500]}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
    finally:
        await asyncio.gather(*(close_viewer(v.pc, proc.port, v.resource)
                               for v in proc.viewers), return_exceptions=True)
        writer.close()


# ====================================================================== clock in the picture
BITS = 32
BLOCK = 16
BLACK, WHITE = 16, 235


class ClockVideo(MediaStreamTrack):
    """Live frames (encoded by the sender) showing ``int((now() - origin) * 1000)``: 32
    blocks of 16x16 px in the top rows (MSB first), and below them the same bits inverted
    (a reader checks one against the other)."""

    kind = "video"

    def __init__(self, origin: float, width: int = 640, height: int = 360,
                 fps: int = 30) -> None:
        super().__init__()
        if width < BITS * BLOCK or height < 4 * BLOCK:
            raise ValueError("the picture is too small for the clock")
        self.origin, self.width, self.height, self.fps = origin, width, height, fps
        self.count = 0
        self.start: float | None = None
        self.blocks = (bytes([BLACK]) * BLOCK, bytes([WHITE]) * BLOCK)
        self.pattern = bytes((x * 5) % 200 + 30 for x in range(2 * width))

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self.start is None:
            self.start = now()
        delay = self.start + self.count / self.fps - now()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        luma = frame.planes[0]
        ls = luma.line_size
        value = int((now() - self.origin) * 1000) & 0xFFFFFFFF
        bits = [(value >> (BITS - 1 - i)) & 1 for i in range(BITS)]
        pad = bytes([128]) * (ls - BITS * BLOCK)
        row = b"".join(self.blocks[b] for b in bits) + pad
        inverse = b"".join(self.blocks[1 - b] for b in bits) + pad
        off = (self.count * 4) % self.width
        rest = self.pattern[off:off + self.width].ljust(ls, b"\x80")
        luma.update(row * BLOCK + inverse * BLOCK + rest * (self.height - 2 * BLOCK))
        for p in frame.planes[1:]:
            p.update(bytes([128]) * p.buffer_size)
        frame.pts = self.count * (VIDEO_CLOCK // self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.count += 1
        return frame


def read_clock(frame: av.VideoFrame) -> int | None:
    """The clock :class:`ClockVideo` drew into ``frame`` (ms), or None if it does not read."""
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        frame = frame.reformat(format="yuv420p")
    plane = frame.planes[0]
    ls = plane.line_size
    mv = memoryview(plane)
    value = 0
    for i in range(BITS):
        x = i * BLOCK + BLOCK // 2
        bit = mv[(BLOCK // 2) * ls + x] > 128
        inverse = mv[(BLOCK + BLOCK // 2) * ls + x] > 128
        if bit == inverse:
            return None
        value = (value << 1) | bit
    return value


@dataclass
class ClockViewer:
    """A viewer that decodes every frame and reads the clock in it."""

    pc: RTCPeerConnection
    origin: float
    recording: bool = False
    delays_ms: list[float] = field(default_factory=list)
    frames: int = 0
    unreadable: int = 0
    resource: str = ""
    task: asyncio.Task[None] | None = None

    def attach(self) -> None:
        @self.pc.on("track")
        def on_track(track: Any) -> None:
            self.task = asyncio.ensure_future(self._consume(track))

    async def _consume(self, track: Any) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                t = now()
                self.frames += 1
                drawn = read_clock(frame)
                if drawn is None:
                    self.unreadable += 1
                elif self.recording:
                    delay = (t - self.origin) * 1000 - drawn
                    if -1 <= delay < 60_000:
                        self.delays_ms.append(delay)
                    else:
                        self.unreadable += 1

    async def close(self, port: int = 0) -> None:
        if self.task is not None:
            self.task.cancel()
        await close_viewer(self.pc, port, self.resource)


# ====================================================================== script roles
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        loopback_ice()
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))
        from server.cli import main as bidhall

        return bidhall(argv)
    p = argparse.ArgumentParser(description="counting WebRTC viewers for stream_relay.py")
    p.add_argument("role", choices=["viewers"])
    p.add_argument("--control", type=int, required=True, help="the benchmark's TCP port")
    p.add_argument("--name", default="viewers")
    args = p.parse_args(argv)
    try:
        import uvloop
        uvloop.run(viewers_main(args.control, args.name))
    except ImportError:
        asyncio.run(viewers_main(args.control, args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
