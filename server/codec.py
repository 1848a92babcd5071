"""Events to and from stored rows and wire frames, each encoded once per audience."""

from __future__ import annotations

from typing import Any

import msgspec

from auction import EVENT_TYPES, Event

from .store import EventRow

_encoder = msgspec.json.Encoder()
_decoders = {kind: msgspec.json.Decoder(cls) for kind, cls in EVENT_TYPES.items()}

encode = _encoder.encode


def to_row(event: Event) -> EventRow:
    return EventRow(event.seq, event.pseq, event.at, event.KIND, _encoder.encode(event))


def from_row(row: EventRow) -> Event:
    decoder = _decoders.get(row.kind)
    if decoder is None:
        raise ValueError(f"stored event of unknown kind {row.kind!r} at seq {row.seq}")
    return decoder.decode(row.body)


def frame(message: Any) -> str:
    """One websocket text frame."""
    return _encoder.encode(message).decode()


def public_frame(lot_id: str, event: Event) -> str | None:
    """The ``event`` frame the public sees (``seq`` = public seq), or ``None`` if private."""
    body = event.public()
    if body is None:
        return None
    return frame({"type": "event", "lot": lot_id, "seq": event.pseq, **body})


def staff_frame(lot_id: str, event: Event) -> str:
    """The full ``event`` frame for staff (``seq`` = the lot's seq)."""
    full: dict[str, Any] = msgspec.to_builtins(event)
    full.pop("pseq", None)
    return frame({"type": "event", "lot": lot_id, "kind": event.KIND, **full})
