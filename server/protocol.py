"""Wire protocol v1 (websocket ``/ws``, subprotocol ``bidhall.v1``): client messages.

Every client frame is a JSON object with ``type``; :func:`decode` turns a frame into
one of the message classes below or raises :class:`~server.errors.ServerError` with
a stable code (``bad_json``, ``bad_message``, ``unknown_type``, ``invalid_amount``,
``frame_too_large``). Unknown extra fields are ignored so newer clients can talk to
older servers. Server messages are plain dicts built in :mod:`server.ws`.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

import msgspec
from msgspec import Meta

from auction import MAX_AMOUNT

from .errors import ServerError

PROTOCOL: Final = 1
SUBPROTOCOL: Final = "bidhall.v1"
#: Largest client frame read, in characters. Real messages are under 300.
MAX_FRAME: Final = 4096

LOT_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
LotId = Annotated[str, Meta(pattern=LOT_ID_PATTERN)]
Amount = Annotated[int, Meta(gt=0, le=MAX_AMOUNT)]
BidId = Annotated[str, Meta(min_length=1, max_length=64)]
Seq = Annotated[int, Meta(ge=0, le=2**53)]


class Hello(msgspec.Struct, tag="hello", tag_field="type"):
    token: Annotated[str, Meta(min_length=1, max_length=2048)]


class Subscribe(msgspec.Struct, tag="subscribe", tag_field="type"):
    lot: LotId
    since: Seq | None = None


class Unsubscribe(msgspec.Struct, tag="unsubscribe", tag_field="type"):
    lot: LotId


class Bid(msgspec.Struct, tag="bid", tag_field="type"):
    lot: LotId
    amount: Amount
    bid_id: BidId


class Ping(msgspec.Struct, tag="ping", tag_field="type"):
    t: float | None = None


Message = Hello | Subscribe | Unsubscribe | Bid | Ping
TYPES: Final = ("hello", "subscribe", "unsubscribe", "bid", "ping")

_decoder = msgspec.json.Decoder(Message)
_TYPE_ERROR = re.compile(r"Invalid value .* - at `\$\.type`")


def decode(frame: str | bytes) -> Message:
    """One client message from ``frame``, or ``ServerError`` with a stable code."""
    if len(frame) > MAX_FRAME:
        raise ServerError("frame_too_large", f"frames are limited to {MAX_FRAME} characters")
    try:
        message: Message = _decoder.decode(frame)
        return message
    except msgspec.ValidationError as exc:
        text = str(exc)
        if "`$.amount`" in text:
            raise ServerError("invalid_amount",
                              f"amount must be a whole number of yuan from 1 to {MAX_AMOUNT}"
                              ) from None
        if _TYPE_ERROR.search(text):
            raise ServerError("unknown_type", f"type must be one of {', '.join(TYPES)}") from None
        raise ServerError("bad_message", text) from None
    except msgspec.DecodeError as exc:
        raise ServerError("bad_json", str(exc)) from None
