"""The encoded relay with aiortc peers in one process: frames reach every viewer without the
relay decoding or re-encoding them; keyframe requests are forwarded, rate-limited; a slow
viewer drops to the next keyframe; a codec mismatch falls back to re-encoding."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from aiortc.codecs import h264

from streaming.relay import Frame, Relay, RelayTrack, StreamError, is_keyframe
from streaming.sdp import parse_offer
from tests.streaming.peers import publisher, viewer

pytestmark = pytest.mark.timeout(60)
KEY = "lot:L1"


@pytest.fixture
def codec_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """How many H.264 frames were encoded, and how many decoders were made."""
    calls = {"encoded": 0, "decoders": 0}
    encode, init = h264.H264Encoder.encode, h264.H264Decoder.__init__

    def counting_encode(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["encoded"] += 1
        return encode(self, *args, **kwargs)

    def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        calls["decoders"] += 1
        init(self, *args, **kwargs)

    monkeypatch.setattr(h264.H264Encoder, "encode", counting_encode)
    monkeypatch.setattr(h264.H264Decoder, "__init__", counting_init)
    yield calls


@pytest_asyncio.fixture
async def relay() -> AsyncIterator[Relay]:
    r = Relay(max_viewers=4)
    try:
        yield r
    finally:
        await r.close()


async def until(check: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not check():
        if loop.time() > end:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


async def test_frames_pass_through_without_decoding_or_encoding(
        relay: Relay, codec_calls: dict[str, int]) -> None:
    pc, _, track = await publisher(relay, KEY)
    viewers = [await viewer(relay, KEY) for _ in range(3)]
    try:
        await until(lambda: all(v.frames >= 60 for v in viewers))
        sent = track.count
        # One encoder ran (the publisher's): the relay encoded nothing for its 3 viewers.
        assert codec_calls["encoded"] <= sent + 1
        # Three decoders were made (the viewers'): the relay decoded nothing.
        assert codec_calls["decoders"] == 3
        assert all(v.sizes == {(320, 180)} for v in viewers)
        session = relay.sessions[KEY]
        assert session.frames >= 60
        assert all(not t.waiting_keyframe for v in session.viewers.values() for t in v.tracks)
    finally:
        for v in viewers:
            await v.close()
        await pc.close()


async def test_a_viewer_joining_later_starts_on_a_keyframe(relay: Relay) -> None:
    pc, _, _ = await publisher(relay, KEY)
    first = await viewer(relay, KEY)
    try:
        await until(lambda: first.frames >= 30)
        plis = relay.sessions[KEY].plis_sent
        late = await viewer(relay, KEY)
        await until(lambda: late.frames >= 10)
        assert relay.sessions[KEY].plis_sent > plis  # its start asked for a keyframe
        await late.close()
    finally:
        await first.close()
        await pc.close()


async def test_keyframe_requests_are_rate_limited(relay: Relay) -> None:
    pc, _, _ = await publisher(relay, KEY)
    v = await viewer(relay, KEY)
    try:
        await until(lambda: v.frames >= 10)
        session = relay.sessions[KEY]
        before, asked = session.plis_sent, session.keyframe_requests
        for _ in range(50):  # a storm of PLIs from viewers within ~0.25 s
            sender = next(iter(session.viewers.values())).pc.getSenders()[0]
            sender._send_keyframe()
            await asyncio.sleep(0.005)
        assert session.keyframe_requests - asked == 50
        assert session.plis_sent - before <= 1
        await asyncio.sleep(0.6)
        sender._send_keyframe()
        assert session.plis_sent - before <= 2
    finally:
        await v.close()
        await pc.close()


def test_a_full_queue_drops_to_the_next_keyframe() -> None:
    track = RelayTrack("video", capacity=3)

    def frame(key: bool) -> Frame:
        return Frame("video", [b"x"], 0, key)

    assert not track.offer(frame(False))  # starts waiting for a keyframe
    assert track.offer(frame(True)) and track.offer(frame(False)) and track.offer(frame(False))
    assert len(track.queue) == 3
    assert not track.offer(frame(False))  # overflow: everything dropped, wait for a keyframe
    assert len(track.queue) == 0 and track.waiting_keyframe and track.dropped == 1 + 4
    assert not track.offer(frame(False))
    assert track.offer(frame(True)) and len(track.queue) == 1
    audio = RelayTrack("audio", capacity=2)
    assert audio.offer(Frame("audio", [b"x"], 0, False))  # audio needs no keyframe


def test_keyframes_are_found_in_annex_b() -> None:
    assert is_keyframe(b"\x00\x00\x00\x01\x67\x42" + b"\x00\x00\x00\x01\x65\x88")
    assert is_keyframe(b"\x00\x00\x01\x65\x88")
    assert not is_keyframe(b"\x00\x00\x00\x01\x41\x9a")
    assert not is_keyframe(b"")


async def test_a_viewer_without_h264_is_reencoded(relay: Relay,
                                                  codec_calls: dict[str, int]) -> None:
    pc, _, _ = await publisher(relay, KEY)
    forwarded = await viewer(relay, KEY)
    vp8 = await viewer(relay, KEY, codec="video/VP8")
    try:
        await until(lambda: vp8.frames >= 20 and forwarded.frames >= 20)
        session = relay.sessions[KEY]
        assert session.taps["video"].decode  # decoding runs only for the fallback
        # The H.264 viewer's decoder, and the relay's one for the re-encoding path.
        assert codec_calls["decoders"] == 2
        await relay.stop(vp8.resource)
        assert not session.taps["video"].decode
    finally:
        await forwarded.close()
        await vp8.close()
        await pc.close()


async def test_one_publisher_per_session_and_a_viewer_limit(relay: Relay) -> None:
    pc, resource, _ = await publisher(relay, KEY)
    try:
        with pytest.raises(StreamError) as second:
            await publisher(relay, KEY)
        assert second.value.code == "already_publishing"
        viewers = [await viewer(relay, KEY) for _ in range(4)]
        with pytest.raises(StreamError) as full:
            await viewer(relay, KEY)
        assert full.value.code == "relay_full" and full.value.retry_after
        for v in viewers:
            await relay.stop(v.resource)
            await v.close()
        await relay.stop(resource)
        assert KEY not in relay.sessions
        again, _, _ = await publisher(relay, KEY)  # the session is free again
        await again.close()
    finally:
        await pc.close()


async def test_an_offer_that_cannot_publish_is_refused() -> None:
    from streaming.sdp import SdpError

    with pytest.raises(SdpError):
        parse_offer("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\n", sending=True)


async def test_a_session_is_recorded_as_received(relay: Relay, tmp_path: Any,
                                                 codec_calls: dict[str, int]) -> None:
    import av

    pc, _, track = await publisher(relay, KEY)
    path = tmp_path / "lot-L1.ts"
    try:
        recorder = relay.record(KEY, path)
        with pytest.raises(StreamError) as twice:
            relay.record(KEY, tmp_path / "other.ts")
        assert twice.value.code == "already_recording"
        await until(lambda: recorder.frames >= 45)
        sent = track.count
        assert relay.stop_recording(KEY) is recorder
        assert relay.stop_recording(KEY) is None
        assert codec_calls["encoded"] <= sent + 1  # only the publisher encoded
        with av.open(str(path)) as container:
            decoded = sum(1 for _ in container.decode(video=0))
            size = (container.streams.video[0].codec_context.width,
                    container.streams.video[0].codec_context.height)
        assert decoded >= 45 and size == (320, 180)
    finally:
        await pc.close()
