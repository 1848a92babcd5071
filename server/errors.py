"""Every refusal the server sends, with its HTTP status: the one place codes meet transports.

Domain refusals (:class:`auction.Refused`) and server refusals (:class:`ServerError`)
share one shape on every transport::

    HTTP       {"error": {"code": "too_low", "message": "...", ...details}}   status below
    websocket  {"type": "error" | "reject", "code": "too_low", "message": "...", ...}
"""

from __future__ import annotations

from typing import Any, Final

from auction import CODES as AUCTION_CODES
from auction import Refused
from opening import CODES as OPENING_CODES
from opening import Refused as TenderRefused
from opening.envelope import CODES as ENVELOPE_CODES

# Codes of the server itself (protocol, auth, transport); auction codes are in auction.errors.
SERVER_CODES: Final[dict[str, str]] = {
    "bad_json": "the frame is not valid JSON",
    "bad_message": "the message does not have the expected fields",
    "unknown_type": "unknown message type",
    "frame_too_large": "the frame is too large",
    "unauthorized": "a token is required",
    "bad_token": "the token is not valid",
    "token_expired": "the token has expired",
    "forbidden": "this credential may not do that",
    "unknown_lot": "no such lot",
    "not_found": "no such resource",
    "rate_limited": "too many messages; slow down",
    "unavailable": "the service is temporarily unavailable; retry with the same bid_id",
    "session_replaced": "this bidder signed in elsewhere; this session is closed",
    "duplicate_bid_id": "this bid_id was already used for a different bid",
    "already_greeted": "hello was already received on this connection",
    "wrong_owner": "this server does not serve the lot; the command was not run",
    "unknown_tender": "no such tender",
    "bad_public_key": "the public key is not a P-256 point",
    "unsupported_media_type": "the body has the wrong Content-Type",
    "bad_sdp": "the body is not a usable SDP offer",
    "bad_sdpfrag": "the body is not a usable trickle-ice-sdpfrag",
    "unknown_session": "no such lot or tender to stream",
    "unknown_resource": "no such WHIP or WHEP resource",
    "already_publishing": "this session already has a publisher",
    "relay_full": "this relay has no room for another viewer; retry later",
    "codec_mismatch": "no codec of the offer can be served",
    "ice_restart_unsupported": "ICE restarts are not supported; start a new session",
    "precondition_failed": "If-Match does not match the resource's ETag",
    "already_recording": "this session is being recorded already",
    "not_recording": "this session is not being recorded",
}

CODES: Final = {**AUCTION_CODES, **OPENING_CODES, **ENVELOPE_CODES, **SERVER_CODES}

_STATUS: Final[dict[str, int]] = {
    "bad_json": 400, "bad_message": 422, "unknown_type": 422, "frame_too_large": 413,
    "unauthorized": 401, "bad_token": 401, "token_expired": 401, "forbidden": 403,
    "unknown_lot": 404, "not_found": 404, "rate_limited": 429, "unavailable": 503,
    "wrong_owner": 503, "unknown_tender": 404, "bad_public_key": 422,
    "not_an_envelope": 422, "bad_header": 422, "bad_length": 422, "wrong_key": 422,
    "wrong_tender": 422, "wrong_bidder": 422, "wrong_recipient": 422, "bad_chunk": 422,
    "bad_summary": 422, "bad_id": 422, "too_large": 413, "source_changed": 422,
    "bad_key_file": 422, "wrong_password": 422, "weak_password": 422, "bad_receipt": 422,
    "bad_signature": 422,
    "invalid_amount": 422, "invalid_terms": 422, "invalid_request": 422,
    "unsupported_media_type": 415, "bad_sdp": 400, "bad_sdpfrag": 400, "unknown_session": 404,
    "unknown_resource": 404, "already_publishing": 409, "relay_full": 503,
    "codec_mismatch": 422, "ice_restart_unsupported": 422, "precondition_failed": 412,
    "already_recording": 409, "not_recording": 409,
}


class ServerError(Exception):
    """A refusal decided by the server (not by the auction rules). Nothing was changed."""

    def __init__(self, code: str, message: str | None = None, **details: Any) -> None:
        if code not in CODES:
            raise ValueError(f"unknown error code {code!r}")
        self.code = code
        self.message = message or CODES[code]
        self.details = details
        super().__init__(f"{code}: {self.message}")


def http_status(code: str) -> int:
    """HTTP status for ``code``: rule refusals are conflicts with the lot's state (409)."""
    return _STATUS.get(code, 409)


def describe(exc: Refused | TenderRefused | ServerError) -> dict[str, Any]:
    """``{"code", "message", ...details}`` for either kind of refusal."""
    return {"code": exc.code, "message": exc.message, **exc.details}
