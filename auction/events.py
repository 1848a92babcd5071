"""Events: the facts a lot records, in order. State is rebuilt by applying them.

Every event has ``seq`` (gapless per lot, starting at 1), ``pseq`` (gapless count
of public events, ``None`` for private ones) and ``at`` (server time, ms).

Each class has a ``KIND`` (the stored and wire name) and :meth:`Event.public`,
the only fields anyone without a staff credential may see: never a bidder's
identity, a deposit reference, the paddle seed or the reserve. Events whose
``public()`` is ``None`` are private and take no ``pseq``: the public stream
must not even reveal how many bidders registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .phases import Phase, Trigger
from .terms import LotTerms

Public = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    KIND: ClassVar[str] = ""
    seq: int
    pseq: int | None
    at: int

    def public(self) -> Public | None:
        """The public form, or ``None`` for an event only staff may see."""
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class LotOpened(Event):
    KIND: ClassVar[str] = "lot_opened"
    lot_id: str
    title: str
    terms: LotTerms
    paddle_seed: str

    def public(self) -> Public:
        terms = {name: getattr(self.terms, name) for name in self.terms.__dataclass_fields__}
        return {"kind": self.KIND, "at": self.at, "lot_id": self.lot_id, "title": self.title,
                "terms": terms}


@dataclass(frozen=True, slots=True, kw_only=True)
class BidderQualified(Event):
    KIND: ClassVar[str] = "bidder_qualified"
    bidder: str
    paddle: int
    deposit_ref: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReserveSet(Event):
    KIND: ClassVar[str] = "reserve_set"
    amount: int


@dataclass(frozen=True, slots=True, kw_only=True)
class IncrementChanged(Event):
    KIND: ClassVar[str] = "increment_changed"
    final: bool
    amount: int
    reason: str

    def public(self) -> Public:
        return {"kind": self.KIND, "at": self.at, "final": self.final, "amount": self.amount,
                "reason": self.reason}


@dataclass(frozen=True, slots=True, kw_only=True)
class BidAccepted(Event):
    """A price bid. ``ends_at`` is the countdown's new end when the bid restarted it."""

    KIND: ClassVar[str] = "bid"
    bidder: str
    paddle: int
    amount: int
    bid_id: str
    ends_at: int | None

    def public(self) -> Public:
        return {"kind": self.KIND, "at": self.at, "paddle": self.paddle, "amount": self.amount,
                "ends_at": self.ends_at}


@dataclass(frozen=True, slots=True, kw_only=True)
class PhaseChanged(Event):
    """The lot moved to ``phase``; ``ends_at`` is the phase's scheduled end, if it has one."""

    KIND: ClassVar[str] = "phase_changed"
    phase: Phase
    trigger: Trigger
    ends_at: int | None

    def public(self) -> Public:
        return {"kind": self.KIND, "at": self.at, "phase": self.phase, "trigger": self.trigger,
                "ends_at": self.ends_at}


@dataclass(frozen=True, slots=True, kw_only=True)
class Frozen(Event):
    KIND: ClassVar[str] = "frozen"
    reason: str

    def public(self) -> Public:
        return {"kind": self.KIND, "at": self.at, "reason": self.reason}


@dataclass(frozen=True, slots=True, kw_only=True)
class Resumed(Event):
    """Bidding resumed after ``frozen_for`` ms. The new timings follow the freeze rule."""

    KIND: ClassVar[str] = "resumed"
    reason: str
    frozen_for: int
    phase: Phase
    ends_at: int | None
    listing_end: int

    def public(self) -> Public:
        return {"kind": self.KIND, "at": self.at, "reason": self.reason,
                "frozen_for": self.frozen_for, "phase": self.phase, "ends_at": self.ends_at,
                "listing_end": self.listing_end}


@dataclass(frozen=True, slots=True, kw_only=True)
class TakenOver(Event):
    """Another process (or the restarted one) serves the lot after an outage of ``down_for``
    ms; the timings follow the freeze rule, unless staff froze the lot (then nothing moves
    until they resume it)."""

    KIND: ClassVar[str] = "taken_over"
    owner: str
    down_for: int
    phase: Phase
    ends_at: int | None
    listing_end: int

    def public(self) -> Public:
        return {"kind": self.KIND, "at": self.at, "down_for": self.down_for,
                "phase": self.phase, "ends_at": self.ends_at, "listing_end": self.listing_end}


@dataclass(frozen=True, slots=True, kw_only=True)
class Closed(Event):
    """The sale ended: ``phase`` is ``sold`` or ``unsold``; ``reason`` explains an unsold lot.

    The winner's identity (``bidder``) is published with the result by the server,
    not in the event stream: public events carry the paddle only.
    """

    KIND: ClassVar[str] = "closed"
    phase: Phase
    trigger: Trigger
    bidder: str | None
    paddle: int | None
    price: int | None
    reason: str | None

    def public(self) -> Public:
        return {"kind": self.KIND, "at": self.at, "outcome": self.phase, "paddle": self.paddle,
                "price": self.price, "reason": self.reason}


@dataclass(frozen=True, slots=True, kw_only=True)
class Capped(Event):
    """A bid reached the price cap: price bids stop and the cap follow-up takes over."""

    KIND: ClassVar[str] = "capped"
    price: int
    paddle: int
    bidder: str

    def public(self) -> Public:
        return {"kind": self.KIND, "at": self.at, "price": self.price, "paddle": self.paddle}


#: Event classes by ``KIND``, for decoding stored events.
EVENT_TYPES: dict[str, type[Event]] = {
    cls.KIND: cls
    for cls in (LotOpened, BidderQualified, ReserveSet, IncrementChanged, BidAccepted,
                PhaseChanged, Frozen, Resumed, TakenOver, Closed, Capped)
}

#: Reasons an unsold lot gives publicly.
NO_BIDS = "no_bids"
RESERVE_NOT_MET = "reserve_not_met"
