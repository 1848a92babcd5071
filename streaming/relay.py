"""The encoded relay: one publisher per session, many viewers, frames forwarded as received.

aiortc's receiver reassembles each frame (jitter buffer) and hands it to a decoder thread
through a queue; its sender reads a track and sends RTP. The relay joins the two:

    publisher RTP → RTCRtpReceiver jitter buffer → :class:`Tap` (instead of the decoder)
        → :meth:`Session.forward` (packetized once) → one :class:`RelayTrack` per viewer
        (bounded queue) → :func:`streaming.sender.run_relayed` → viewer RTP

so no frame is decoded or re-encoded, and none is packetized twice. A viewer starts on a
keyframe and, when its queue overflows, drops everything up to the next keyframe. A viewer's
keyframe request (PLI or FIR, which aiortc's sender turns into ``_send_keyframe``) becomes a
PLI to the publisher, at most one per ``keyframe_gap`` seconds per session.

A viewer whose offer has no H.264 (the codec mismatch case) is served by the stock path:
the tap then also feeds the decoder and aiortc's ``MediaRelay`` re-encodes for that viewer.

This touches aiortc internals, pinned in pyproject.toml and covered by tests/streaming:
``RTCRtpReceiver._RTCRtpReceiver__decoder_queue`` (replaced by the tap before the decoder
thread starts), ``RTCRtpReceiver._send_rtcp_pli``, ``RTCRtpSender._send_keyframe`` and
``RTCRtpSender._run_rtp`` (see streaming/sender.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp

from .recording import Recorder
from .sdp import Fragment, Offer
from .sender import packetize, run_relayed

log = logging.getLogger("bidhall.streaming")

CLOCK = {"video": 90_000, "audio": 48_000}
#: Codecs the relay forwards; a publisher is asked for these and nothing else.
FORWARDED = {"video": "video/H264", "audio": "audio/opus"}


class StreamError(Exception):
    """A refusal of the relay, with a stable code (see server.errors)."""

    def __init__(self, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.retry_after = code, message, retry_after


def is_keyframe(data: bytes) -> bool:
    """Whether an H.264 access unit (Annex B, as aiortc depayloads it) starts a picture
    anew: it holds an IDR slice (NAL type 5) or a sequence parameter set (7)."""
    at = data.find(b"\x00\x00\x01")
    while at != -1 and at + 3 < len(data):
        if data[at + 3] & 0x1F in (5, 7):
            return True
        at = data.find(b"\x00\x00\x01", at + 3)
    return False


@dataclass(slots=True)
class Frame:
    """One encoded frame as the publisher sent it, packetized once for every viewer."""

    kind: str
    payloads: list[bytes]
    timestamp: int  # RTP clock (CLOCK[kind]), as the publisher stamped it
    keyframe: bool


class RelayTrack(MediaStreamTrack):
    """What one viewer's sender reads: encoded frames, from a bounded queue."""

    def __init__(self, kind: str, capacity: int) -> None:
        super().__init__()
        self.kind = kind
        self.capacity = capacity
        self.queue: deque[Frame] = deque()
        self.waiting_keyframe = kind == "video"
        self.forwarded = self.dropped = 0
        self._ready = asyncio.Event()

    def offer(self, frame: Frame) -> bool:
        """Queue ``frame``; False when this viewer needs a keyframe it has not got."""
        if self.readyState != "live":
            return True
        if self.waiting_keyframe:
            if not frame.keyframe:
                self.dropped += 1
                return False
            self.waiting_keyframe = False
        if len(self.queue) >= self.capacity:
            # Too slow for the stream: drop what is queued and resume at a keyframe.
            self.dropped += len(self.queue) + 1
            self.queue.clear()
            self.waiting_keyframe = self.kind == "video"
            return not self.waiting_keyframe
        self.queue.append(frame)
        self.forwarded += 1
        self._ready.set()
        return True

    async def recv(self) -> Frame:  # type: ignore[override]  # read by run_relayed only
        while not self.queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        return self.queue.popleft()

    def stop(self) -> None:
        super().stop()
        self._ready.set()


class Tap(queue.Queue):  # type: ignore[type-arg]
    """Stands in for a receiver's decoder queue: every reassembled frame goes to
    ``forward``; the decoder thread only gets frames while ``decode`` is set (a
    re-encoding viewer needs them) and the ``None`` that stops it."""

    def __init__(self, kind: str, forward: Callable[[str, Any], None]) -> None:
        super().__init__()
        self.kind, self.forward, self.decode = kind, forward, False

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None or self.decode:
            super().put(item, block, timeout)
        if item is not None:
            self.forward(self.kind, item[1])


@dataclass(eq=False)
class Peer:
    """A WHIP or WHEP resource: one peer connection."""

    id: str
    session: Session
    pc: RTCPeerConnection
    publisher: bool
    tracks: list[RelayTrack] = field(default_factory=list)
    reencoded: bool = False


@dataclass(eq=False)
class Session:
    """One lot or tender being streamed."""

    key: str
    keyframe_gap: float
    publisher: Peer | None = None
    viewers: dict[str, Peer] = field(default_factory=dict)
    receivers: dict[str, RTCRtpReceiver] = field(default_factory=dict)
    taps: dict[str, Tap] = field(default_factory=dict)
    remote: dict[str, MediaStreamTrack] = field(default_factory=dict)
    frames: int = 0
    keyframe_requests: int = 0
    plis_sent: int = 0
    last_pli: float = -1e9
    recorder: Recorder | None = None
    _pli_task: asyncio.Task[None] | None = None

    def forward(self, kind: str, encoded: Any) -> None:
        data = encoded.data
        keyframe = kind == "video" and is_keyframe(data)
        self.frames += kind == "video"
        if self.recorder is not None:
            self.recorder.write(kind, data, encoded.timestamp, keyframe)
        if not self.viewers:
            return
        frame = Frame(kind, packetize(kind, data), encoded.timestamp, keyframe)
        starving = False
        for viewer in self.viewers.values():
            for track in viewer.tracks:
                if track.kind == kind and not track.offer(frame):
                    starving = True
        if starving:
            self.request_keyframe()

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe, at most once per ``keyframe_gap`` seconds."""
        self.keyframe_requests += 1
        receiver = self.receivers.get("video")
        now = time.monotonic()
        if receiver is None or now - self.last_pli < self.keyframe_gap:
            return
        sources = receiver.getSynchronizationSources()
        if not sources:
            return
        self.last_pli = now
        self.plis_sent += 1
        self._pli_task = asyncio.ensure_future(receiver._send_rtcp_pli(sources[0].source))

    def set_decoding(self) -> None:
        wanted = any(v.reencoded for v in self.viewers.values())
        for tap in self.taps.values():
            tap.decode = wanted


class Relay:
    """Every session this process streams. ``max_viewers`` bounds the viewers of all
    sessions together (the process's capacity); beyond it :meth:`watch` refuses."""

    def __init__(self, *, max_viewers: int = 120, queue_frames: int = 60,
                 keyframe_gap: float = 0.5, ice_servers: list[Any] | None = None) -> None:
        self.max_viewers, self.queue_frames = max_viewers, queue_frames
        self.keyframe_gap = keyframe_gap
        self.config = RTCConfiguration(iceServers=ice_servers or [])
        self.sessions: dict[str, Session] = {}
        self.peers: dict[str, Peer] = {}
        self._media = MediaRelay()

    # ------------------------------------------------------------------ queries
    def session(self, key: str) -> Session:
        return self.sessions.setdefault(key, Session(key, self.keyframe_gap))

    def live(self, key: str) -> bool:
        s = self.sessions.get(key)
        return s is not None and s.publisher is not None

    def viewer_count(self) -> int:
        return sum(len(s.viewers) for s in self.sessions.values())

    def stats(self) -> dict[str, Any]:
        return {"viewers": self.viewer_count(), "max_viewers": self.max_viewers,
                "sessions": {k: {"live": s.publisher is not None, "viewers": len(s.viewers),
                                 "frames": s.frames, "plis": s.plis_sent,
                                 "recording": s.recorder is not None}
                             for k, s in self.sessions.items()}}

    # ------------------------------------------------------------------ publish
    async def publish(self, key: str, offer: Offer) -> tuple[str, str]:
        """Take ``offer`` from the session's publisher; returns (resource id, answer)."""
        session = self.session(key)
        if session.publisher is not None:
            raise StreamError("already_publishing", "this session already has a publisher; "
                              "DELETE its WHIP resource first")
        pc = RTCPeerConnection(self.config)
        peer = Peer(secrets.token_urlsafe(12), session, pc, publisher=True)
        session.publisher = peer  # claimed before the first await: one publisher at a time

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            receiver = next(t.receiver for t in pc.getTransceivers() if t.receiver.track is track)
            tap = Tap(track.kind, session.forward)
            receiver._RTCRtpReceiver__decoder_queue = tap  # type: ignore[attr-defined]
            session.receivers[track.kind], session.taps[track.kind] = receiver, tap
            session.remote[track.kind] = track

        try:
            answer = await self._answer(peer, offer, sending=True)
        except BaseException:
            session.publisher = None
            await pc.close()
            raise
        return peer.id, answer

    # ------------------------------------------------------------------ watch
    async def watch(self, key: str, offer: Offer) -> tuple[str, str]:
        """Take a viewer's recvonly ``offer``; returns (resource id, answer)."""
        if self.viewer_count() >= self.max_viewers:
            raise StreamError("relay_full", f"this relay serves {self.max_viewers} viewers "
                              "already; retry later", retry_after=5)
        session = self.session(key)
        pc = RTCPeerConnection(self.config)
        peer = Peer(secrets.token_urlsafe(12), session, pc, publisher=False)
        session.viewers[peer.id] = peer
        try:
            answer = await self._answer(peer, offer, sending=False)
        except BaseException:
            session.viewers.pop(peer.id, None)
            await pc.close()
            raise
        if session.publisher is not None:
            session.request_keyframe()  # the new viewer starts on a keyframe
        return peer.id, answer

    async def _answer(self, peer: Peer, offer: Offer, *, sending: bool) -> str:
        pc, session = peer.pc, peer.session
        self.peers[peer.id] = peer

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.stop(peer.id)

        await pc.setRemoteDescription(RTCSessionDescription(offer.text, "offer"))
        for transceiver in pc.getTransceivers():
            kind = transceiver.kind
            if sending:
                transceiver.direction = "recvonly"
                self._prefer(transceiver, kind)
                continue
            codecs = {m.kind: m.codecs for m in offer.media}
            if kind == "video" and "H264" not in codecs.get("video", ()):
                # Codec mismatch: the stock path, decoded once and re-encoded for this viewer.
                peer.reencoded = True
                source = session.remote.get("video")
                if source is None:
                    raise StreamError("codec_mismatch", "this viewer does not accept H.264 "
                                      "and no publisher is live to re-encode from")
                transceiver.sender.replaceTrack(self._media.subscribe(source))
                transceiver.direction = "sendonly"
                continue
            track = RelayTrack(kind, self.queue_frames)
            peer.tracks.append(track)
            transceiver.sender.replaceTrack(track)
            transceiver.direction = "sendonly"
            self._prefer(transceiver, kind)
            # A viewer's PLI or FIR asks the publisher (rate-limited) for a keyframe.
            transceiver.sender._send_keyframe = session.request_keyframe  # type: ignore[method-assign]
            # The frames go out packetized once for all viewers (streaming/sender.py).
            transceiver.sender._run_rtp = functools.partial(  # type: ignore[method-assign]
                run_relayed, transceiver.sender, track)
        session.set_decoding()
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    @staticmethod
    def _prefer(transceiver: Any, kind: str) -> None:
        wanted = FORWARDED.get(kind)
        codecs = [c for c in RTCRtpSender.getCapabilities(kind).codecs
                  if c.mimeType.lower() == (wanted or "").lower()
                  or c.mimeType.lower().endswith("/rtx")]
        if wanted is not None and any(not c.mimeType.endswith("/rtx") for c in codecs):
            transceiver.setCodecPreferences(codecs)

    # ------------------------------------------------------------------ recording
    def record(self, key: str, path: Path) -> Recorder:
        """Start recording ``key`` to ``path`` (MPEG-TS); the session need not be live yet."""
        session = self.session(key)
        if session.recorder is not None:
            raise StreamError("already_recording", "this session is being recorded already")
        session.recorder = Recorder(path)
        if session.publisher is not None:
            session.request_keyframe()  # the file starts at a keyframe
        return session.recorder

    def stop_recording(self, key: str) -> Recorder | None:
        session = self.sessions.get(key)
        recorder = session.recorder if session is not None else None
        if session is not None and recorder is not None:
            session.recorder = None
            recorder.close()
            self._forget(session)
        return recorder

    def _forget(self, session: Session) -> None:
        if session.publisher is None and not session.viewers and session.recorder is None:
            self.sessions.pop(session.key, None)

    # ------------------------------------------------------------------ trickle, stop
    async def trickle(self, resource: str, fragment: Fragment) -> None:
        peer = self.peer(resource)
        for cand in fragment.candidates:
            candidate = candidate_from_sdp(cand.line.split(":", 1)[1])
            candidate.sdpMid = cand.mid
            if cand.mid is None:
                candidate.sdpMLineIndex = 0
            await peer.pc.addIceCandidate(candidate)

    def peer(self, resource: str) -> Peer:
        peer = self.peers.get(resource)
        if peer is None:
            raise StreamError("unknown_resource", "no such WHIP or WHEP resource (ended?)")
        return peer

    async def stop(self, resource: str) -> None:
        """End one resource (idempotent); a publisher's end leaves its viewers waiting."""
        peer = self.peers.pop(resource, None)
        if peer is None:
            return
        session = peer.session
        if peer.publisher and session.publisher is peer:
            session.publisher = None
            session.receivers.clear()
            session.taps.clear()
            session.remote.clear()
            for viewer in session.viewers.values():
                for track in viewer.tracks:
                    track.waiting_keyframe = track.kind == "video"
        else:
            session.viewers.pop(peer.id, None)
            session.set_decoding()
        for track in peer.tracks:
            track.stop()
        with contextlib.suppress(Exception):
            await peer.pc.close()
        self._forget(session)

    async def close(self) -> None:
        await asyncio.gather(*(self.stop(r) for r in list(self.peers)),
                             return_exceptions=True)
        for key in list(self.sessions):
            self.stop_recording(key)
