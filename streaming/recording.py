"""Recording a session to a file as it passes through the relay, without re-encoding.

The publisher's encoded frames are muxed into MPEG-TS (H.264 and Opus as received), a
format any player reads and that stays playable when the process stops mid-file. The
recording starts at the first keyframe. Audio and video timestamps each start at zero
(their RTP clocks are independent), so lip sync is as good as the publisher's start.
"""

from __future__ import annotations

import fractions
import logging
from pathlib import Path
from typing import Any

import av

log = logging.getLogger("bidhall.streaming")


class Recorder:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.container: Any = av.open(str(path), "w", format="mpegts")
        self.streams: dict[str, Any] = {}
        video = self.container.add_stream("h264", rate=30)
        video.time_base = fractions.Fraction(1, 90_000)
        audio = self.container.add_stream("opus", rate=48_000)
        self.streams = {"video": video, "audio": audio}
        self.base: dict[str, int] = {}
        self.started = False
        self.frames = 0
        self.last_pts: dict[str, int] = {}

    def write(self, kind: str, data: bytes, pts: int, keyframe: bool) -> None:
        if not self.started:
            if kind != "video" or not keyframe:
                return
            self.started = True
        base = self.base.setdefault(kind, pts)
        at = max(pts - base, self.last_pts.get(kind, -1) + 1)  # the muxer wants them rising
        self.last_pts[kind] = at
        packet = av.Packet(data)
        packet.pts = packet.dts = at
        packet.time_base = fractions.Fraction(1, 90_000 if kind == "video" else 48_000)
        packet.stream = self.streams[kind]
        try:
            self.container.mux(packet)
        except av.FFmpegError as exc:  # one bad frame must not end the session
            log.warning("recording %s: frame dropped: %s", self.path.name, exc)
            return
        self.frames += kind == "video"

    def close(self) -> None:
        self.container.close()
