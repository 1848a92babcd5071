"""The pure core of no-meeting bid openings: tenders, sealed envelopes, receipts.

No I/O, no clock, no randomness of its own: commands carry their time and callers pass
random bytes in. May use ``cryptography``. See :class:`opening.tender.Tender` for the
tender state machine's entry point.
"""

from .commands import (
    Answer,
    CheckIn,
    Close,
    Command,
    Confirm,
    CreateTender,
    DeclareFailed,
    Object,
    OpenObjections,
    Pause,
    Publish,
    RecordDecryption,
    RegisterBidder,
    ReleaseKey,
    Resume,
    Start,
    SubmitBid,
    Summary,
    Tick,
    WithdrawBid,
)
from .errors import CODES, InvariantBroken, Refused, TenderError
from .events import (
    DECLARED,
    EVENT_TYPES,
    TOO_FEW_BIDS,
    Announced,
    BidDecrypted,
    BidderRegistered,
    BidSubmitted,
    BidWithdrawn,
    CheckedIn,
    Closed,
    DeadlinePassed,
    DecryptionFailed,
    Event,
    Failed,
    KeyReleased,
    ObjectionAnswered,
    ObjectionRaised,
    ObjectionsOpened,
    Paused,
    Published,
    RecordConfirmed,
    Resumed,
    Started,
    TenderCreated,
    WindowEnded,
)
from .states import TRANSITIONS, Outcome, TenderState, Trigger
from .tender import Decision, Tender
from .terms import DAY, HOUR, MINUTE, TenderTerms, checked_terms, price_warning, to_fen

__all__ = [
    "CODES", "DAY", "DECLARED", "EVENT_TYPES", "HOUR", "MINUTE", "TOO_FEW_BIDS", "TRANSITIONS",
    "Announced", "Answer", "BidDecrypted", "BidSubmitted", "BidWithdrawn", "BidderRegistered",
    "CheckIn", "CheckedIn", "Close", "Closed", "Command", "Confirm", "CreateTender",
    "DeadlinePassed", "Decision", "DeclareFailed", "DecryptionFailed", "Event", "Failed",
    "InvariantBroken", "KeyReleased", "Object", "ObjectionAnswered", "ObjectionRaised",
    "ObjectionsOpened", "OpenObjections", "Outcome", "Pause", "Paused", "Publish", "Published",
    "RecordConfirmed", "RecordDecryption", "Refused", "RegisterBidder", "ReleaseKey", "Resume",
    "Resumed", "Start", "Started", "SubmitBid", "Summary", "Tender", "TenderCreated",
    "TenderError", "TenderState", "TenderTerms", "Tick", "Trigger", "WindowEnded",
    "WithdrawBid", "checked_terms", "price_warning", "to_fen",
]
