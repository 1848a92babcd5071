"""aiortc peers for the relay tests: a publisher sending a synthetic H.264 picture and
viewers that decode and count what they get."""

from __future__ import annotations

import asyncio
import fractions
import time
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription, VideoStreamTrack

from streaming.relay import Relay
from streaming.sdp import parse_offer

WIDTH, HEIGHT = 320, 180


class NumberedVideo(VideoStreamTrack):
    """Frames at ``fps`` whose brightness changes with the frame number."""

    def __init__(self, fps: int = 30) -> None:
        super().__init__()
        self.fps, self.count, self.start = fps, 0, time.monotonic()

    async def recv(self) -> av.VideoFrame:
        self.count += 1
        due = self.start + self.count / self.fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        for plane, level in zip(frame.planes, ((self.count * 7) % 256, 128, 128), strict=True):
            plane.update(bytes([level]) * plane.buffer_size)
        frame.pts = self.count * (90_000 // self.fps)
        frame.time_base = fractions.Fraction(1, 90_000)
        return frame


def prefer(transceiver: Any, mime: str) -> None:
    caps = RTCRtpSender.getCapabilities(transceiver.kind).codecs
    transceiver.setCodecPreferences([c for c in caps if c.mimeType in (mime, "video/rtx")])


async def publisher(relay: Relay, key: str, fps: int = 30) -> tuple[RTCPeerConnection, str,
                                                                   NumberedVideo]:
    pc = RTCPeerConnection()
    track = NumberedVideo(fps)
    prefer(pc.addTransceiver(track, direction="sendonly"), "video/H264")
    await pc.setLocalDescription(await pc.createOffer())
    try:
        resource, answer = await relay.publish(key, parse_offer(pc.localDescription.sdp,
                                                                sending=True))
    except BaseException:
        await pc.close()
        raise
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return pc, resource, track


@dataclass
class Viewer:
    pc: RTCPeerConnection
    resource: str
    frames: int = 0
    sizes: set[tuple[int, int]] = field(default_factory=set)
    task: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        await self.pc.close()


async def viewer(relay: Relay, key: str, codec: str = "video/H264") -> Viewer:
    pc = RTCPeerConnection()
    prefer(pc.addTransceiver("video", direction="recvonly"), codec)
    await pc.setLocalDescription(await pc.createOffer())
    try:
        resource, answer = await relay.watch(key, parse_offer(pc.localDescription.sdp,
                                                              sending=False))
    except BaseException:
        await pc.close()
        raise
    v = Viewer(pc, resource)

    @pc.on("track")
    def on_track(track: Any) -> None:
        async def count() -> None:
            while True:
                frame = await track.recv()
                v.frames += 1
                v.sizes.add((frame.width, frame.height))

        v.task = asyncio.ensure_future(count())

    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return v
