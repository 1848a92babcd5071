"""Refusals and broken invariants of the bidding core.

Two kinds of failure, kept apart on purpose::

    AuctionError
     +-- Refused            the caller asked for something the rules do not allow;
     |                      carries a stable ``code`` and changes nothing
     +-- InvariantBroken    the core's own bookkeeping is wrong (a bug), e.g. an
                            event applied out of order during replay

``Refused`` is normal traffic: a bid below the increment, a bidder who is not
qualified. ``InvariantBroken`` must never happen; the server treats it as fatal
for the lot and rebuilds the lot from its stored events.
"""

from __future__ import annotations

from typing import Final

# Stable refusal codes. Clients switch on these strings; never rename one.
TOO_LOW: Final = "too_low"
NOT_MULTIPLE: Final = "not_multiple"
ABOVE_CAP: Final = "above_cap"
ALREADY_LEADING: Final = "already_leading"
NOT_QUALIFIED: Final = "not_qualified"
NOT_ELIGIBLE: Final = "not_eligible"
PHASE_CLOSED: Final = "phase_closed"
FROZEN: Final = "frozen"
NOT_FROZEN: Final = "not_frozen"
ALREADY_QUALIFIED: Final = "already_qualified"
RESERVE_LOCKED: Final = "reserve_locked"
INVALID_AMOUNT: Final = "invalid_amount"
INVALID_TERMS: Final = "invalid_terms"
LOT_EXISTS: Final = "lot_exists"
LOT_NOT_OPEN: Final = "lot_not_open"
PADDLES_EXHAUSTED: Final = "paddles_exhausted"
INVALID_REQUEST: Final = "invalid_request"

#: Every refusal code the core can produce, with the English message template.
CODES: Final[dict[str, str]] = {
    TOO_LOW: "the amount is below the lowest acceptable price",
    NOT_MULTIPLE: "the raise must be a whole multiple of the increment",
    ABOVE_CAP: "the amount is above the price cap",
    ALREADY_LEADING: "you already hold the highest bid",
    NOT_QUALIFIED: "the bidder is not qualified for this lot",
    NOT_ELIGIBLE: "the bidder may not bid in this phase",
    PHASE_CLOSED: "this phase does not accept the request",
    FROZEN: "the lot is frozen",
    NOT_FROZEN: "the lot is not frozen",
    ALREADY_QUALIFIED: "the bidder is already qualified",
    RESERVE_LOCKED: "the reserve can no longer be set",
    INVALID_AMOUNT: "the amount is not acceptable",
    INVALID_TERMS: "the lot terms are not valid",
    LOT_EXISTS: "the lot has already been opened",
    LOT_NOT_OPEN: "the lot has not been opened",
    PADDLES_EXHAUSTED: "no paddle number is left for this lot",
    INVALID_REQUEST: "the request is not valid",
}


class AuctionError(Exception):
    """Base class of every error raised by :mod:`auction`."""


class Refused(AuctionError):
    """A command the rules do not allow. Nothing was changed.

    ``code`` is one of :data:`CODES`; ``message`` is a human sentence (English;
    clients translate by ``code``); ``details`` holds machine-readable figures
    such as the lowest acceptable amount.
    """

    def __init__(self, code: str, message: str | None = None, **details: int | str | None) -> None:
        if code not in CODES:
            raise InvariantBroken(f"unknown refusal code {code!r}")
        self.code = code
        self.message = message or CODES[code]
        self.details = details
        super().__init__(f"{code}: {self.message}")


class InvariantBroken(AuctionError):
    """The core's state or an event stream is inconsistent. This is a bug."""
