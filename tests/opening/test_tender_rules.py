"""The rules of one tender, command by command (DOMAIN.md, "No-meeting opening rules").

Every refusal is checked to change nothing: the views before and after are compared.
"""

from __future__ import annotations

from typing import Any

import pytest

from opening import (
    CODES,
    HOUR,
    MINUTE,
    Answer,
    CheckIn,
    Close,
    Confirm,
    CreateTender,
    DeclareFailed,
    Object,
    OpenObjections,
    Outcome,
    Pause,
    Publish,
    RecordDecryption,
    Refused,
    ReleaseKey,
    Resume,
    Start,
    SubmitBid,
    Tender,
    TenderState,
    TenderTerms,
    Tick,
    WithdrawBid,
    checked_terms,
    price_warning,
    to_fen,
)
from tests.opening.helpers import (
    CHECK_IN_FROM,
    DEADLINE,
    Room,
    assert_events,
    assert_refused,
    key_for,
    kinds,
    summary,
)

S = TenderState
WINDOW = 30 * MINUTE


# ---------------------------------------------------------------------- terms and money
def test_terms_defaults_follow_the_common_rules() -> None:
    t = TenderTerms(deadline=DEADLINE, check_in_from=CHECK_IN_FROM)
    assert (t.decrypt_window, t.objection_window, t.min_bids, t.warn_over_budget_pct) == (
        30 * MINUTE, 5 * MINUTE, 3, 20)


@pytest.mark.parametrize("changes", [
    {"check_in_from": DEADLINE + 1}, {"decrypt_window": MINUTE - 1},
    {"decrypt_window": 4 * HOUR + 1}, {"min_bids": 0}, {"warn_over_budget_pct": 101},
    {"ceiling": "12.345"}, {"ceiling": "0"}, {"budget": "-5"}, {"budget": 100},
    {"deadline": "soon"}, {"min_bids": True}, {"objection_window": 0},
])
def test_invalid_terms_raise_value_error_and_are_refused_as_invalid_terms(
        changes: dict[str, Any]) -> None:
    fields: dict[str, Any] = {"deadline": DEADLINE, "check_in_from": CHECK_IN_FROM, **changes}
    with pytest.raises(ValueError):
        TenderTerms(**fields)
    with pytest.raises(Refused) as refused:
        checked_terms(**fields)
    assert refused.value.code == "invalid_terms"


@pytest.mark.parametrize(("text", "fen"), [("0", 0), ("1", 100), ("12.5", 1250),
                                           ("999999999999999.99", 99999999999999999)])
def test_to_fen_reads_decimal_yuan_exactly(text: str, fen: int) -> None:
    assert to_fen(text) == fen


@pytest.mark.parametrize("text", ["", "01", "1.", "1.234", "-1", "1e3", " 1", "1,000", "\uff11"])
def test_to_fen_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        to_fen(text)


def test_price_warning_names_the_ceiling_then_the_budget() -> None:
    t = TenderTerms(deadline=DEADLINE, check_in_from=CHECK_IN_FROM, ceiling="1000.00",
                    budget="500", warn_over_budget_pct=20)
    assert price_warning(t, "1000.01") == "above_ceiling"
    assert price_warning(t, "1000") == "over_budget"
    assert price_warning(t, "600.01") == "over_budget"
    assert price_warning(t, "600") is None
    assert price_warning(TenderTerms(deadline=DEADLINE, check_in_from=0), "9" * 15) is None
    with pytest.raises(ValueError):
        price_warning(t, "cheap")


# ---------------------------------------------------------------------- creation and publishing
def test_create_then_publish_moves_draft_to_accepting() -> None:
    room = Room(publish=False)
    assert room.tender.state is S.DRAFT
    created = room.events[0].public()
    assert created is not None and created["terms"]["min_bids"] == 3
    assert_events(room.do(Publish(at=room.now)), [("published", {"pseq": 2})])
    assert room.tender.public_view()["state"] == "accepting"
    assert_refused(room, Publish(at=room.now), "wrong_state")


def test_commands_before_creation_are_refused() -> None:
    tender = Tender()
    decision = tender.handle(Tick(at=1))
    assert decision.refusal is not None and decision.refusal.code == "no_tender"
    assert tender.seq == 0


@pytest.mark.parametrize(("changes", "code"), [
    ({"tender_id": "has space"}, "invalid_request"), ({"title": "   "}, "invalid_request"),
    ({"terms": {"deadline": 1}}, "invalid_terms"), ({"at": DEADLINE}, "invalid_terms"),
])
def test_create_refuses_bad_input(changes: dict[str, Any], code: str) -> None:
    fields: dict[str, Any] = {"at": 0, "tender_id": "T1", "title": "t",
                              "terms": TenderTerms(deadline=DEADLINE, check_in_from=0)}
    decision = Tender().handle(CreateTender(**{**fields, **changes}))
    assert decision.refusal is not None and decision.refusal.code == code
    assert decision.events == ()


def test_create_twice_is_refused() -> None:
    room = Room()
    assert_refused(room, CreateTender(at=room.now, tender_id="T2", title="x", terms=room.terms),
                   "tender_exists")


def test_publish_after_the_deadline_is_refused() -> None:
    room = Room(publish=False)
    room.clock.at(DEADLINE)
    assert_refused(room, Publish(at=room.now), "deadline_passed")


# ---------------------------------------------------------------------- registration
def test_registration_is_private_and_checks_the_key() -> None:
    room = Room(bidders=())
    view = room.tender.public_view()
    assert kinds(room.register("a")) == ["bidder_registered"]
    assert room.events[-1].pseq is None and room.tender.public_view() == view
    assert_refused(room, room.register_cmd("a"), "already_registered")
    key, _ = key_for("b")
    for public_key, fingerprint in [(key, "0" * 64), (key + "=", None), ("BAAA", None),
                                    (key_for("c")[0], None)]:
        assert_refused(room, room.register_cmd("b", public_key, fingerprint), "invalid_request")


def test_registration_closes_at_the_deadline() -> None:
    room = Room(bidders=())
    room.clock.at(DEADLINE)
    assert_refused(room, room.register_cmd("late"), "deadline_passed")


# ---------------------------------------------------------------------- submission
def test_bids_are_private_replace_earlier_ones_and_stop_at_the_deadline() -> None:
    room = Room()
    view = room.tender.public_view()
    assert kinds(room.submit("a")) == ["bid_submitted"]
    assert kinds(room.submit("a", "2")) == ["bid_submitted"]
    assert room.tender.public_view() == view  # nothing public before the start
    mine = room.tender.bidder_view("a")
    assert mine is not None and mine["bid"]["upload"] == "up-a-2" and mine["bid"]["versions"] == 2
    room.clock.at(DEADLINE - 1)
    assert room.submit("b").refusal is None
    late = room.do(SubmitBid(at=DEADLINE, bidder="c", upload="u", sha256="0" * 64, size=1))
    assert late.refusal is not None and late.refusal.code == "deadline_passed"
    assert kinds(late) == ["deadline_passed"]  # time moved, the bid did not count
    passed = late.events[0].public()
    assert passed == {"kind": "deadline_passed", "at": DEADLINE}  # no counts
    assert room.tender.bids.keys() == {"a", "b"}


def test_submission_refusals() -> None:
    room = Room(publish=False)
    assert_refused(room, SubmitBid(at=room.now, bidder="a", upload="u", sha256="0" * 64, size=1),
                   "not_accepting")
    room.ok(Publish(at=room.now))
    assert_refused(room, SubmitBid(at=room.now, bidder="zed", upload="u", sha256="0" * 64,
                                   size=1), "not_registered")
    for upload, digest, size in [("u", "A" * 64, 1), ("u", "0" * 63, 1), ("u u", "0" * 64, 1),
                                 ("u", "0" * 64, 0), ("u", "0" * 64, True)]:
        assert_refused(room, SubmitBid(at=room.now, bidder="a", upload=upload, sha256=digest,
                                       size=size), "invalid_request")


def test_withdrawn_bids_are_recorded_but_not_counted() -> None:
    room = Room()
    for name in "abc":
        room.submit(name)
    assert kinds(room.do(WithdrawBid(at=room.now, bidder="c"))) == ["bid_withdrawn"]
    assert_refused(room, WithdrawBid(at=room.now, bidder="c"), "no_bid")
    assert_refused(room, WithdrawBid(at=room.now, bidder="zed"), "not_registered")
    room.clock.at(DEADLINE)
    decision = room.ok(Start(at=room.now))
    assert_events(decision, [("deadline_passed", {}),
                             ("failed", {"code": "too_few_bids", "trigger": "start"})])
    assert room.tender.state is S.FAILED
    record = room.tender.record()
    assert [(b["bidder"], b["outcome"]) for b in record["bids"]] == [
        ("a", None), ("b", None), ("c", Outcome.WITHDRAWN)]
    assert record["failure"]["code"] == "too_few_bids"
    assert_refused(room, WithdrawBid(at=room.now, bidder="a"), "tender_finished")


def test_a_withdrawn_bid_can_be_submitted_again() -> None:
    room = Room()
    room.submit("a")
    room.ok(WithdrawBid(at=room.now, bidder="a"))
    room.submit("a", "2")
    mine = room.tender.bidder_view("a")
    assert mine is not None and not mine["withdrawn"] and mine["bid"]["versions"] == 2


# ---------------------------------------------------------------------- check-in
def test_check_in_opens_at_check_in_from_and_stays_private() -> None:
    room = Room()
    room.submit("a")
    assert_refused(room, CheckIn(at=CHECK_IN_FROM - 1, bidder="a"), "check_in_not_open")
    room.clock.at(CHECK_IN_FROM)
    view = room.tender.public_view()
    assert kinds(room.check_in("a")) == ["checked_in"]
    assert room.events[-1].pseq is None and room.tender.public_view() == view
    assert_refused(room, CheckIn(at=room.now, bidder="a"), "already_checked_in")
    assert_refused(room, CheckIn(at=room.now, bidder="zed"), "not_registered")
    assert room.check_in("b").refusal is None  # registered without a bid: still allowed


def test_check_in_in_draft_is_not_open_and_closes_with_the_window() -> None:
    draft = Room(publish=False)
    assert_refused(draft, CheckIn(at=DEADLINE - 1, bidder="a"), "check_in_not_open")
    room = Room(bidders="abcd")
    room.started("abc")
    assert room.check_in("d").refusal is None  # late, but the window is open
    room.clock.at(DEADLINE + WINDOW)
    room.ok(Tick(at=room.now))
    assert room.tender.state is S.ANNOUNCED
    assert_refused(room, CheckIn(at=room.now, bidder="d"), "check_in_closed")


# ---------------------------------------------------------------------- start
def test_start_publishes_the_received_bids_and_opens_the_window() -> None:
    room = Room(bidders="cab")
    for name in "cab":
        room.submit(name)
    assert_refused(room, Start(at=DEADLINE - 1), "too_early")
    decision = room.ok(Start(at=DEADLINE + 5))
    end = DEADLINE + 5 + WINDOW
    assert_events(decision, [("deadline_passed", {"at": DEADLINE}),
                             ("started", {"at": DEADLINE + 5, "window_end": end})])
    started = decision.events[1].public()
    assert started is not None
    assert [b["bidder"] for b in started["bids"]] == ["a", "b", "c"]
    assert set(started["bids"][0]) == {"bidder", "name", "sha256", "size", "submitted_at"}
    view = room.tender.public_view()
    assert view["bid_count"] == 3 and view["counts"]["waiting"] == 3
    assert room.tender.next_deadline() == DEADLINE + 5 + WINDOW
    assert_refused(room, Start(at=room.now), "wrong_state")


def test_start_in_draft_is_refused_and_min_bids_is_a_setting() -> None:
    draft = Room(publish=False)
    assert_refused(draft, Start(at=DEADLINE), "wrong_state")
    room = Room(min_bids=1)
    room.started("a")
    assert room.tender.state is S.DECRYPTING


def test_public_view_shows_no_counts_before_the_start() -> None:
    room = Room()
    room.submit("a")
    room.tick(DEADLINE)
    view = room.tender.public_view()
    assert view["state"] == "deadline" and view["bid_count"] is None and view["bids"] is None


# ---------------------------------------------------------------------- decryption
def test_keys_are_refused_before_the_start_then_released_once() -> None:
    room = Room(bidders="abcd")
    for name in "abc":
        room.submit(name)
    assert_refused(room, ReleaseKey(at=room.now, bidder="a"), "too_early")
    room.tick(DEADLINE)
    assert_refused(room, ReleaseKey(at=room.now, bidder="a"), "not_decrypting")
    room.ok(Start(at=room.now))
    assert_refused(room, ReleaseKey(at=room.now, bidder="d"), "no_bid")
    assert_refused(room, ReleaseKey(at=room.now, bidder="zed"), "not_registered")
    assert_refused(room, RecordDecryption(at=room.now, bidder="a", ok=True, summary=summary()),
                   "key_not_released")
    decision = room.release("a")
    assert kinds(decision) == ["key_released"] and decision.events[0].pseq is None
    assert_refused(room, ReleaseKey(at=room.now, bidder="a"), "already_decrypted")
    decrypted = room.decrypted("a")
    assert_events(decrypted, [("bid_decrypted", {"bidder": "a"})])
    assert decrypted.events[0].public() == {"kind": "bid_decrypted", "at": room.now,
                                            "bidder": "a"}  # no summary before the read-out
    assert_refused(room, ReleaseKey(at=room.now, bidder="a"), "already_decrypted")
    assert_refused(room, RecordDecryption(at=room.now, bidder="a", ok=True, summary=summary()),
                   "already_decrypted")


@pytest.mark.parametrize(("ok", "value", "reason"), [
    (True, None, ""), (True, {}, ""), (True, {"price": 1.5}, ""), (True, {"price": True}, ""),
    (False, None, " "), (False, summary(), "bad"), ("yes", None, "x"),
])
def test_record_decryption_refuses_malformed_results(ok: Any, value: Any, reason: str) -> None:
    room = Room()
    room.started()
    room.release("a")
    assert_refused(room, RecordDecryption(at=room.now, bidder="a", ok=ok, summary=value,
                                          reason=reason), "invalid_request")


def test_a_failed_decryption_is_recorded_with_its_reason() -> None:
    room = Room()
    room.started()
    room.release("b")
    decision = room.do(RecordDecryption(at=room.now, bidder="b", ok=False,
                                        reason="  key commitment mismatch "))
    assert_events(decision, [("decryption_failed", {"reason": "key commitment mismatch"})])
    assert room.tender.public_view()["counts"]["failed"] == 1


def test_pause_holds_the_window_and_resume_moves_its_end() -> None:
    room = Room()
    room.started()
    start = room.now
    assert_refused(room, Resume(at=room.now), "not_paused")
    room.clock.advance(10 * MINUTE)
    assert_events(room.do(Pause(at=room.now, reason="video link down")),
                  [("paused", {"reason": "video link down"})])
    assert room.tender.public_view()["paused"] is True
    assert room.tender.next_deadline() is None
    assert_refused(room, Pause(at=room.now, reason="again"), "paused")
    assert_refused(room, ReleaseKey(at=room.now, bidder="a"), "paused")
    assert room.tick(start + 3 * WINDOW).events == ()  # paused time does not count
    resumed = room.do(Resume(at=room.now))
    assert_events(resumed, [("resumed", {"paused_for": 3 * WINDOW - 10 * MINUTE,
                                         "window_end": start + 4 * WINDOW - 10 * MINUTE})])
    assert room.tender.next_deadline() == start + 4 * WINDOW - 10 * MINUTE
    record = room.tender.record()
    assert record["pauses"][0]["reason"] == "video link down"
    assert record["pauses"][0]["resumed_at"] == room.now


def test_pause_outside_the_window_is_refused() -> None:
    room = Room()
    for name in "abc":
        room.submit(name)
    assert_refused(room, Pause(at=room.now, reason="x"), "too_early")
    room.tick(DEADLINE)
    assert_refused(room, Pause(at=room.now, reason="x"), "not_decrypting")
    room.ok(Start(at=room.now))
    assert_refused(room, Pause(at=room.now, reason=""), "invalid_request")
    assert_refused(room, Pause(at=room.now, reason="x" * 2001), "invalid_request")


# ---------------------------------------------------------------------- announcement
def test_the_last_bid_to_settle_announces_at_once() -> None:
    room = Room()
    room.started()
    room.unlock("c", "300")
    room.unlock("a", "100.5")
    decision = room.unlock("b", "200")
    assert kinds(decision) == ["bid_decrypted", "announced"]
    announced = decision.events[1].public()
    assert announced is not None and announced["trigger"] == "all_settled"
    rows = announced["read_out"]
    assert [(r["bidder"], r["outcome"], r["summary"]["price"]) for r in rows] == [
        ("a", "decrypted", "100.5"), ("b", "decrypted", "200"), ("c", "decrypted", "300")]
    assert rows[0]["name"] == "A Co."
    assert room.tender.state is S.ANNOUNCED and room.tender.next_deadline() is None


def test_at_the_window_end_missing_bids_are_withdrawn_or_absent() -> None:
    room = Room(bidders="abcd")
    for name in "abcd":
        room.submit(name)
    room.clock.at(CHECK_IN_FROM)
    room.check_in("a")
    room.check_in("b")
    room.clock.at(DEADLINE)
    room.ok(Start(at=room.now))
    room.unlock("a")
    decision = room.tick(DEADLINE + WINDOW + 7)
    assert_events(decision, [
        ("window_ended", {"at": DEADLINE + WINDOW,
                          "outcomes": {"b": "withdrawn", "c": "absent", "d": "absent"}}),
        ("announced", {"at": DEADLINE + WINDOW, "trigger": "window_end"})])
    outcomes = {r["bidder"]: r["outcome"] for r in room.tender.public_view()["read_out"]}
    assert outcomes == {"a": "decrypted", "b": "withdrawn", "c": "absent", "d": "absent"}


def test_a_key_released_in_time_waits_for_its_decryption_after_the_window() -> None:
    room = Room()
    room.started()
    room.unlock("a")
    room.release("b")
    decision = room.tick(DEADLINE + WINDOW)
    assert_events(decision, [("window_ended", {"outcomes": {"c": "withdrawn"}})])
    assert room.tender.state is S.DECRYPTING
    assert room.tender.public_view()["counts"]["waiting"] == 1
    assert_refused(room, ReleaseKey(at=room.now, bidder="c"), "not_decrypting")
    assert_refused(room, Pause(at=room.now, reason="x"), "not_decrypting")
    room.clock.advance(HOUR)
    decision = room.decrypted("b")
    assert kinds(decision) == ["bid_decrypted", "announced"]
    assert decision.events[1].trigger == "all_settled"  # type: ignore[attr-defined]


def test_a_settled_opening_announces_only_when_resumed() -> None:
    room = Room()
    room.started()
    room.unlock("a")
    room.unlock("b")
    room.release("c")
    room.ok(Pause(at=room.now, reason="power"))
    assert kinds(room.decrypted("c")) == ["bid_decrypted"]
    assert kinds(room.ok(Resume(at=room.clock.advance(MINUTE)))) == ["resumed", "announced"]


# ---------------------------------------------------------------------- objections and record
def announced_room() -> Room:
    room = Room(bidders="abcd")
    room.started("abc")
    for name in "abc":
        room.unlock(name)
    assert room.tender.state is S.ANNOUNCED
    return room


def test_objections_answers_confirmations_and_close() -> None:
    room = announced_room()
    assert_refused(room, Object(at=room.now, bidder="a", objection_id="o1", text="x"),
                   "wrong_state")
    assert_refused(room, Close(at=room.now), "wrong_state")
    opened = room.ok(OpenObjections(at=room.now))
    until = room.now + 5 * MINUTE
    assert_events(opened, [("objections_opened", {"until": until})])
    assert_refused(room, OpenObjections(at=room.now), "wrong_state")
    raised = room.ok(Object(at=room.now, bidder="b", objection_id="o1", text=" price of a "))
    assert raised.events[0].public() == {"kind": "objection_raised", "at": room.now,
                                         "bidder": "b", "objection_id": "o1",
                                         "text": "price of a"}
    assert_refused(room, Object(at=room.now, bidder="c", objection_id="o1", text="y"),
                   "objection_exists")
    assert_refused(room, Object(at=room.now, bidder="d", objection_id="o2", text="y"), "no_bid")
    assert_refused(room, Object(at=room.now, bidder="c", objection_id="bad id", text="y"),
                   "invalid_request")
    assert_refused(room, Answer(at=room.now, objection_id="o9", text="y"), "unknown_objection")
    room.clock.at(until)
    assert_refused(room, Object(at=room.now, bidder="c", objection_id="o3", text="y"),
                   "objection_window_closed")
    assert_refused(room, Close(at=room.now), "objections_pending")
    room.ok(Answer(at=room.now, objection_id="o1", text="checked: correct"))
    assert_refused(room, Answer(at=room.now, objection_id="o1", text="again"),
                   "already_answered")
    room.ok(Confirm(at=room.now, bidder="a"))
    assert_refused(room, Confirm(at=room.now, bidder="a"), "already_confirmed")
    assert_events(room.ok(Close(at=room.now)), [("closed", {"at": until})])
    room.ok(Confirm(at=room.now, bidder="b"))  # confirmations continue after the close
    assert_refused(room, Answer(at=room.now, objection_id="o1", text="z"), "tender_finished")
    record = room.tender.record()
    assert record["objections"][0]["answer"] == "checked: correct"
    assert [c["bidder"] for c in record["confirmations"]] == ["a", "b"]
    assert record["times"]["closed"] == until
    assert room.tender.public_view()["confirmed"] == ["a", "b"]


def test_close_waits_for_the_objection_window() -> None:
    room = announced_room()
    room.ok(OpenObjections(at=room.now))
    assert_refused(room, Close(at=room.now + 5 * MINUTE - 1), "objection_window_open")


def test_confirm_only_after_the_announcement_and_only_with_a_bid() -> None:
    room = Room(bidders="abcd")
    room.started("abc")
    assert_refused(room, Confirm(at=room.now, bidder="a"), "wrong_state")
    for name in "abc":
        room.unlock(name)
    assert_refused(room, Confirm(at=room.now, bidder="d"), "no_bid")
    assert kinds(room.ok(Confirm(at=room.now, bidder="a"))) == ["record_confirmed"]


# ---------------------------------------------------------------------- failing
def test_declare_failed_from_any_running_state_and_nothing_after() -> None:
    assert_refused(Room(publish=False), DeclareFailed(at=0, reason="x"), "wrong_state")
    room = Room()
    room.started()
    room.release("a")
    assert_refused(room, DeclareFailed(at=room.now, reason=" "), "invalid_request")
    decision = room.ok(DeclareFailed(at=room.now, reason="complaint upheld"))
    assert_events(decision, [("failed", {"code": "declared", "text": "complaint upheld"})])
    for command in (RecordDecryption(at=room.now, bidder="a", ok=True, summary=summary()),
                    Confirm(at=room.now, bidder="a"), Pause(at=room.now, reason="x"),
                    DeclareFailed(at=room.now, reason="again")):
        assert_refused(room, command, "tender_finished")
    assert room.tick(room.now + 10 * HOUR).events == ()
    assert room.tender.public_view()["failure"]["text"] == "complaint upheld"


def test_bad_time_is_refused() -> None:
    room = Room()
    assert_refused(room, Tick(at="now"), "invalid_request")  # type: ignore[arg-type]


def test_every_refusal_code_has_a_message() -> None:
    assert all(code == code.lower() and message for code, message in CODES.items())
