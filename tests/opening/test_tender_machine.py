"""Invariants of a tender under random commands at random times (Hypothesis state machine).

Checked after every step, against the events the tender emitted:
- seq is gapless from 1; pseq is gapless over public events, ``None`` on private ones;
- no bid is accepted at or after the deadline, or outside ``accepting``;
- no key is released before the start (never in draft, accepting or deadline);
- fewer than ``min_bids`` bids at the start -> failed, never decrypting;
- after the announcement no bid is ``waiting``;
- before the start no public event names a bidder or counts bids; a decision made of
  private events only leaves the public view as it was;
- a refused command changes nothing but what time alone would have changed;
- replaying every event rebuilds the same tender (every view) at every step;
- nothing changes after closed or failed, except confirmations after closed.

Below the machine: a full opening replays to the same record, and every kind of event
survives a JSON round trip (the way the server stores events).
"""

from __future__ import annotations

import pickle
from typing import Any

import msgspec
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from opening import (
    EVENT_TYPES,
    HOUR,
    MINUTE,
    Announced,
    Answer,
    BidSubmitted,
    BidWithdrawn,
    CheckedIn,
    CheckIn,
    Close,
    Command,
    Confirm,
    CreateTender,
    DeclareFailed,
    Event,
    Failed,
    KeyReleased,
    Object,
    OpenObjections,
    Outcome,
    Pause,
    Paused,
    Publish,
    RecordDecryption,
    RegisterBidder,
    ReleaseKey,
    Resume,
    Resumed,
    Start,
    Started,
    SubmitBid,
    Tender,
    TenderState,
    TenderTerms,
    Tick,
    WindowEnded,
    WithdrawBid,
)
from tests.opening.helpers import DEADLINE, Room, full_opening, key_for, sha, summary

S = TenderState
T0 = 1_800_000_000_000
NAMES = ["a", "b", "c", "d", "zed"]  # zed never registers
TIME_KINDS = {"deadline_passed", "window_ended", "announced"}
SETTLED = {Outcome.DECRYPTED, Outcome.FAILED, Outcome.ABSENT, Outcome.WITHDRAWN}
who = st.sampled_from(NAMES)
gap = st.one_of(st.integers(0, 2_000), st.integers(0, 2 * MINUTE))
long_gap = st.one_of(st.integers(0, 20 * MINUTE), st.integers(0, 2 * HOUR))


def views(t: Tender) -> tuple[Any, ...]:
    return (t.public_view(), t.staff_view(), t.record(),
            {b: t.bidder_view(b) for b in NAMES}, t.next_deadline(), (t.seq, t.pseq, t.clock))


class TenderMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tender = Tender()
        self.events: list[Event] = []
        self.now = T0
        self.seq = self.pseq = 0
        # The model, folded from the events alone.
        self.state: S | None = None
        self.live: set[str] = set()  # bids in force before the start
        self.received: set[str] = set()
        self.checked_in: set[str] = set()
        self.settled: set[str] = set()
        self.objection_ids = 0
        self.window_end: int | None = None
        self.paused_at: int | None = None

    @initialize(min_bids=st.integers(1, 3), window=st.sampled_from([1, 10, 30, 60]),
                submit_for=st.integers(20, 120), bidders=st.integers(2, 4),
                draft=st.integers(0, 7), early_bids=st.integers(0, 4))
    def create(self, min_bids: int, window: int, submit_for: int, bidders: int,
               draft: int, early_bids: int) -> None:
        self.terms = TenderTerms(deadline=T0 + submit_for * MINUTE,
                                 check_in_from=T0 + submit_for * MINUTE // 2,
                                 decrypt_window=window * MINUTE, min_bids=min_bids)
        self.do(CreateTender(at=self.now, tender_id="T", title="t", terms=self.terms))
        for name in NAMES[:bidders]:
            key, fingerprint = key_for(name)
            self.do(RegisterBidder(at=self.now, bidder=name, name=name, public_key=key,
                                   fingerprint=fingerprint))
        if draft:  # mostly published, sometimes left in draft a while
            self.do(Publish(at=self.now))
        for name in NAMES[:early_bids]:
            self.do(SubmitBid(at=self.now, bidder=name, upload="early", sha256=sha(name),
                              size=9))

    # ------------------------------------------------------------------ driving
    def later(self, ms: int) -> int:
        self.now += ms
        return self.now

    def do(self, command: Command) -> None:
        shadow = Tender.replay(self.events)
        shadow.handle(Tick(at=command.at))
        public_before = self.tender.public_view() if self.tender.terms else None
        # A fork decides the same as the tender itself and leaves the tender untouched.
        untouched = pickle.dumps(self.tender)
        forked = self.tender.fork()
        on_fork = forked.handle(command)
        assert pickle.dumps(self.tender) == untouched, "deciding on a fork changed the tender"
        decision = self.tender.handle(command)
        assert (on_fork.events, on_fork.primary) == (decision.events, decision.primary)
        assert str(on_fork.refusal) == str(decision.refusal)
        assert self.tender.terms is None or views(forked) == views(self.tender)
        for event in decision.events:
            self.check(event)
            self.events.append(event)
        if decision.refusal is not None:
            assert decision.primary is None
            assert {e.KIND for e in decision.events} <= TIME_KINDS, decision
            if shadow.terms is not None:
                assert views(self.tender) == views(shadow), "a refusal changed something"
        elif public_before is not None and all(e.pseq is None for e in decision.events):
            assert self.tender.public_view() == public_before, "a private event leaked"

    @rule(ms=long_gap)
    def wait(self, ms: int) -> None:
        self.do(Tick(at=self.later(ms)))

    @rule(offset=st.integers(-1, 1))
    def wait_for_the_next_deadline(self, offset: int) -> None:
        due = self.tender.next_deadline()
        if due is not None:
            self.now = max(self.now, due + offset)
        self.do(Tick(at=self.now))

    @rule(name=who, ms=gap, version=st.integers(0, 3))
    def submit(self, name: str, ms: int, version: int) -> None:
        self.do(SubmitBid(at=self.later(ms), bidder=name, upload=f"u{version}",
                          sha256=sha(f"{name}{version}"), size=100 + version))

    @rule(count=st.integers(2, 4), ms=gap)
    def everyone_submits(self, count: int, ms: int) -> None:
        for name in NAMES[:count]:
            self.do(SubmitBid(at=self.later(ms // 4), bidder=name, upload="all",
                              sha256=sha(name), size=7))

    @rule(count=st.integers(1, 4), ms=gap)
    def everyone_checks_in(self, count: int, ms: int) -> None:
        for name in NAMES[:count]:
            self.do(CheckIn(at=self.later(ms // 4), bidder=name))

    @rule(name=who, ok=st.integers(0, 4), ms=gap)
    def unlock(self, name: str, ok: int, ms: int) -> None:
        self.do(ReleaseKey(at=self.later(ms), bidder=name))
        self.do(RecordDecryption(at=self.now, bidder=name, ok=ok > 0,
                                 summary=summary() if ok else None,
                                 reason="" if ok else "bad chunk"))

    @rule(name=who, offset=st.integers(-2, 2))
    def submit_at_the_deadline(self, name: str, offset: int) -> None:
        self.now = max(self.now, self.terms.deadline + offset)
        self.do(SubmitBid(at=self.now, bidder=name, upload="edge", sha256=sha(name), size=1))

    @rule(name=who, ms=gap)
    def withdraw(self, name: str, ms: int) -> None:
        self.do(WithdrawBid(at=self.later(ms), bidder=name))

    @rule(name=who, ms=gap)
    def check_in(self, name: str, ms: int) -> None:
        self.do(CheckIn(at=self.later(ms), bidder=name))

    @rule(name=who)
    def register_late(self, name: str) -> None:
        key, fingerprint = key_for(name)
        self.do(RegisterBidder(at=self.now, bidder=name, name=name, public_key=key,
                               fingerprint=fingerprint))

    @rule()
    def publish(self) -> None:
        self.do(Publish(at=self.now))

    @rule(ms=long_gap, really=st.integers(0, 3))
    def start(self, ms: int, really: int) -> None:
        if really:  # now and then, early or with too few bids
            return
        self.do(Start(at=self.later(ms)))

    @precondition(lambda self: len(self.live) >= self.terms.min_bids)
    @rule(ms=gap)
    def start_on_time(self, ms: int) -> None:
        self.now = max(self.now, self.terms.deadline + ms)
        self.do(Start(at=self.now))

    @rule(ms=gap, reason=st.sampled_from(["stream down", "power", "video", " ", "x" * 2001]))
    def pause(self, ms: int, reason: str) -> None:
        self.do(Pause(at=self.later(ms), reason=reason))

    @rule(ms=gap)
    def resume(self, ms: int) -> None:
        self.do(Resume(at=self.later(ms)))

    @rule(name=who, ms=st.integers(0, 5 * MINUTE))
    def release_key(self, name: str, ms: int) -> None:
        self.do(ReleaseKey(at=self.later(ms), bidder=name))

    @rule(name=who, ok=st.booleans(), ms=st.integers(0, 5 * MINUTE))
    def record_decryption(self, name: str, ok: bool, ms: int) -> None:
        self.do(RecordDecryption(at=self.later(ms), bidder=name, ok=ok,
                                 summary=summary() if ok else None,
                                 reason="" if ok else "bad key"))

    @rule(name=who, offset=st.integers(-2, 2))
    def release_at_the_window_end(self, name: str, offset: int) -> None:
        end = self.tender.window_end
        if end is not None:
            self.now = max(self.now, end + offset)
        self.do(ReleaseKey(at=self.now, bidder=name))

    @rule(ms=gap)
    def open_objections(self, ms: int) -> None:
        self.do(OpenObjections(at=self.later(ms)))

    @rule(name=who, ms=st.integers(0, 3 * MINUTE), fresh=st.booleans())
    def object(self, name: str, ms: int, fresh: bool) -> None:
        self.objection_ids += fresh
        self.do(Object(at=self.later(ms), bidder=name, objection_id=f"o{self.objection_ids}",
                       text="why"))

    @rule(number=st.integers(0, 4), ms=st.integers(0, 3 * MINUTE))
    def answer(self, number: int, ms: int) -> None:
        self.do(Answer(at=self.later(ms), objection_id=f"o{number}", text="because"))

    @rule(name=who, ms=gap)
    def confirm(self, name: str, ms: int) -> None:
        self.do(Confirm(at=self.later(ms), bidder=name))

    @rule(ms=gap)
    def close(self, ms: int) -> None:
        self.do(Close(at=self.later(ms)))

    @rule(ms=gap, really=st.integers(0, 9))
    def declare_failed(self, ms: int, really: int) -> None:
        if really == 0:  # rare, or the machine would spend its steps on failed tenders
            self.do(DeclareFailed(at=self.later(ms), reason="complaint"))

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
            if self.state in (None, S.DRAFT, S.ACCEPTING, S.DEADLINE) and event.KIND != "started":
                assert not {"bidder", "bids", "count"} & set(public), public
        assert self.state is not S.FAILED, f"{event.KIND} after failed"
        if self.state is S.CLOSED:
            assert event.KIND == "record_confirmed", f"{event.KIND} after closed"
        if isinstance(event, BidSubmitted):
            assert self.state is S.ACCEPTING and event.at < self.terms.deadline
            self.live.add(event.bidder)
        elif isinstance(event, BidWithdrawn):
            assert self.state is S.ACCEPTING and event.at < self.terms.deadline
            self.live.discard(event.bidder)
        elif isinstance(event, KeyReleased):
            assert self.state is S.DECRYPTING, "a key released outside the window"
            assert event.bidder in self.received and event.bidder not in self.settled
        elif isinstance(event, Started):
            assert self.state is S.DEADLINE
            assert len(self.live) >= self.terms.min_bids, "opened with too few bids"
            assert [b["bidder"] for b in event.bids] == sorted(self.live)
            self.received = set(self.live)
            assert event.window_end == event.at + self.terms.decrypt_window
            self.window_end = event.window_end
        elif isinstance(event, Paused):
            assert self.window_end is not None and event.at < self.window_end
            self.paused_at = event.at
        elif isinstance(event, Resumed):
            assert self.window_end is not None and self.paused_at is not None
            self.window_end += event.at - self.paused_at  # paused time does not count
            assert event.window_end == self.window_end
            self.paused_at = None
        elif isinstance(event, WindowEnded):
            assert self.paused_at is None and event.at == self.window_end
            for name, outcome in event.outcomes.items():
                assert outcome == (Outcome.WITHDRAWN if name in self.checked_in
                                   else Outcome.ABSENT)
            self.settled |= set(event.outcomes)
        elif isinstance(event, CheckedIn):
            assert self.terms.check_in_from <= event.at
            # while paused the window cannot end: its end moves on when the host resumes
            assert self.window_end is None or self.paused_at is not None \
                or event.at < self.window_end
            self.checked_in.add(event.bidder)
        elif isinstance(event, Failed) and event.code == "too_few_bids":
            assert self.state is S.DEADLINE and len(self.live) < self.terms.min_bids
        elif event.KIND in ("bid_decrypted", "decryption_failed"):
            self.settled.add(event.bidder)  # type: ignore[attr-defined]
        elif isinstance(event, Announced):
            assert self.settled == self.received, "announced with bids still waiting"
            assert all(r["outcome"] in SETTLED for r in event.read_out)
            assert [r["bidder"] for r in event.read_out] == sorted(self.received)
        self.state = {
            "tender_created": S.DRAFT, "published": S.ACCEPTING, "deadline_passed": S.DEADLINE,
            "started": S.DECRYPTING, "announced": S.ANNOUNCED,
            "objections_opened": S.OBJECTIONS, "closed": S.CLOSED, "failed": S.FAILED,
        }.get(event.KIND, self.state)

    @invariant()
    def replay_rebuilds_the_same_tender(self) -> None:
        if self.tender.terms is not None:
            assert views(Tender.replay(self.events)) == views(self.tender)
            assert self.tender.state is self.state

    @invariant()
    def outcomes_fit_the_state(self) -> None:
        t = self.tender
        for bid in t.bids.values():
            assert bid.submitted_at < self.terms.deadline
            if t.times["started"] is None:
                assert bid.key_released_at is None
                assert bid.outcome in (None, Outcome.WITHDRAWN)
            if t.state in (S.ANNOUNCED, S.OBJECTIONS, S.CLOSED) and bid.received:
                assert bid.outcome in SETTLED, bid


def test_replay_rebuilds_the_same_tender() -> None:
    room = full_opening()
    again = Tender.replay(room.events)
    assert (again.public_view(), again.staff_view(), again.record()) == (
        room.tender.public_view(), room.tender.staff_view(), room.tender.record())
    assert room.tender.record()["bids"][4]["outcome"] == "withdrawn"


def test_every_event_kind_round_trips_through_json() -> None:
    room = full_opening()
    failed = Room()
    failed.ok(Start(at=DEADLINE))
    events = room.events + failed.events
    assert {e.KIND for e in events} == set(EVENT_TYPES)
    encoder = msgspec.json.Encoder()
    for event in events:
        decoded = msgspec.json.Decoder(EVENT_TYPES[event.KIND]).decode(encoder.encode(event))
        assert decoded == event
    assert Tender.replay(
        msgspec.json.Decoder(EVENT_TYPES[e.KIND]).decode(encoder.encode(e)) for e in room.events
    ).record() == room.tender.record()


TestTenderMachine = TenderMachine.TestCase
TestTenderMachine.settings = settings(max_examples=300, stateful_step_count=80, deadline=None,
                                      suppress_health_check=[HealthCheck.too_slow])
