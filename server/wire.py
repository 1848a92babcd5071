"""Commands and answers as bytes, for forwarding them between processes.

Only the commands a client or staff member can send are forwarded; lots are opened,
ticked and taken over by their owner itself.
"""

from __future__ import annotations

from typing import Any

import msgspec

from auction import (
    EVENT_TYPES,
    ChangeIncrement,
    Command,
    Freeze,
    PlaceBid,
    QualifyBidder,
    Refused,
    Resume,
    SetReserve,
)

from .errors import ServerError
from .sequencer import Answer

FORWARDED: dict[str, type[Command]] = {
    cls.__name__: cls for cls in (PlaceBid, QualifyBidder, SetReserve, ChangeIncrement, Freeze,
                                  Resume)
}


def encode_command(command: Command) -> dict[str, Any]:
    name = type(command).__name__
    if name not in FORWARDED:
        raise ValueError(f"{name} is not forwarded between processes")
    body: dict[str, Any] = msgspec.to_builtins(command)
    return {"type": name, **body}


def decode_command(data: dict[str, Any]) -> Command:
    """The command in ``data``; ``ValueError`` if it is not one that may be forwarded."""
    kind = FORWARDED.get(str(data.get("type")))
    if kind is None:
        raise ValueError(f"cannot forward {data.get('type')!r}")
    fields = {k: v for k, v in data.items() if k != "type"}
    try:
        command: Command = msgspec.convert(fields, kind)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None
    return command


def encode_answer(outcome: Answer | ServerError) -> dict[str, Any]:
    """``{"error": ...}`` when nothing was decided (``unavailable``), else ``{"answer": ...}``."""
    if isinstance(outcome, ServerError):
        return {"error": _refusal(outcome)}
    answer: dict[str, Any] = {}
    if outcome.event is not None:
        answer["event"] = [outcome.event.KIND, msgspec.to_builtins(outcome.event)]
    if outcome.refusal is not None:
        answer["refusal"] = _refusal(outcome.refusal)
    if outcome.ack is not None:
        answer["ack"] = list(outcome.ack)
    return {"answer": answer}


def decode_answer(data: dict[str, Any]) -> Answer | ServerError:
    if "error" in data:
        error = _unrefusal(data["error"])
        return error if isinstance(error, ServerError) else ServerError("unavailable")
    answer = data["answer"]
    event = None
    if answer.get("event"):
        kind, body = answer["event"]
        event = msgspec.convert(body, EVENT_TYPES[kind])
    refusal = _unrefusal(answer["refusal"]) if answer.get("refusal") else None
    ack = answer.get("ack")
    return Answer(event, refusal, (ack[0], ack[1], ack[2], ack[3]) if ack else None)


def _refusal(exc: Refused | ServerError) -> dict[str, Any]:
    return {"code": exc.code, "message": exc.message, "details": exc.details,
            "server": isinstance(exc, ServerError)}


def _unrefusal(data: dict[str, Any]) -> Refused | ServerError:
    cls = ServerError if data.get("server") else Refused
    return cls(data["code"], data.get("message"), **(data.get("details") or {}))
