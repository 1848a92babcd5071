"""The rules of one lot, preset by preset (DOMAIN.md, "Online bidding rules")."""

from __future__ import annotations

import pytest

from auction import (
    HOUR,
    MINUTE,
    ChangeIncrement,
    Freeze,
    Lot,
    OpenLot,
    Phase,
    PlaceBid,
    QualifyBidder,
    Refused,
    Resume,
    SetReserve,
    Takeover,
    preset,
)
from auction.paddles import paddle_for

from .helpers import T0, Hall, assert_events, assert_refused, kinds

M = 1_000_000  # start price in the helpers
INC = 10_000  # listing increment in the helpers


def same_state(a: Lot, b: Lot) -> None:
    assert a.public_view() == b.public_view()
    assert a.result() == b.result()
    assert (a.seq, a.pseq, a.clock, a.reserve, a.eligible) == (b.seq, b.pseq, b.clock,
                                                              b.reserve, b.eligible)


# ---------------------------------------------------------------------- opening and basics
def test_announcement_takes_no_bids_then_listing_opens_on_time() -> None:
    hall = Hall("fujian")
    assert hall.lot.phase is Phase.ANNOUNCEMENT
    assert_refused(hall.bid("a", M), "phase_closed")
    decision = hall.bid("a", M, at=T0 + 5)
    assert_events(decision, [("phase_changed", {"phase": Phase.LISTING, "at": T0}),
                             ("bid", {"amount": M, "bidder": "a"})])


def test_first_bid_at_least_start_then_at_least_one_increment_more() -> None:
    hall = Hall("fujian")
    hall.tick(T0)
    refused = hall.bid("a", M - 1)
    assert_refused(refused, "too_low")
    assert refused.refusal is not None and refused.refusal.details["minimum"] == M
    assert hall.bid("a", M).refusal is None
    assert_refused(hall.bid("b", M + INC - 1), "too_low")
    assert hall.bid("b", M + INC + 7).refusal is None  # Fujian: any amount at or above
    assert hall.lot.lowest_acceptable() == M + 2 * INC + 7


def test_leader_cannot_raise_its_own_bid() -> None:
    hall = Hall("fujian")
    hall.tick(T0)
    hall.bid("a", M)
    assert_refused(hall.bid("a", M + INC), "already_leading")


@pytest.mark.parametrize("amount", [0, -5, 10**16, 1.5, "1000000", True, None])
def test_amounts_that_are_not_whole_yuan_in_range_are_refused(amount: object) -> None:
    hall = Hall("fujian")
    hall.tick(T0)
    before = hall.lot.seq
    assert_refused(hall.bid("a", amount), "invalid_amount")  # type: ignore[arg-type]
    assert hall.lot.seq == before


def test_unqualified_bidder_is_refused_and_nothing_changes() -> None:
    hall = Hall("fujian")
    hall.tick(T0)
    view = hall.lot.public_view()
    assert_refused(hall.bid("mallory", M), "not_qualified")
    assert hall.lot.public_view() == view


def test_qualification_closes_with_registration_and_is_not_repeated() -> None:
    hall = Hall("suzhou")
    assert_refused(hall.do(QualifyBidder(at=T0, bidder="a", deposit_ref="x")),
                   "already_qualified")
    hall.bid("a", M, at=T0 + 1)
    hall.bid("b", M + INC)
    hall.tick(T0 + 2 * HOUR)  # timed phase now
    assert_refused(hall.do(QualifyBidder(at=hall.clock.now, bidder="z", deposit_ref="x")),
                   "phase_closed")


def test_paddles_are_four_digits_distinct_and_fixed_by_the_seed() -> None:
    hall = Hall("suzhou", bidders=[f"b{i}" for i in range(300)])
    paddles = [b.paddle for b in hall.lot.bidders.values()]
    assert len(set(paddles)) == 300
    assert all(1000 <= p <= 9999 for p in paddles)
    assert paddles == [b.paddle for b in Hall("suzhou", bidders=[f"b{i}" for i in range(300)])
                       .lot.bidders.values()]
    assert paddles != sorted(paddles)  # not handed out in order
    assert paddle_for("00ff", 0, set()) == paddles[0]


def test_paddle_space_exhaustion_is_a_refusal() -> None:
    taken = set(range(1000, 10000))
    with pytest.raises(ValueError):
        paddle_for("seed", 0, taken)


def test_time_never_goes_back_before_the_last_event() -> None:
    hall = Hall("fujian")
    hall.bid("a", M, at=T0 + 10)
    decision = hall.do(PlaceBid(at=T0, bidder="b", amount=M + INC, bid_id="x"))
    assert decision.events[0].at == T0 + 10


def test_a_lot_opens_once_and_commands_need_an_open_lot() -> None:
    hall = Hall("fujian")
    assert_refused(hall.do(OpenLot(at=T0, lot_id="L1", title="t", terms=hall.terms,
                                   paddle_seed="x")), "lot_exists")
    assert_refused(Lot().handle(PlaceBid(at=T0, bidder="a", amount=M, bid_id="x")),
                   "lot_not_open")


# ---------------------------------------------------------------------- suzhou
def test_suzhou_stops_listing_an_hour_early_then_timed_among_listing_bidders() -> None:
    hall = Hall("suzhou")
    assert_refused(hall.bid("a", M + 5, at=T0 + 1), "not_multiple")
    hall.bid("a", M)
    hall.bid("b", M + 3 * INC)
    stop = hall.tick(T0 + HOUR)
    assert_events(stop, [("phase_changed", {"phase": Phase.LISTING_STOPPED, "at": T0 + HOUR})])
    assert_refused(hall.bid("a", M + 4 * INC, at=T0 + HOUR + 1), "phase_closed")
    timed = hall.tick(T0 + 2 * HOUR)
    assert_events(timed, [("phase_changed", {"phase": Phase.TIMED,
                                             "ends_at": T0 + 2 * HOUR + 4 * MINUTE})])
    assert_refused(hall.bid("c", M + 4 * INC, at=T0 + 2 * HOUR + 1000), "not_eligible")
    raised = hall.bid("a", M + 5 * INC, at=T0 + 2 * HOUR + 2 * MINUTE)
    assert raised.events[0].ends_at == T0 + 2 * HOUR + 6 * MINUTE  # countdown restarted
    assert hall.tick(T0 + 2 * HOUR + 6 * MINUTE - 1).events == ()
    closed = hall.tick(T0 + 2 * HOUR + 6 * MINUTE)
    assert_events(closed, [("closed", {"phase": Phase.SOLD, "bidder": "a", "price": M + 5 * INC})])
    same_state(hall.lot, hall.replayed())


def test_suzhou_second_bidder_in_the_last_hour_stops_the_listing_at_once() -> None:
    hall = Hall("suzhou")
    hall.bid("a", M, at=T0 + 1)
    assert hall.tick(T0 + HOUR).events == ()  # one active bidder: bidding goes on
    late = hall.bid("b", M + INC, at=T0 + HOUR + 10 * MINUTE)
    assert kinds(late) == ["bid", "phase_changed"]
    assert hall.lot.phase is Phase.LISTING_STOPPED


def test_suzhou_single_listing_bidder_wins_without_a_timed_phase() -> None:
    hall = Hall("suzhou")
    hall.bid("a", M + INC, at=T0 + 1)
    closed = hall.tick(T0 + 2 * HOUR)
    assert_events(closed, [("closed", {"phase": Phase.SOLD, "bidder": "a"})])


def test_reserve_not_met_leaves_the_lot_unsold_and_is_never_public() -> None:
    hall = Hall("suzhou")
    assert hall.do(SetReserve(at=hall.clock.now, amount=M + 50 * INC)).refusal is None
    hall.bid("a", M + INC, at=T0 + 1)
    closed = hall.tick(T0 + 2 * HOUR)
    assert_events(closed, [("closed", {"phase": Phase.UNSOLD, "reason": "reserve_not_met",
                                       "price": None})])
    for event in hall.events:
        public = event.public()
        if public is not None:
            assert M + 50 * INC not in public.values()
            assert "bidder" not in public and "reserve" not in public


def test_reserve_locks_an_hour_before_the_listing_ends_and_stays_in_range() -> None:
    hall = Hall("suzhou")
    assert_refused(hall.do(SetReserve(at=hall.clock.now, amount=M - 1)), "invalid_amount")
    hall.tick(T0 + HOUR - 1)
    assert hall.do(SetReserve(at=hall.clock.now, amount=M)).refusal is None
    hall.tick(T0 + HOUR)
    assert_refused(hall.do(SetReserve(at=hall.clock.now, amount=M)), "reserve_locked")


# ---------------------------------------------------------------------- fujian
def test_fujian_contest_in_last_hour_goes_to_auction_after_preparation() -> None:
    hall = Hall("fujian", final_increment=50_000)
    hall.bid("a", M, at=T0 + 1)
    hall.bid("b", M + INC, at=T0 + HOUR + 1)
    hall.bid("a", M + 2 * INC, at=T0 + HOUR + 2)
    prep = hall.tick(T0 + 2 * HOUR)
    assert_events(prep, [("phase_changed", {"phase": Phase.PREPARATION,
                                            "ends_at": T0 + 2 * HOUR + 15 * MINUTE})])
    assert_refused(hall.bid("c", M + 10 * INC, at=T0 + 2 * HOUR + 1), "phase_closed")
    auction = hall.tick(T0 + 2 * HOUR + 15 * MINUTE)
    assert_events(auction, [("phase_changed", {"phase": Phase.AUCTION})])
    # Opening price = highest listing bid + one auction increment; every qualified bidder joins.
    assert_refused(hall.bid("c", M + 2 * INC + 49_999), "too_low")
    assert hall.bid("c", M + 2 * INC + 50_000).refusal is None
    end = hall.lot.timing.ends_at
    assert end == hall.clock.now + 5 * MINUTE
    closed = hall.tick(end)
    assert_events(closed, [("closed", {"phase": Phase.SOLD, "bidder": "c"})])


def test_fujian_one_bidder_in_last_hour_wins_at_listing_end() -> None:
    hall = Hall("fujian")
    hall.bid("a", M, at=T0 + 1)
    hall.bid("b", M + INC, at=T0 + HOUR + 1)
    closed = hall.tick(T0 + 2 * HOUR)
    assert_events(closed, [("closed", {"phase": Phase.SOLD, "bidder": "b"})])


# ---------------------------------------------------------------------- qinzhou
def test_qinzhou_windows_extend_and_silence_gives_it_to_the_free_phase_leader() -> None:
    hall = Hall("qinzhou", listing=HOUR)
    hall.bid("a", M, at=T0 + 1)
    window = hall.tick(T0 + HOUR)
    assert_events(window, [("phase_changed", {"phase": Phase.TIMED,
                                              "ends_at": T0 + HOUR + 5 * MINUTE})])
    closed = hall.tick(T0 + HOUR + 5 * MINUTE)
    assert_events(closed, [("closed", {"phase": Phase.SOLD, "bidder": "a", "price": M})])


def test_qinzhou_without_any_bid_is_unsold() -> None:
    hall = Hall("qinzhou", listing=HOUR)
    hall.tick(T0 + HOUR)
    closed = hall.tick(T0 + HOUR + 5 * MINUTE)
    assert_events(closed, [("closed", {"phase": Phase.UNSOLD, "reason": "no_bids"})])


def test_a_bid_after_the_countdown_ended_closes_first_then_is_refused() -> None:
    hall = Hall("qinzhou", listing=HOUR)
    hall.bid("a", M, at=T0 + 1)
    hall.tick(T0 + HOUR)
    late = hall.bid("b", M + INC, at=T0 + HOUR + 5 * MINUTE + 3)  # the timer fired late
    assert kinds(late) == ["closed"]
    assert late.events[0].at == T0 + HOUR + 5 * MINUTE  # closed at the deadline itself
    assert_refused(late, "phase_closed")


# ---------------------------------------------------------------------- mining
def test_mining_needs_a_listing_bid_to_enter_the_timed_phase() -> None:
    hall = Hall("mining")
    hall.bid("a", M, at=T0 + 1)
    hall.bid("b", M + INC)
    hall.tick(T0 + 2 * HOUR)
    assert hall.lot.phase is Phase.TIMED
    assert_refused(hall.bid("c", M + 5 * INC), "not_eligible")
    assert_refused(hall.bid("a", M + INC), "too_low")  # each round: current + increment
    assert hall.bid("a", M + 2 * INC).refusal is None


# ---------------------------------------------------------------------- cap
def test_reaching_the_cap_stops_price_bids() -> None:
    hall = Hall("fujian", price_cap=M + 25_000, cap_mode="lottery")
    hall.bid("a", M, at=T0 + 1)
    assert_refused(hall.bid("b", M + 25_001), "above_cap")
    capped = hall.bid("b", M + 25_000)  # more than one increment: the cap is always reachable
    assert_events(capped, [("bid", {"amount": M + 25_000}),
                           ("capped", {"price": M + 25_000, "bidder": "b"})])
    assert hall.lot.phase is Phase.CAPPED
    assert_refused(hall.bid("a", M + 30_000), "phase_closed")
    result = hall.lot.result()
    assert result["outcome"] == Phase.CAPPED and result["winner"] is None
    assert result["refunds"] == []  # deposits are held for the follow-up


# ---------------------------------------------------------------------- freeze
def test_freeze_in_listing_refuses_bids_and_extends_the_listing() -> None:
    hall = Hall("fujian")
    hall.tick(T0 + 10 * MINUTE)
    assert_events(hall.do(Freeze(at=hall.clock.now, reason="机房断电")), [("frozen", {})])
    assert_refused(hall.do(Freeze(at=hall.clock.now, reason="again")), "frozen")
    assert_refused(hall.bid("a", M), "frozen")
    assert hall.tick(T0 + 3 * HOUR).events == ()  # nothing moves while frozen
    resumed = hall.do(Resume(at=hall.clock.now, reason="恢复供电"))
    frozen_for = 3 * HOUR - 10 * MINUTE
    assert_events(resumed, [("resumed", {"frozen_for": frozen_for, "phase": Phase.LISTING,
                                         "listing_end": T0 + 2 * HOUR + frozen_for})])
    assert_refused(hall.do(Resume(at=hall.clock.now, reason="x")), "not_frozen")
    assert hall.bid("a", M).refusal is None


def test_freeze_during_countdown_restarts_it_in_full() -> None:
    hall = Hall("suzhou")
    hall.bid("a", M, at=T0 + 1)
    hall.bid("b", M + INC)
    hall.tick(T0 + 2 * HOUR + 3 * MINUTE)  # one minute left
    hall.do(Freeze(at=hall.clock.now, reason="x"))
    resumed = hall.do(Resume(at=hall.clock.advance(20 * MINUTE), reason="y"))
    assert_events(resumed, [("resumed", {"phase": Phase.TIMED,
                                         "ends_at": hall.clock.now + 4 * MINUTE})])


def test_freeze_during_auction_goes_back_through_preparation() -> None:
    hall = Hall("fujian")
    hall.bid("a", M, at=T0 + HOUR + 1)
    hall.bid("b", M + INC)
    hall.tick(T0 + 2 * HOUR + 15 * MINUTE + 1)
    assert hall.lot.phase is Phase.AUCTION
    hall.do(Freeze(at=hall.clock.now, reason="x"))
    resumed = hall.do(Resume(at=hall.clock.advance(MINUTE), reason="y"))
    assert_events(resumed, [("resumed", {"phase": Phase.PREPARATION,
                                         "ends_at": hall.clock.now + 15 * MINUTE})])
    same_state(hall.lot, hall.replayed())


def test_only_running_lots_freeze() -> None:
    hall = Hall("fujian")
    assert_refused(hall.do(Freeze(at=hall.clock.now, reason="x")), "phase_closed")
    hall.tick(T0 + 3 * HOUR)  # unsold, no bids
    assert_refused(hall.do(Freeze(at=hall.clock.now, reason="x")), "phase_closed")


# ---------------------------------------------------------------------- increments
def test_staff_change_the_increment_during_the_sale() -> None:
    hall = Hall("fujian")
    hall.bid("a", M, at=T0 + 1)
    changed = hall.do(ChangeIncrement(at=hall.clock.now, final=False, amount=20_000,
                                      reason="报价过于密集"))
    assert_events(changed, [("increment_changed", {"amount": 20_000})])
    assert_refused(hall.bid("b", M + INC), "too_low")
    assert hall.bid("b", M + 20_000).refusal is None
    assert_refused(hall.do(ChangeIncrement(at=hall.clock.now, final=False, amount=0,
                                           reason="x")), "invalid_amount")
    assert_refused(hall.do(ChangeIncrement(at=hall.clock.now, final=False, amount=5,
                                           reason=" ")), "invalid_request")


# ---------------------------------------------------------------------- terms
@pytest.mark.parametrize("fields", [
    {"listing_end": T0},
    {"start_price": 0},
    {"listing_increment": -1},
    {"countdown": 10},
    {"price_cap": 1},
    {"price_cap": M * 2},  # without a cap_mode
    {"cap_mode": "lottery"},  # without a cap
    {"final_mode": "sideways"},
    {"colour": "red"},
])
def test_invalid_terms_are_refused(fields: dict[str, object]) -> None:
    base: dict[str, object] = {"start_price": M, "deposit": 1, "listing_increment": INC,
                               "listing_start": T0, "listing_end": T0 + HOUR}
    base.update(fields)
    with pytest.raises(Refused) as info:
        preset("fujian", **base)
    assert info.value.code == "invalid_terms"


def test_unknown_preset_is_refused() -> None:
    with pytest.raises(Refused, match="unknown preset"):
        preset("atlantis", start_price=M)


# ---------------------------------------------------------------------- takeover
def test_takeover_during_a_countdown_restarts_it_in_full() -> None:
    hall = Hall("suzhou")
    hall.bid("a", M, at=T0 + 1)
    hall.bid("b", M + INC)
    hall.tick(T0 + 2 * HOUR + 3 * MINUTE)  # timed, one minute left
    down = hall.clock.now
    # The owner died; another process takes over 10 minutes later: the old end has passed.
    taken = hall.do(Takeover(at=down + 10 * MINUTE, owner="node-2", down_since=down))
    assert_events(taken, [("taken_over", {"owner": "node-2", "down_for": 10 * MINUTE,
                                          "phase": Phase.TIMED,
                                          "ends_at": down + 10 * MINUTE + 4 * MINUTE})])
    assert hall.lot.phase is Phase.TIMED
    assert hall.bid("a", M + 2 * INC, at=down + 11 * MINUTE).refusal is None
    same_state(hall.lot, hall.replayed())


def test_takeover_of_an_auction_goes_through_preparation_again() -> None:
    hall = Hall("fujian")
    hall.bid("a", M, at=T0 + HOUR + 1)
    hall.bid("b", M + INC)
    hall.tick(T0 + 2 * HOUR + 15 * MINUTE + 1)
    assert hall.lot.phase is Phase.AUCTION
    now = hall.clock.advance(30_000)
    taken = hall.do(Takeover(at=now, owner="n", down_since=now - 20_000))
    assert_events(taken, [("taken_over", {"phase": Phase.PREPARATION,
                                          "ends_at": now + 15 * MINUTE})])


def test_takeover_extends_the_listing_by_the_outage() -> None:
    hall = Hall("fujian")
    hall.bid("a", M, at=T0 + 1)
    taken = hall.do(Takeover(at=T0 + 5 * MINUTE, owner="n", down_since=T0 + 2 * MINUTE))
    assert_events(taken, [("taken_over", {"phase": Phase.LISTING, "down_for": 3 * MINUTE,
                                          "listing_end": T0 + 2 * HOUR + 3 * MINUTE})])


def test_deadlines_due_before_the_outage_still_count() -> None:
    hall = Hall("qinzhou", listing=HOUR)
    hall.bid("a", M, at=T0 + 1)
    hall.tick(T0 + HOUR)  # window ends at T0 + HOUR + 5 min
    end = T0 + HOUR + 5 * MINUTE
    # The owner served until after the end but died before its timer closed the lot.
    taken = hall.do(Takeover(at=end + HOUR, owner="n", down_since=end + 2000))
    assert kinds(taken) == ["closed"]
    assert taken.events[0].at == end
    assert_refused(taken, "phase_closed")  # nothing to take over: the lot is decided


def test_takeover_of_a_frozen_lot_leaves_the_timings_to_the_resume() -> None:
    hall = Hall("suzhou")
    hall.bid("a", M, at=T0 + 1)
    hall.do(Freeze(at=hall.clock.now, reason="x"))
    before = hall.lot.timing
    taken = hall.do(Takeover(at=hall.clock.advance(HOUR), owner="n",
                             down_since=hall.clock.now - 10_000))
    assert_events(taken, [("taken_over", {"ends_at": before.ends_at,
                                          "listing_end": before.listing_end})])
    assert hall.lot.frozen_since is not None
    resumed = hall.do(Resume(at=hall.clock.advance(MINUTE), reason="y"))
    assert resumed.events[0].frozen_for == HOUR + MINUTE
