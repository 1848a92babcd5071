"""streaming/sender.py against aiortc's own sender loop: for the same frames (real H.264
from libx264, large enough for FU-A; Opus-sized audio) both loops put the same bytes on the
wire and leave the same bookkeeping (RTP history for NACKs, RTCP sender-report counters).

The randomness (first sequence number, timestamp origin) and the NTP clock are fixed for
both runs; the bytes are taken where the sender hands them to SRTP."""

from __future__ import annotations

import asyncio
import fractions
import os
from collections.abc import Callable, Coroutine
from typing import Any

import av
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCCertificate,
    RTCDtlsTransport,
    RTCIceGatherer,
    RTCIceTransport,
    RTCRtpSender,
    clock,
)
from aiortc import rtcrtpsender as stock
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpSendParameters,
)
from aiortc.rtp import RTP_HISTORY_SIZE, RtpPacket

from streaming import sender as relayed
from streaming.relay import Frame, is_keyframe
from streaming.sender import packetize, run_relayed

pytestmark = pytest.mark.timeout(60)
H264 = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90_000, payloadType=102,
                             parameters={"packetization-mode": "1",
                                         "profile-level-id": "42e01f"})
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48_000, channels=2,
                             payloadType=111)
EXTENSIONS = [
    RTCRtpHeaderExtensionParameters(id=4, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
    RTCRtpHeaderExtensionParameters(
        id=2, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
]
FIRST_SEQUENCE = 65_530  # wraps within the test
ORIGIN = 4_294_000_000  # so does the timestamp


def h264_access_units(count: int = 12) -> list[bytes]:
    """Baseline H.264 at 640x360 from noise: keyframes far above one RTP packet."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 640, 360, "yuv420p"
    ctx.time_base = fractions.Fraction(1, 30)
    ctx.options = {"tune": "zerolatency", "preset": "ultrafast", "profile": "baseline",
                   "g": "5", "bframes": "0"}
    units: list[bytes] = []
    for i in range(count):
        frame = av.VideoFrame(640, 360, "yuv420p")
        for plane in frame.planes:
            plane.update(os.urandom(plane.buffer_size) if i % 5 == 0
                         else bytes([i * 9 % 256]) * plane.buffer_size)
        frame.pts = i
        units.extend(bytes(p) for p in ctx.encode(frame))
    units.extend(bytes(p) for p in ctx.encode(None))
    return units


class Items(MediaStreamTrack):
    """Hands out the given items, then ends."""

    def __init__(self, kind: str, items: list[Any]) -> None:
        super().__init__()
        self.kind, self.items = kind, list(items)

    async def recv(self) -> Any:
        if not self.items:
            raise MediaStreamError
        return self.items.pop(0)


def capturing_sender(track: Items) -> tuple[RTCRtpSender, list[bytes]]:
    """A sender whose RTP is kept in a list where SRTP would take it."""
    transport = RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()),
                                 [RTCCertificate.generateCertificate()])
    wire: list[bytes] = []

    async def capture(data: bytes) -> None:
        wire.append(data)

    transport._send_rtp = capture  # type: ignore[method-assign]
    return RTCRtpSender(track, transport), wire


async def run(kind: str, codec: RTCRtpCodecParameters, items: list[Any],
              loop: Callable[[RTCRtpSender, Items], Coroutine[Any, Any, None]]
              ) -> tuple[list[bytes], RTCRtpSender]:
    track = Items(kind, items)
    sender, wire = capturing_sender(track)
    sender._RTCRtpSender__mid = "0"  # type: ignore[attr-defined]
    sender._RTCRtpSender__rtp_header_extensions_map.configure(  # type: ignore[attr-defined]
        RTCRtpSendParameters(codecs=[codec], headerExtensions=EXTENSIONS, muxId="0"))
    await loop(sender, track)
    return wire, sender


@pytest.fixture(autouse=True)
def fixed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "current_ntp_time", lambda: 0x1234_5678_9ABC_DEF0)
    for module in (stock, relayed):
        monkeypatch.setattr(module, "random32", lambda: ORIGIN)
    monkeypatch.setattr(stock, "random_sequence_number", lambda: FIRST_SEQUENCE)
    monkeypatch.setattr(relayed, "random16", lambda: FIRST_SEQUENCE)


def counters(sender: RTCRtpSender) -> tuple[int, int, int, int]:
    return tuple(getattr(sender, f"_RTCRtpSender__{name}") for name in (  # type: ignore[return-value]
        "ntp_timestamp", "rtp_timestamp", "octet_count", "packet_count"))


@pytest.mark.parametrize("kind", ["video", "audio"])
async def test_the_relayed_loop_sends_what_aiortc_sends(kind: str) -> None:
    if kind == "video":
        codec, clock_rate, step = H264, 90_000, 3000
        units = h264_access_units()
        assert any(is_keyframe(u) and len(u) > 5000 for u in units)  # FU-A on the way
    else:
        codec, clock_rate, step = OPUS, 48_000, 960
        units = [os.urandom(120 + i) for i in range(20)]
    packets = []
    for i, unit in enumerate(units):
        packet = av.Packet(unit)
        packet.pts, packet.time_base = i * step, fractions.Fraction(1, clock_rate)
        packets.append(packet)
    frames = [Frame(kind, packetize(kind, u), i * step, is_keyframe(u))
              for i, u in enumerate(units)]

    theirs, stock_sender = await run(kind, codec, packets,
                                     lambda s, _t: s._run_rtp(codec))
    ours, our_sender = await run(kind, codec, frames,
                                 lambda s, t: run_relayed(s, t, codec))

    assert len(theirs) > len(units) if kind == "video" else len(theirs) == len(units)
    assert ours == theirs
    assert counters(our_sender) == counters(stock_sender)
    # The history a NACK is answered from holds the same packets.
    extensions_map = our_sender._RTCRtpSender__rtp_header_extensions_map  # type: ignore[attr-defined]
    history: dict[int, RtpPacket] = our_sender._RTCRtpSender__rtp_history  # type: ignore[attr-defined]
    sent = {RtpPacket.parse(b).sequence_number: b for b in ours}
    assert len(history) == min(len(sent), RTP_HISTORY_SIZE)
    for packet in history.values():
        assert packet.serialize(extensions_map) == sent[packet.sequence_number]
    # Both loops ended their track and let stop() go on.
    for s in (stock_sender, our_sender):
        assert s.track is None
        assert s._RTCRtpSender__rtp_exited.is_set()  # type: ignore[attr-defined]


async def test_a_stopped_sender_ends_the_relayed_loop() -> None:
    frames = [Frame("audio", [b"x" * 100], i * 960, False) for i in range(3)]

    class Endless(Items):
        async def recv(self) -> Any:
            if len(self.items) > 1:
                return self.items.pop(0)
            await asyncio.sleep(3600)

    track = Endless("audio", frames)
    sender, wire = capturing_sender(track)
    task = asyncio.ensure_future(run_relayed(sender, track, OPUS))
    while len(wire) < 2:
        await asyncio.sleep(0.01)
    task.cancel()
    await task  # the loop ends quietly, as aiortc's does
    assert sender._RTCRtpSender__rtp_exited.is_set()  # type: ignore[attr-defined]
    assert track.readyState == "ended"
