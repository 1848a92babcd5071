"""Invariants of a lot under random commands at random times (Hypothesis state machine).

Checked after every step, against the events the lot emitted:
- the price never falls; every accepted bid is >= previous + increment in force
  (or exactly reaches the cap); the first is >= the start price;
- seq is gapless from 1; pseq is gapless over public events;
- nothing is accepted after the close or while frozen;
- at the close, the winner is the last accepted bid if the reserve is met, else unsold;
- public events never carry a bidder identity, a deposit reference, the seed or the reserve;
- replaying the events rebuilds the same state;
- a takeover after an outage never ends a countdown: it restarts it (the freeze rule).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from auction import (
    HOUR,
    MINUTE,
    PRESETS,
    BidAccepted,
    Capped,
    ChangeIncrement,
    Closed,
    Event,
    Freeze,
    Frozen,
    IncrementChanged,
    Lot,
    OpenLot,
    Phase,
    PhaseChanged,
    PlaceBid,
    QualifyBidder,
    ReserveSet,
    Resume,
    Resumed,
    SetReserve,
    TakenOver,
    Takeover,
    Tick,
    preset,
)

T0 = 1_800_000_000_000
START = 1_000_000
NAMES = [f"bidder-{i}" for i in range(6)]
SECRETS = ("deposit_ref", "paddle_seed", "bidder", "reserve")


class LotMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.lot = Lot()
        self.events: list[Event] = []
        self.now = T0 - MINUTE
        self.bids = 0
        # The model, folded from the events alone.
        self.price: int | None = None
        self.last_bidder: str | None = None
        self.phase: Phase | None = None
        self.frozen = False
        self.increment = {False: 0, True: 0}
        self.reserve: int | None = None
        self.cap: int | None = None
        self.seq = 0
        self.pseq = 0
        self.bidders: set[str] = set()

    @initialize(name=st.sampled_from(PRESETS), increment=st.sampled_from([1, 7, 10_000]),
                listing=st.integers(2 * HOUR, 6 * HOUR), capped=st.booleans(),
                final_increment=st.sampled_from([None, 3, 50_000]))
    def open(self, name: str, increment: int, listing: int, capped: bool,
             final_increment: int | None) -> None:
        fields: dict[str, Any] = {"start_price": START, "deposit": 1,
                                  "listing_increment": increment, "listing_start": T0,
                                  "listing_end": T0 + listing}
        if final_increment is not None:
            fields["final_increment"] = final_increment
        if capped:
            fields.update(price_cap=START + 40 * increment, cap_mode="lottery")
        terms = preset(name, **fields)
        self.cap = terms.price_cap
        self.increment = {False: terms.listing_increment, True: terms.final_increment}
        self.do(OpenLot(at=self.now, lot_id="P", title="t", terms=terms, paddle_seed="seed"))
        for bidder in NAMES[:3]:
            self.do(QualifyBidder(at=self.now, bidder=bidder, deposit_ref=f"ref-{bidder}"))

    # ------------------------------------------------------------------ driving
    def do(self, command: Any) -> None:
        decision = self.lot.handle(command)
        for event in decision.events:
            self.check(event)
            self.events.append(event)
        if decision.refusal is not None:
            assert decision.primary is None

    @rule(ms=st.one_of(st.integers(0, 5_000), st.integers(0, 20 * MINUTE),
                       st.integers(0, 2 * HOUR)))
    def wait(self, ms: int) -> None:
        self.now += ms
        self.do(Tick(at=self.now))

    @rule(who=st.sampled_from([*NAMES, "stranger"]), raise_by=st.integers(-2, 60),
          ms=st.integers(0, 90_000), exact=st.booleans())
    def bid(self, who: str, raise_by: int, ms: int, exact: bool) -> None:
        self.now += ms
        if self.lot.terms is None:
            return
        base = self.lot.lowest_acceptable()
        step = max(1, self.lot.current_increment())
        amount = base + raise_by * step + (0 if exact else raise_by % 3)
        self.bids += 1
        self.do(PlaceBid(at=self.now, bidder=who, amount=amount, bid_id=str(self.bids)))

    @rule(amount=st.integers(-5, 10**16))
    def bid_anything(self, amount: int) -> None:
        self.do(PlaceBid(at=self.now, bidder=NAMES[0], amount=amount, bid_id="any"))

    @rule(who=st.sampled_from(NAMES))
    def qualify(self, who: str) -> None:
        self.do(QualifyBidder(at=self.now, bidder=who, deposit_ref="late"))

    @rule(factor=st.integers(0, 80))
    def set_reserve(self, factor: int) -> None:
        self.do(SetReserve(at=self.now, amount=START + factor * 5_000))

    @rule(amount=st.integers(0, 100_000), final=st.booleans())
    def change_increment(self, amount: int, final: bool) -> None:
        self.do(ChangeIncrement(at=self.now, final=final, amount=amount, reason="staff"))

    @rule(ms=st.integers(0, 2 * HOUR))
    def freeze_and_maybe_resume(self, ms: int) -> None:
        self.do(Freeze(at=self.now, reason="outage"))
        if ms % 3:
            self.now += ms
            self.do(Resume(at=self.now, reason="fixed"))

    @rule(outage=st.integers(0, 2 * HOUR), detected=st.integers(0, 10_000))
    def take_over(self, outage: int, detected: int) -> None:
        """The owner died ``outage`` ms ago; another process takes the lot over."""
        down_since = self.now
        self.now += outage + detected
        self.do(Takeover(at=self.now, owner="node-b", down_since=down_since))

    @precondition(lambda self: self.frozen)
    @rule()
    def resume(self) -> None:
        self.do(Resume(at=self.now, reason="fixed"))

    # ------------------------------------------------------------------ checking
    def check(self, event: Event) -> None:
        assert event.seq == self.seq + 1, "seq must be gapless"
        self.seq = event.seq
        public = event.public()
        if public is None:
            assert event.pseq is None
        else:
            assert event.pseq == self.pseq + 1, "public seq must be gapless"
            self.pseq = event.pseq
            assert not set(public) & set(SECRETS), public
            if isinstance(public.get("terms"), dict):
                assert not set(public["terms"]) & set(SECRETS)
        if isinstance(event, BidAccepted):
            assert self.phase in (Phase.LISTING, Phase.TIMED, Phase.AUCTION), self.phase
            assert not self.frozen, "no bid while frozen"
            assert event.bidder in self.bidders
            final = self.phase is not Phase.LISTING
            if self.price is None:
                lowest = START
            else:
                lowest = self.price + self.increment[final]
                assert event.amount > self.price, "the price never falls"
            assert event.amount >= lowest or event.amount == self.cap, (event, lowest)
            self.price, self.last_bidder = event.amount, event.bidder
        elif isinstance(event, Closed):
            if event.phase is Phase.SOLD:
                assert event.bidder == self.last_bidder and event.price == self.price
                assert self.reserve is None or (self.price is not None and \
                    self.price >= self.reserve)
            else:
                assert self.price is None or (self.reserve is not None and
                                              self.price < self.reserve)
            self.phase = event.phase
        elif isinstance(event, Capped):
            assert event.price == self.cap == self.price
            self.phase = Phase.CAPPED
        elif isinstance(event, PhaseChanged):
            assert self.phase not in (Phase.SOLD, Phase.UNSOLD, Phase.CAPPED)
            assert not self.frozen
            self.phase = event.phase
        elif isinstance(event, Frozen):
            assert not self.frozen
            self.frozen = True
        elif isinstance(event, Resumed):
            assert self.frozen
            self.frozen, self.phase = False, event.phase
        elif isinstance(event, TakenOver):
            assert self.phase not in (Phase.SOLD, Phase.UNSOLD, Phase.CAPPED)
            assert not self.frozen or event.phase is self.phase
            if self.phase in (Phase.TIMED, Phase.AUCTION, Phase.PREPARATION) and not self.frozen:
                assert event.ends_at is not None and event.ends_at > event.at, \
                    "a countdown interrupted by an outage restarts in full"
            self.phase = event.phase
        elif isinstance(event, IncrementChanged):
            self.increment[event.final] = event.amount
        elif isinstance(event, ReserveSet):
            self.reserve = event.amount
        elif event.KIND == "bidder_qualified":
            self.bidders.add(event.bidder)  # type: ignore[attr-defined]
        elif event.KIND == "lot_opened":
            self.phase = Phase.ANNOUNCEMENT

    @invariant()
    def replay_rebuilds_the_same_state(self) -> None:
        if self.lot.terms is None:
            return
        again = Lot.replay(self.events)
        assert again.public_view() == self.lot.public_view()
        assert again.result() == self.lot.result()
        assert (again.seq, again.pseq, again.clock, again.reserve, again.eligible,
                again.frozen_since) == (self.lot.seq, self.lot.pseq, self.lot.clock,
                                        self.lot.reserve, self.lot.eligible,
                                        self.lot.frozen_since)
        assert again.next_deadline() == self.lot.next_deadline()


TestLotMachine = LotMachine.TestCase
TestLotMachine.settings = settings(max_examples=300, stateful_step_count=60, deadline=None,
                                   suppress_health_check=[HealthCheck.too_slow])
