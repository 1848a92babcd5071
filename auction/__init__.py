"""The pure core of live bidding: lot terms, phases, commands and events.

No I/O, no clock, no randomness: commands carry their time (``at``, ms) and the
paddle seed. See :class:`auction.lot.Lot` for the entry point.
"""

from .commands import (
    ChangeIncrement,
    Command,
    Freeze,
    OpenLot,
    PlaceBid,
    QualifyBidder,
    Resume,
    SetReserve,
    Takeover,
    Tick,
)
from .errors import CODES, AuctionError, InvariantBroken, Refused
from .events import (
    EVENT_TYPES,
    BidAccepted,
    BidderQualified,
    Capped,
    Closed,
    Event,
    Frozen,
    IncrementChanged,
    LotOpened,
    PhaseChanged,
    ReserveSet,
    Resumed,
    TakenOver,
)
from .lot import Decision, Lot
from .phases import Phase, Trigger
from .presets import PRESETS, preset, rules
from .terms import DAY, HOUR, MAX_AMOUNT, MINUTE, CapMode, Eligibility, FinalMode, Kind, LotTerms

__all__ = [
    "CODES", "DAY", "EVENT_TYPES", "HOUR", "MAX_AMOUNT", "MINUTE", "PRESETS", "AuctionError",
    "BidAccepted", "BidderQualified", "CapMode", "Capped", "ChangeIncrement", "Closed",
    "Command", "Decision", "Eligibility", "Event", "FinalMode", "Freeze", "Frozen",
    "IncrementChanged", "InvariantBroken", "Kind", "Lot", "LotOpened", "LotTerms", "OpenLot",
    "Phase", "PhaseChanged", "PlaceBid", "QualifyBidder", "Refused", "ReserveSet", "Resume",
    "Resumed", "SetReserve", "TakenOver", "Takeover", "Tick", "Trigger", "preset", "rules",
]
