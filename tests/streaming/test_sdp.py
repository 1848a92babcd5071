"""The SDP and sdpfrag checks: real offers pass, and any input is either accepted or refused
with the documented code (fuzzed)."""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection
from hypothesis import given, settings
from hypothesis import strategies as st

from streaming.sdp import MAX_SDP, SdpError, parse_fragment, parse_offer
from tests.streaming.peers import NumberedVideo


async def test_aiortc_offers_are_read() -> None:
    pc = RTCPeerConnection()
    pc.addTransceiver(NumberedVideo(), direction="sendonly")
    pc.addTransceiver("audio", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    offer = parse_offer(pc.localDescription.sdp, sending=True)
    assert offer.kinds() == {"audio", "video"}
    video = next(m for m in offer.media if m.kind == "video")
    assert "H264" in video.codecs and video.direction == "sendonly"
    with pytest.raises(SdpError, match="can receive"):
        parse_offer(pc.localDescription.sdp, sending=False)
    await pc.close()


@pytest.mark.parametrize("text", [
    "", "hello", "v=1\r\n", "v=0\r\ns=-\r\n",
    "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n",
    "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\n",  # no ICE, no fingerprint
    "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n\x00\r\n",
    "v=0\r\n" + "a=x\r\n" * (MAX_SDP // 5),
])
def test_bad_offers(text: str) -> None:
    with pytest.raises(SdpError) as exc:
        parse_offer(text, sending=True)
    assert exc.value.code == "bad_sdp"


def test_fragments() -> None:
    frag = parse_fragment("a=ice-ufrag:u\r\na=ice-pwd:p\r\na=mid:0\r\n"
                          "a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\na=end-of-candidates\r\n")
    assert (frag.ufrag, frag.pwd, frag.end_of_candidates) == ("u", "p", True)
    assert [(c.mid, c.line) for c in frag.candidates] == [
        ("0", "candidate:1 1 udp 1 127.0.0.1 9 typ host")]
    with pytest.raises(SdpError):
        parse_fragment("a=mid:0\r\n")


@settings(max_examples=300)
@given(st.text(max_size=2000) | st.lists(st.sampled_from([
    "v=0", "m=video 9 UDP/TLS/RTP/SAVPF 96", "m=audio 9 x 111", "a=sendonly", "a=recvonly",
    "a=ice-ufrag:x", "a=ice-pwd:y", "a=fingerprint:sha-256 AA", "a=rtpmap:96 H264/90000",
    "a=mid:0", "a=candidate:1 1 udp 1 1.2.3.4 5 typ host", "a=rtpmap:", "m=", "x"]),
    max_size=30).map("\r\n".join))
def test_any_input_is_read_or_refused_with_a_code(text: str) -> None:
    for call in (lambda: parse_offer(text, sending=True),
                 lambda: parse_offer(text, sending=False), lambda: parse_fragment(text)):
        try:
            call()
        except SdpError as exc:
            assert exc.code in ("bad_sdp", "bad_sdpfrag") and exc.message
