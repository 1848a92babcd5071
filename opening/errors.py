"""Refusals and broken invariants of the tender core.

Two kinds of failure, kept apart on purpose::

    TenderError
     +-- Refused            the caller asked for something the rules do not allow;
     |                      carries a stable ``code`` and changes nothing
     +-- InvariantBroken    the core's own bookkeeping is wrong (a bug), e.g. an
                            event applied out of order during replay

Invalid :class:`opening.terms.TenderTerms` raise ``ValueError`` when built; the
tender refuses them with ``invalid_terms`` (see :func:`opening.terms.checked_terms`).
"""

from __future__ import annotations

from typing import Final

# Stable refusal codes. Clients switch on these strings; never rename one.
INVALID_REQUEST: Final = "invalid_request"
INVALID_TERMS: Final = "invalid_terms"
TENDER_EXISTS: Final = "tender_exists"
NO_TENDER: Final = "no_tender"
TENDER_FINISHED: Final = "tender_finished"
WRONG_STATE: Final = "wrong_state"
ALREADY_REGISTERED: Final = "already_registered"
NOT_REGISTERED: Final = "not_registered"
NOT_ACCEPTING: Final = "not_accepting"
DEADLINE_PASSED: Final = "deadline_passed"
NO_BID: Final = "no_bid"
ALREADY_CHECKED_IN: Final = "already_checked_in"
CHECK_IN_NOT_OPEN: Final = "check_in_not_open"
CHECK_IN_CLOSED: Final = "check_in_closed"
TOO_EARLY: Final = "too_early"
NOT_DECRYPTING: Final = "not_decrypting"
PAUSED: Final = "paused"
NOT_PAUSED: Final = "not_paused"
ALREADY_DECRYPTED: Final = "already_decrypted"
KEY_NOT_RELEASED: Final = "key_not_released"
OBJECTION_WINDOW_CLOSED: Final = "objection_window_closed"
OBJECTION_WINDOW_OPEN: Final = "objection_window_open"
OBJECTION_EXISTS: Final = "objection_exists"
UNKNOWN_OBJECTION: Final = "unknown_objection"
ALREADY_ANSWERED: Final = "already_answered"
OBJECTIONS_PENDING: Final = "objections_pending"
ALREADY_CONFIRMED: Final = "already_confirmed"

#: Every refusal code the core can produce, with the English message template.
CODES: Final[dict[str, str]] = {
    INVALID_REQUEST: "the request is not valid",
    INVALID_TERMS: "the tender terms are not valid",
    TENDER_EXISTS: "the tender has already been created",
    NO_TENDER: "the tender has not been created",
    TENDER_FINISHED: "the tender is closed or has failed",
    WRONG_STATE: "the tender's state does not allow this",
    ALREADY_REGISTERED: "the bidder is already registered",
    NOT_REGISTERED: "the bidder is not registered for this tender",
    NOT_ACCEPTING: "the tender is not accepting bids",
    DEADLINE_PASSED: "the submission deadline has passed",
    NO_BID: "the bidder has no bid in this tender",
    ALREADY_CHECKED_IN: "the bidder has already checked in",
    CHECK_IN_NOT_OPEN: "check-in has not opened yet",
    CHECK_IN_CLOSED: "check-in has closed",
    TOO_EARLY: "the deadline has not passed yet",
    NOT_DECRYPTING: "the tender is not in its decryption window",
    PAUSED: "the opening is paused",
    NOT_PAUSED: "the opening is not paused",
    ALREADY_DECRYPTED: "the bid's key has already been released",
    KEY_NOT_RELEASED: "the bid's key has not been released",
    OBJECTION_WINDOW_CLOSED: "the objection window has closed",
    OBJECTION_WINDOW_OPEN: "the objection window has not ended yet",
    OBJECTION_EXISTS: "an objection with this id already exists",
    UNKNOWN_OBJECTION: "there is no objection with this id",
    ALREADY_ANSWERED: "the objection has already been answered",
    OBJECTIONS_PENDING: "every objection must be answered first",
    ALREADY_CONFIRMED: "the bidder has already confirmed the record",
}


class TenderError(Exception):
    """Base class of every error raised by the tender core."""


class Refused(TenderError):
    """A command the rules do not allow. Nothing was changed.

    ``code`` is one of :data:`CODES`; ``message`` is a human sentence (English;
    clients translate by ``code``); ``details`` holds machine-readable figures.
    """

    def __init__(self, code: str, message: str | None = None, **details: int | str | None) -> None:
        if code not in CODES:
            raise InvariantBroken(f"unknown refusal code {code!r}")
        self.code = code
        self.message = message or CODES[code]
        self.details = details
        super().__init__(f"{code}: {self.message}")


class InvariantBroken(TenderError):
    """The core's state or an event stream is inconsistent. This is a bug."""
