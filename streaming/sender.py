"""A viewer's RTP loop for relayed frames, in place of aiortc's ``RTCRtpSender._run_rtp``.

aiortc's loop packetizes every frame for every viewer, builds the header extensions and
reads the NTP clock for every packet. For a relay those costs do not depend on the viewer:
:func:`packetize` splits a frame once (in ``Session.forward``) and every viewer's
:func:`run_relayed` sends the same payloads, with the extensions and the clock read once
per frame. What reaches the wire is the same (the RTP header, the abs-send-time and mid
extensions, the marker on a frame's last packet), and so is the sender's bookkeeping: the
RTP history that NACK retransmissions read and the counters of its RTCP sender reports.

This mirrors ``_run_rtp`` of aiortc 1.16 (pinned in pyproject.toml) and writes these private
attributes of ``RTCRtpSender``: ``__rtp_started``, ``__rtp_history``, ``__ntp_timestamp``,
``__rtp_timestamp``, ``__octet_count``, ``__packet_count``, ``__track``, ``__rtp_exited``;
tests/streaming/test_sender.py checks them and the bytes on the wire against aiortc's loop.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any, Protocol

from aiortc import RTCRtpSender, clock
from aiortc.codecs.h264 import H264Encoder
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensions, RtpPacket
from aiortc.utils import random16, random32

log = logging.getLogger("bidhall.streaming")

_P = "_RTCRtpSender__"
_HEADER = struct.Struct("!BBHLL")
_EXTENSION = struct.Struct("!HH")


class Relayed(Protocol):
    """One frame as the viewers get it (``streaming.relay.Frame``)."""

    payloads: list[bytes]
    timestamp: int


class Source(Protocol):
    async def recv(self) -> Any: ...

    def stop(self) -> None: ...


def packetize(kind: str, data: bytes) -> list[bytes]:
    """A frame's RTP payloads: an H.264 access unit (Annex B) split into single NAL units,
    STAP-A and FU-A packets as aiortc's encoder does; an Opus frame as it is."""
    if kind == "video":
        return H264Encoder._packetize(H264Encoder._split_bitstream(data))
    return [data]


async def run_relayed(sender: RTCRtpSender, track: Source, codec: RTCRtpCodecParameters) -> None:
    """Send ``track``'s frames (:class:`Relayed`) until the sender or the track stops."""
    getattr(sender, _P + "rtp_started").set()
    history: dict[int, RtpPacket] = getattr(sender, _P + "rtp_history")
    extensions_map = getattr(sender, _P + "rtp_header_extensions_map")
    mid = getattr(sender, _P + "mid")
    send = sender.transport._send_rtp
    ssrc = sender._ssrc
    payload_type = codec.payloadType
    assert payload_type is not None  # negotiated before send() starts this loop
    sequence_number = random16()
    origin = random32()
    try:
        while True:
            frame: Relayed = await track.recv()
            if not sender._enabled:
                continue
            timestamp = (origin + frame.timestamp) & 0xFFFFFFFF
            ntp = clock.current_ntp_time()
            extensions = HeaderExtensions()
            extensions.abs_send_time = (ntp >> 14) & 0x00FFFFFF
            extensions.mid = mid
            profile, value = extensions_map.set(extensions)
            if value:
                first, tail = 0x90, _EXTENSION.pack(profile, len(value) >> 2) + value
            else:
                first, tail = 0x80, b""
            payloads = frame.payloads
            last = len(payloads) - 1
            octets = 0
            for i, payload in enumerate(payloads):
                marker = int(i == last)
                packet = RtpPacket(payload_type, marker, sequence_number, timestamp, ssrc,
                                   payload)
                packet.extensions = extensions
                history[sequence_number % RTP_HISTORY_SIZE] = packet
                await send(_HEADER.pack(first, (marker << 7) | payload_type, sequence_number,
                                        timestamp, ssrc) + tail + payload)
                octets += len(payload)
                sequence_number = (sequence_number + 1) & 0xFFFF
            setattr(sender, _P + "ntp_timestamp", ntp)
            setattr(sender, _P + "rtp_timestamp", timestamp)
            setattr(sender, _P + "octet_count", getattr(sender, _P + "octet_count") + octets)
            setattr(sender, _P + "packet_count",
                    getattr(sender, _P + "packet_count") + len(payloads))
    except (asyncio.CancelledError, ConnectionError, MediaStreamError):
        pass  # the sender or the track stopped, or the connection went
    except Exception:
        # As aiortc's loop: RTCRtpSender.stop() waits for rtp_exited, so never skip it.
        log.warning("relayed RTP stopped", exc_info=True)
    track.stop()
    setattr(sender, _P + "track", None)
    getattr(sender, _P + "rtp_exited").set()
