"""Checks on what WHIP and WHEP clients send, before any of it reaches a peer connection.

Pure functions over text: an SDP offer (RFC 8866, as JSEP produces it) is accepted only
with what a relay session needs (ICE credentials, a DTLS fingerprint, an audio or video
section going the right way); a trickle-ice-sdpfrag (RFC 8840) is split into its ICE
credentials and candidates. Anything else is :class:`SdpError` with a stable code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, Literal

SDP: Final = "application/sdp"
SDPFRAG: Final = "application/trickle-ice-sdpfrag"
MAX_SDP: Final = 64 * 1024

Direction = Literal["sendonly", "recvonly", "sendrecv", "inactive"]
_LINE = re.compile(r"[a-z]=[\x20-\x7e\t]*")


class SdpError(ValueError):
    """The body is not usable; ``code`` is ``bad_sdp`` (or ``bad_sdpfrag``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True, slots=True)
class Media:
    kind: str  # "audio" | "video"
    mid: str | None
    direction: Direction
    codecs: tuple[str, ...]  # rtpmap encoding names, upper case: "H264", "OPUS", ...


@dataclass(frozen=True, slots=True)
class Offer:
    text: str
    media: tuple[Media, ...]

    def kinds(self) -> set[str]:
        return {m.kind for m in self.media if m.direction != "inactive"}


@dataclass(frozen=True, slots=True)
class Candidate:
    mid: str | None
    line: str  # "candidate:..." without "a="


@dataclass(frozen=True, slots=True)
class Fragment:
    ufrag: str | None
    pwd: str | None
    candidates: tuple[Candidate, ...] = field(default=())
    end_of_candidates: bool = False


def _lines(text: str, code: str) -> list[str]:
    if len(text.encode()) > MAX_SDP:
        raise SdpError(code, f"the body is larger than {MAX_SDP} bytes")
    lines = [ln for ln in text.replace("\r\n", "\n").split("\n") if ln]
    for ln in lines:
        if not _LINE.fullmatch(ln):
            raise SdpError(code, f"not an SDP line: {ln[:40]!r}")
    return lines


def parse_offer(text: str, *, sending: bool) -> Offer:
    """The offer of a publisher (``sending=True``: WHIP, its media go to us) or of a viewer
    (``sending=False``: WHEP, it only receives)."""
    lines = _lines(text, "bad_sdp")
    if not lines or lines[0] != "v=0":
        raise SdpError("bad_sdp", "an SDP offer starts with v=0")
    session = [ln for ln in lines[1:] if not ln.startswith("m=")]
    session_has = {ln.split(":", 1)[0] for ln in lines}
    sections: list[list[str]] = []
    for ln in lines:
        if ln.startswith("m="):
            sections.append([ln])
        elif sections:
            sections[-1].append(ln)
    media = []
    for sec in sections:
        kind = sec[0][2:].split(" ", 1)[0]
        attrs = sec[1:]
        if kind not in ("audio", "video"):
            continue
        direction: Direction = "sendrecv"
        for d in ("sendonly", "recvonly", "sendrecv", "inactive"):
            if f"a={d}" in attrs:
                direction = d
        mid = next((a[6:] for a in attrs if a.startswith("a=mid:")), None)
        codecs = tuple(a.split(" ", 1)[1].split("/", 1)[0].upper()
                       for a in attrs if a.startswith("a=rtpmap:") and " " in a)
        media.append(Media(kind, mid, direction, codecs))
    if not media:
        raise SdpError("bad_sdp", "the offer has no audio or video section")
    for need in ("a=ice-ufrag", "a=ice-pwd", "a=fingerprint"):
        if need not in session_has and not any(ln.startswith(need) for ln in session):
            raise SdpError("bad_sdp", f"the offer has no {need[2:]}")
    wanted = ("sendonly", "sendrecv") if sending else ("recvonly", "sendrecv")
    if not any(m.direction in wanted for m in media):
        role = "send (WHIP publishes)" if sending else "receive (WHEP plays)"
        raise SdpError("bad_sdp", f"no media section of the offer can {role}")
    return Offer(text, tuple(media))


def parse_fragment(text: str) -> Fragment:
    """A trickle-ice-sdpfrag: the ICE credentials it names and its candidates per mid."""
    lines = _lines(text, "bad_sdpfrag")
    ufrag = pwd = None
    mid: str | None = None
    candidates = []
    end = False
    for ln in lines:
        if ln.startswith("a=ice-ufrag:"):
            ufrag = ln.split(":", 1)[1]
        elif ln.startswith("a=ice-pwd:"):
            pwd = ln.split(":", 1)[1]
        elif ln.startswith("a=mid:"):
            mid = ln.split(":", 1)[1]
        elif ln.startswith("a=candidate:"):
            candidates.append(Candidate(mid, ln[2:]))
        elif ln == "a=end-of-candidates":
            end = True
    if not candidates and not end and ufrag is None:
        raise SdpError("bad_sdpfrag", "the fragment has no candidate and no ICE credentials")
    return Fragment(ufrag, pwd, tuple(candidates), end)
