"""One lot's state, driven by commands and rebuilt from events.

    lot = Lot()
    decision = lot.handle(PlaceBid(at=now, bidder="b1", amount=1_200_000, bid_id="..."))
    decision.events      # what happened, in order (time transitions due first, then the bid)
    decision.refusal     # a Refused when the command itself was not allowed
    same = Lot.replay(all_events)          # same state, every time

``handle`` never raises ``Refused``: time keeps moving even when a command is
refused (a bid that arrives after the countdown ended closes the lot, then is
refused), so the decision carries both. All state changes go through
:meth:`Lot.apply`, the same path replay takes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import errors as E
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
from .errors import InvariantBroken, Refused
from .events import (
    NO_BIDS,
    RESERVE_NOT_MET,
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
from .paddles import paddle_for
from .phases import BIDDING, COUNTDOWN, FINAL, REGISTRATION, RUNNING, Phase, Trigger, check
from .terms import MAX_AMOUNT, Eligibility, FinalMode, LotTerms

#: Bids kept in a public snapshot; the full history is served separately.
SNAPSHOT_HISTORY = 200
_MAX_TEXT = 500


@dataclass(frozen=True, slots=True)
class Decision:
    """The result of one command: events to store (maybe none) and the command's answer.

    ``primary`` is the event that answers the command itself (the accepted bid, the
    qualification, ...); other events in ``events`` are time transitions or
    consequences such as reaching the cap.
    """

    events: tuple[Event, ...]
    primary: Event | None = None
    refusal: Refused | None = None


@dataclass(slots=True)
class Bidder:
    bidder: str
    paddle: int
    deposit_ref: str
    last_listing_bid_at: int | None = None


@dataclass(slots=True)
class _Timing:
    listing_end: int = 0
    ends_at: int | None = None


class Lot:
    """A lot: terms, bidders, the price and the phase. See the module docstring."""

    def __init__(self) -> None:
        self.seq = 0
        self.pseq = 0
        self.clock = 0
        self.lot_id = ""
        self.title = ""
        self.paddle_seed = ""
        self.terms: LotTerms | None = None
        self.phase: Phase | None = None
        self.timing = _Timing()
        self.increment = {False: 0, True: 0}
        self.reserve: int | None = None
        self.bidders: dict[str, Bidder] = {}
        self.paddles: set[int] = set()
        self.price: int | None = None
        self.leader: str | None = None
        self.history: list[tuple[int, int, int]] = []  # (at, paddle, amount)
        self.eligible: frozenset[str] | None = None  # None: every qualified bidder
        self.frozen_since: int | None = None
        self.frozen_reason = ""
        self.closed: Closed | Capped | None = None
        self._out: list[Event] = []

    # ------------------------------------------------------------------ replay
    @classmethod
    def replay(cls, events: Iterable[Event]) -> Lot:
        lot = cls()
        for event in events:
            lot.apply(event)
        return lot

    # ------------------------------------------------------------------ commands
    def handle(self, command: Command) -> Decision:
        """Decide ``command`` at its time; apply and return the resulting events."""
        self._out = []
        now = max(command.at, self.clock)
        primary: Event | None = None
        try:
            if isinstance(command, OpenLot):
                primary = self._open(command, now)
            elif isinstance(command, Takeover):
                if self.terms is None:
                    raise Refused(E.LOT_NOT_OPEN)
                # Deadlines that fell due before the outage began still count; then time
                # stood still until now.
                self._advance(min(command.down_since, now))
                primary = self._takeover(command, now)
                self._advance(now)
            else:
                if self.terms is None:
                    raise Refused(E.LOT_NOT_OPEN)
                self._advance(now)
                primary = self._dispatch(command, now)
                self._advance(now)
        except Refused as refusal:
            return Decision(tuple(self._out), None, refusal)
        return Decision(tuple(self._out), primary)

    def _dispatch(self, command: Command, now: int) -> Event | None:
        if isinstance(command, PlaceBid):
            return self._bid(command, now)
        if isinstance(command, Tick):
            return None
        if isinstance(command, QualifyBidder):
            return self._qualify(command, now)
        if isinstance(command, SetReserve):
            return self._set_reserve(command, now)
        if isinstance(command, ChangeIncrement):
            return self._change_increment(command, now)
        if isinstance(command, Freeze):
            return self._freeze(command, now)
        if isinstance(command, Resume):
            return self._resume(command, now)
        raise InvariantBroken(f"unknown command {type(command).__name__}")

    def _open(self, c: OpenLot, now: int) -> Event:
        if self.terms is not None:
            raise Refused(E.LOT_EXISTS)
        _text(c.lot_id, "lot_id", 64)
        _text(c.title, "title", 200)
        if not isinstance(c.terms, LotTerms):
            raise Refused(E.INVALID_TERMS)
        event = self._emit(LotOpened, now, lot_id=c.lot_id, title=c.title, terms=c.terms,
                           paddle_seed=c.paddle_seed)
        self._advance(now)
        return event

    def _qualify(self, c: QualifyBidder, now: int) -> Event:
        if self.phase not in REGISTRATION:
            raise Refused(E.PHASE_CLOSED, "registration is closed")
        _text(c.bidder, "bidder", 128)
        _text(c.deposit_ref, "deposit_ref", 128)
        if c.bidder in self.bidders:
            raise Refused(E.ALREADY_QUALIFIED)
        try:
            paddle = paddle_for(self.paddle_seed, len(self.bidders), self.paddles)
        except ValueError:
            raise Refused(E.PADDLES_EXHAUSTED) from None
        return self._emit(BidderQualified, now, bidder=c.bidder, paddle=paddle,
                          deposit_ref=c.deposit_ref)

    def _set_reserve(self, c: SetReserve, now: int) -> Event:
        terms = self._terms
        if self.phase not in REGISTRATION or now >= self.timing.listing_end - terms.reserve_lock:
            raise Refused(E.RESERVE_LOCKED)
        if not _amount_ok(c.amount) or c.amount < terms.start_price or (
            terms.price_cap is not None and c.amount > terms.price_cap
        ):
            raise Refused(E.INVALID_AMOUNT,
                          "the reserve must lie between the start price and the cap")
        return self._emit(ReserveSet, now, amount=c.amount)

    def _change_increment(self, c: ChangeIncrement, now: int) -> Event:
        if self.phase in FINAL:
            raise Refused(E.PHASE_CLOSED)
        if not _amount_ok(c.amount):
            raise Refused(E.INVALID_AMOUNT)
        _text(c.reason, "reason", _MAX_TEXT)
        return self._emit(IncrementChanged, now, final=bool(c.final), amount=c.amount,
                          reason=c.reason)

    def _freeze(self, c: Freeze, now: int) -> Event:
        if self.frozen_since is not None:
            raise Refused(E.FROZEN, "the lot is already frozen")
        if self.phase not in RUNNING:
            raise Refused(E.PHASE_CLOSED, "only a running sale can be frozen")
        _text(c.reason, "reason", _MAX_TEXT)
        return self._emit(Frozen, now, reason=c.reason)

    def _resume(self, c: Resume, now: int) -> Event:
        if self.frozen_since is None:
            raise Refused(E.NOT_FROZEN)
        _text(c.reason, "reason", _MAX_TEXT)
        frozen_for = now - self.frozen_since
        phase, ends_at, listing_end = self._restarted(now, frozen_for)
        return self._emit(Resumed, now, reason=c.reason, frozen_for=frozen_for, phase=phase,
                          ends_at=ends_at, listing_end=listing_end)

    def _takeover(self, c: Takeover, now: int) -> Event:
        if self.phase in FINAL:
            raise Refused(E.PHASE_CLOSED, "a decided lot needs no takeover")
        _text(c.owner, "owner", 128)
        down_for = max(0, now - max(c.down_since, self.clock))
        phase, ends_at, listing_end = (
            (self.phase, self.timing.ends_at, self.timing.listing_end)
            if self.frozen_since is not None  # staff froze it: timings move when they resume
            else self._restarted(now, down_for))
        assert phase is not None
        return self._emit(TakenOver, now, owner=c.owner, down_for=down_for, phase=phase,
                          ends_at=ends_at, listing_end=listing_end)

    def _restarted(self, now: int, stood_still: int) -> tuple[Phase, int | None, int]:
        """Timings after the lot stood still for ``stood_still`` ms (the freeze rule): the
        listing is extended by that time; a countdown restarts in full, after the
        preparation where the preset has one."""
        terms = self._terms
        phase = self.phase
        assert phase is not None
        listing_end = self.timing.listing_end
        if phase is Phase.ANNOUNCEMENT:
            return phase, self.timing.ends_at, listing_end
        if phase in (Phase.LISTING, Phase.LISTING_STOPPED):
            listing_end += stood_still
            return phase, listing_end, listing_end
        if phase is Phase.TIMED:
            return phase, now + terms.countdown, listing_end
        if terms.preparation:
            return Phase.PREPARATION, now + terms.preparation, listing_end
        return phase, now + terms.countdown, listing_end

    def _bid(self, c: PlaceBid, now: int) -> Event:
        if self.frozen_since is not None:
            raise Refused(E.FROZEN)
        if self.phase not in BIDDING:
            raise Refused(E.PHASE_CLOSED, f"no price bids in phase {self.phase}")
        bidder = self.bidders.get(c.bidder)
        if bidder is None:
            raise Refused(E.NOT_QUALIFIED)
        if self.eligible is not None and c.bidder not in self.eligible:
            raise Refused(E.NOT_ELIGIBLE, "only bidders with a valid listing bid may bid now")
        if not _amount_ok(c.amount):
            raise Refused(E.INVALID_AMOUNT)
        if self.leader == c.bidder:
            raise Refused(E.ALREADY_LEADING)
        self._check_price(c.amount)
        ends_at = now + self._terms.countdown if self.phase in COUNTDOWN else None
        event = self._emit(BidAccepted, now, bidder=c.bidder, paddle=bidder.paddle,
                           amount=c.amount, bid_id=c.bid_id, ends_at=ends_at)
        if c.amount == self._terms.price_cap:
            self._emit(Capped, now, price=c.amount, paddle=bidder.paddle, bidder=c.bidder)
        return event

    def _check_price(self, amount: int) -> None:
        terms = self._terms
        cap = terms.price_cap
        if cap is not None and amount > cap:
            raise Refused(E.ABOVE_CAP, cap=cap)
        if cap is not None and amount == cap and (self.price is None or amount > self.price):
            return  # reaching the cap is always allowed, whatever the increment
        lowest = self.lowest_acceptable()
        if amount < lowest:
            raise Refused(E.TOO_LOW, f"the lowest acceptable price is {lowest} yuan",
                          minimum=lowest)
        if terms.multiple_rule:
            base = terms.start_price if self.price is None else self.price
            step = self.current_increment()
            if (amount - base) % step:
                raise Refused(E.NOT_MULTIPLE, f"raise in whole multiples of {step} yuan",
                              increment=step, minimum=lowest)

    # ------------------------------------------------------------------ time
    def next_deadline(self) -> int | None:
        """The next time at which a :class:`Tick` would change this lot, or ``None``."""
        due = self._due()
        return None if due is None else due[0]

    def _due(self) -> tuple[int, Trigger] | None:
        if self.frozen_since is not None or self.terms is None:
            return None
        t, phase = self.timing, self.phase
        if phase is Phase.ANNOUNCEMENT:
            return self.terms.listing_start, Trigger.OPEN
        if phase is Phase.LISTING:
            stop = self.terms.stop_before_end
            if stop and len(self._listing_bidders(0)) >= max(self.terms.contest_min_bidders, 1):
                return t.listing_end - stop, Trigger.STOP
            return t.listing_end, Trigger.CONTEST
        if phase is Phase.LISTING_STOPPED:
            return t.listing_end, Trigger.CONTEST
        if phase is Phase.PREPARATION and t.ends_at is not None:
            return t.ends_at, Trigger.START
        if phase in COUNTDOWN and t.ends_at is not None:
            return t.ends_at, Trigger.COUNTDOWN_END
        return None

    def _advance(self, now: int) -> None:
        while (due := self._due()) is not None and due[0] <= now:
            when, trigger = due
            at = max(when, self.clock)
            terms = self._terms
            if trigger is Trigger.OPEN:
                self._emit(PhaseChanged, at, phase=Phase.LISTING, trigger=trigger,
                           ends_at=self.timing.listing_end)
            elif trigger is Trigger.STOP:
                self._emit(PhaseChanged, at, phase=Phase.LISTING_STOPPED, trigger=trigger,
                           ends_at=self.timing.listing_end)
            elif trigger is Trigger.CONTEST and self._contested():
                if terms.final_mode is FinalMode.TIMED:
                    phase, length = Phase.TIMED, terms.countdown
                elif terms.preparation:
                    phase, length = Phase.PREPARATION, terms.preparation
                else:
                    phase, length = Phase.AUCTION, terms.countdown
                self._emit(PhaseChanged, at, phase=phase, trigger=trigger, ends_at=at + length)
            elif trigger is Trigger.START:
                self._emit(PhaseChanged, at, phase=Phase.AUCTION, trigger=trigger,
                           ends_at=at + terms.countdown)
            else:
                self._close(Trigger.NO_CONTEST if trigger is Trigger.CONTEST else trigger, at)

    def _contested(self) -> bool:
        terms = self._terms
        window = terms.contest_window
        since = self.timing.listing_end - window if window else 0
        return len(self._listing_bidders(since)) >= terms.contest_min_bidders

    def _listing_bidders(self, since: int) -> list[str]:
        return [b.bidder for b in self.bidders.values()
                if b.last_listing_bid_at is not None and b.last_listing_bid_at >= since]

    def _close(self, trigger: Trigger, at: int) -> None:
        if self.leader is None or self.price is None:
            self._emit(Closed, at, phase=Phase.UNSOLD, trigger=trigger, bidder=None, paddle=None,
                       price=None, reason=NO_BIDS)
        elif self.reserve is not None and self.price < self.reserve:
            self._emit(Closed, at, phase=Phase.UNSOLD, trigger=trigger, bidder=None, paddle=None,
                       price=None, reason=RESERVE_NOT_MET)
        else:
            self._emit(Closed, at, phase=Phase.SOLD, trigger=trigger, bidder=self.leader,
                       paddle=self.bidders[self.leader].paddle, price=self.price, reason=None)

    # ------------------------------------------------------------------ events
    def _emit(self, cls: type[Event], at: int, **fields: Any) -> Event:
        public = _PUBLIC[cls]
        event = cls(seq=self.seq + 1, pseq=self.pseq + 1 if public else None, at=at, **fields)
        self.apply(event)
        self._out.append(event)
        return event

    def apply(self, event: Event) -> None:
        """Apply one stored or new event. Raises :class:`InvariantBroken` if it does not fit."""
        if event.seq != self.seq + 1:
            raise InvariantBroken(f"event seq {event.seq} after {self.seq}")
        expected_pseq = self.pseq + 1 if _PUBLIC[type(event)] else None
        if event.pseq != expected_pseq:
            raise InvariantBroken(f"event pseq {event.pseq}, expected {expected_pseq}")
        if event.at < self.clock:
            raise InvariantBroken(f"event time {event.at} before {self.clock}")
        if self.terms is None and not isinstance(event, LotOpened):
            raise InvariantBroken(f"{event.KIND} before lot_opened")
        _APPLY[type(event)](self, event)
        self.seq = event.seq
        self.pseq = event.pseq or self.pseq
        self.clock = event.at

    def _apply_opened(self, e: LotOpened) -> None:
        if self.terms is not None:
            raise InvariantBroken("lot opened twice")
        self.lot_id, self.title, self.terms = e.lot_id, e.title, e.terms
        self.paddle_seed = e.paddle_seed
        self.phase = Phase.ANNOUNCEMENT
        self.timing = _Timing(listing_end=e.terms.listing_end, ends_at=e.terms.listing_start)
        self.increment = {False: e.terms.listing_increment, True: e.terms.final_increment}

    def _apply_qualified(self, e: BidderQualified) -> None:
        if e.bidder in self.bidders or e.paddle in self.paddles:
            raise InvariantBroken("bidder or paddle qualified twice")
        self.bidders[e.bidder] = Bidder(e.bidder, e.paddle, e.deposit_ref)
        self.paddles.add(e.paddle)

    def _apply_reserve(self, e: ReserveSet) -> None:
        self.reserve = e.amount

    def _apply_increment(self, e: IncrementChanged) -> None:
        self.increment[e.final] = e.amount

    def _apply_bid(self, e: BidAccepted) -> None:
        if self.price is not None and e.amount <= self.price:
            raise InvariantBroken("a bid did not raise the price")
        self.price, self.leader = e.amount, e.bidder
        self.history.append((e.at, e.paddle, e.amount))
        if self.phase is Phase.LISTING:
            self.bidders[e.bidder].last_listing_bid_at = e.at
        if e.ends_at is not None:
            self.timing.ends_at = e.ends_at

    def _apply_phase(self, e: PhaseChanged) -> None:
        assert self.phase is not None
        check(self.phase, e.trigger, e.phase)
        if (e.trigger is Trigger.CONTEST
                and self._terms.final_eligibility is Eligibility.LISTING_BIDDERS):
            self.eligible = frozenset(self._listing_bidders(0))
        self.phase = e.phase
        self.timing.ends_at = e.ends_at

    def _apply_frozen(self, e: Frozen) -> None:
        self.frozen_since, self.frozen_reason = e.at, e.reason

    def _apply_resumed(self, e: Resumed) -> None:
        assert self.phase is not None
        if e.phase is not self.phase:
            check(self.phase, Trigger.RESTART, e.phase)
        self.phase = e.phase
        self.timing = _Timing(listing_end=e.listing_end, ends_at=e.ends_at)
        self.frozen_since, self.frozen_reason = None, ""

    def _apply_taken_over(self, e: TakenOver) -> None:
        assert self.phase is not None
        if e.phase is not self.phase:
            check(self.phase, Trigger.RESTART, e.phase)
        self.phase = e.phase
        self.timing = _Timing(listing_end=e.listing_end, ends_at=e.ends_at)

    def _apply_closed(self, e: Closed) -> None:
        assert self.phase is not None
        check(self.phase, e.trigger, e.phase)
        self.phase, self.closed = e.phase, e
        self.timing.ends_at = None

    def _apply_capped(self, e: Capped) -> None:
        assert self.phase is not None
        check(self.phase, Trigger.CAP, Phase.CAPPED)
        self.phase, self.closed = Phase.CAPPED, e
        self.timing.ends_at = None

    # ------------------------------------------------------------------ views
    @property
    def _terms(self) -> LotTerms:
        if self.terms is None:
            raise InvariantBroken("lot not opened")
        return self.terms

    def current_increment(self) -> int:
        return self.increment[self.phase not in (Phase.ANNOUNCEMENT, Phase.LISTING,
                                                 Phase.LISTING_STOPPED)]

    def lowest_acceptable(self) -> int:
        """The lowest price the next bid may offer (ignoring the cap)."""
        if self.price is None:
            return self._terms.start_price
        return self.price + self.current_increment()

    def public_view(self) -> dict[str, Any]:
        """What anyone may see of the lot now; ``seq`` counts public events."""
        terms = self._terms
        closed = self.closed.public() if self.closed is not None else None
        leader = self.bidders[self.leader].paddle if self.leader else None
        return {
            "lot_id": self.lot_id, "title": self.title, "preset": terms.preset,
            "kind": terms.kind, "seq": self.pseq, "phase": self.phase,
            "frozen": self.frozen_since is not None, "frozen_reason": self.frozen_reason or None,
            "price": self.price, "leader": leader, "start_price": terms.start_price,
            "deposit": terms.deposit, "increment": self.current_increment(),
            "listing_increment": self.increment[False], "final_increment": self.increment[True],
            "multiple_rule": terms.multiple_rule, "price_cap": terms.price_cap,
            "listing_start": terms.listing_start, "listing_end": self.timing.listing_end,
            "ends_at": self.timing.ends_at, "countdown": terms.countdown,
            "final_mode": terms.final_mode, "next_min": self.lowest_acceptable(),
            "bid_count": len(self.history), "result": closed,
            "history": [list(h) for h in self.history[-SNAPSHOT_HISTORY:]],
        }

    def bidder_view(self, bidder: str) -> dict[str, Any] | None:
        """What a bidder may see about itself, or ``None`` if it is not qualified here."""
        b = self.bidders.get(bidder)
        if b is None:
            return None
        in_final = self.phase not in (Phase.ANNOUNCEMENT, Phase.LISTING, Phase.LISTING_STOPPED)
        eligible = not in_final or self.eligible is None or bidder in self.eligible
        return {"paddle": b.paddle, "leading": self.leader == bidder, "eligible": eligible}

    def result(self) -> dict[str, Any]:
        """The outcome with identities, and the deposits to refund (everyone but the winner)."""
        terms = self._terms
        closed = self.closed
        winner = closed.bidder if isinstance(closed, Closed) else None
        # Deposits are refunded once the sale is decided; a capped lot holds them until
        # its follow-up (lottery, sealed bid, ...) names the winner.
        decided = self.phase in (Phase.SOLD, Phase.UNSOLD)
        refunds = [{"bidder": b.bidder, "paddle": b.paddle, "deposit": terms.deposit,
                    "deposit_ref": b.deposit_ref}
                   for b in self.bidders.values() if decided and b.bidder != winner]
        return {
            "lot_id": self.lot_id, "phase": self.phase,
            "outcome": self.phase if self.phase in FINAL else None,
            "reason": closed.reason if isinstance(closed, Closed) else None,
            "winner": winner, "paddle": closed.paddle if closed is not None else None,
            "price": closed.price if closed is not None else None,
            "deposit_applied": terms.deposit if winner else None,
            "refunds": refunds,
        }


def _amount_ok(amount: object) -> bool:
    return type(amount) is int and 0 < amount <= MAX_AMOUNT


def _text(value: object, name: str, limit: int) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise Refused(E.INVALID_REQUEST, f"{name} must be text of 1 to {limit} characters")


_PUBLIC: dict[type[Event], bool] = {}
_APPLY: dict[type[Event], Any] = {
    LotOpened: Lot._apply_opened, BidderQualified: Lot._apply_qualified,
    ReserveSet: Lot._apply_reserve, IncrementChanged: Lot._apply_increment,
    BidAccepted: Lot._apply_bid, PhaseChanged: Lot._apply_phase, Frozen: Lot._apply_frozen,
    Resumed: Lot._apply_resumed, TakenOver: Lot._apply_taken_over, Closed: Lot._apply_closed,
    Capped: Lot._apply_capped,
}
for _cls in _APPLY:
    _PUBLIC[_cls] = _cls.public is not Event.public
