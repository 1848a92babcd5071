"""Commands: what staff, bidders and the clock ask a lot to do.

Every command carries ``at``, the server time in milliseconds at which it was
received; the core never reads a clock. A lot handles commands strictly in the
order given and treats time as never going backwards (an ``at`` older than the
last event is read as the time of that event).
"""

from __future__ import annotations

from dataclasses import dataclass

from .terms import LotTerms


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenLot(Command):
    """Create the lot. ``paddle_seed`` (hex, drawn at random by the server) fixes the paddles."""

    lot_id: str
    title: str
    terms: LotTerms
    paddle_seed: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QualifyBidder(Command):
    """Deposit confirmed (by staff or a bank callback; ``deposit_ref``): the bidder may bid."""

    bidder: str
    deposit_ref: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SetReserve(Command):
    amount: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeIncrement(Command):
    """Change the increment of the listing (``final=False``) or of the phase after it."""

    final: bool
    amount: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaceBid(Command):
    bidder: str
    amount: int
    bid_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick(Command):
    """Time passed: apply whatever deadlines fell due at or before ``at``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Freeze(Command):
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Resume(Command):
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Takeover(Command):
    """A new owner serves the lot after an outage that began at ``down_since``.

    Time stood still during the outage, so the freeze rule applies: the listing is
    extended by the outage and a countdown restarts in full (after the preparation
    where the preset has one). ``owner`` names the process taking over, for the record.
    """

    owner: str
    down_since: int
