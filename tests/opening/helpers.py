"""Test helpers that speak the tender's language: a fake clock, an opening room, assertions."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opening import (
    HOUR,
    MINUTE,
    Answer,
    CheckIn,
    Close,
    Command,
    Confirm,
    CreateTender,
    Decision,
    Event,
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
    Tender,
    TenderTerms,
    Tick,
    WithdrawBid,
)

DEADLINE = 1_800_000_000_000
CHECK_IN_FROM = DEADLINE - 60 * MINUTE
CREATED = DEADLINE - 24 * 60 * MINUTE


def key_for(bidder: str) -> tuple[str, str]:
    """A stand-in public key (65 bytes, SEC1 uncompressed form) and its fingerprint."""
    raw = b"\x04" + hashlib.sha256(bidder.encode()).digest() * 2
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), hashlib.sha256(raw).hexdigest()


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def summary(price: str = "1000000.00") -> dict[str, str | int]:
    return {"price": price, "duration_days": 180, "manager": "Li Wei"}


@dataclass
class Clock:
    now: int = CREATED

    def at(self, when: int) -> int:
        self.now = max(self.now, when)
        return self.now

    def advance(self, ms: int) -> int:
        self.now += ms
        return self.now


class Room:
    """One tender driven like the server drives it, with a fake clock and every event kept."""

    def __init__(self, bidders: Iterable[str] = ("a", "b", "c"), publish: bool = True,
                 **terms: Any) -> None:
        self.clock = Clock()
        fields: dict[str, Any] = {"deadline": DEADLINE, "check_in_from": CHECK_IN_FROM}
        fields.update(terms)
        self.terms = TenderTerms(**fields)
        self.tender = Tender()
        self.events: list[Event] = []
        self.ok(CreateTender(at=self.clock.now, tender_id="T1", title="Road works, section 2",
                             terms=self.terms))
        for name in bidders:
            self.register(name)
        if publish:
            self.ok(Publish(at=self.clock.now))

    def do(self, command: Command) -> Decision:
        decision = self.tender.handle(command)
        self.events.extend(decision.events)
        return decision

    def ok(self, command: Command) -> Decision:
        decision = self.do(command)
        assert decision.refusal is None, decision.refusal
        return decision

    @property
    def now(self) -> int:
        return self.clock.now

    def register_cmd(self, bidder: str, public_key: str | None = None,
                     fingerprint: str | None = None) -> RegisterBidder:
        key, digest = key_for(bidder)
        return RegisterBidder(at=self.now, bidder=bidder, name=f"{bidder.upper()} Co.",
                              public_key=public_key or key, fingerprint=fingerprint or digest)

    def register(self, bidder: str) -> Decision:
        return self.do(self.register_cmd(bidder))

    def submit(self, bidder: str, version: str = "1") -> Decision:
        return self.do(SubmitBid(at=self.now, bidder=bidder, upload=f"up-{bidder}-{version}",
                                 sha256=sha(bidder + version), size=4096))

    def check_in(self, bidder: str) -> Decision:
        return self.do(CheckIn(at=self.now, bidder=bidder))

    def tick(self, when: int) -> Decision:
        return self.do(Tick(at=self.clock.at(when)))

    def release(self, bidder: str) -> Decision:
        return self.do(ReleaseKey(at=self.now, bidder=bidder))

    def decrypted(self, bidder: str, price: str = "1000000.00") -> Decision:
        return self.do(RecordDecryption(at=self.now, bidder=bidder, ok=True,
                                        summary=summary(price)))

    def unlock(self, bidder: str, price: str = "1000000.00") -> Decision:
        """Release the bidder's key and record a successful decryption."""
        assert self.release(bidder).refusal is None
        return self.decrypted(bidder, price)

    def started(self, bidders: Iterable[str] = ("a", "b", "c"), check_in: bool = True) -> None:
        """Bids from ``bidders``, check-ins, the deadline, and the host's start."""
        names = list(bidders)
        for name in names:
            assert self.submit(name).refusal is None
        self.clock.at(CHECK_IN_FROM)
        if check_in:
            for name in names:
                assert self.check_in(name).refusal is None
        self.clock.at(DEADLINE)
        self.ok(Start(at=self.now))

    def replayed(self) -> Tender:
        return Tender.replay(self.events)

    def views(self) -> tuple[Any, ...]:
        t = self.tender
        return (t.public_view(), t.staff_view(), t.record(),
                {b: t.bidder_view(b) for b in t.bidders}, t.next_deadline(),
                (t.seq, t.pseq, t.clock))


def full_opening() -> Room:
    """A tender taken through every step of an opening, with one of each kind of event."""
    room = Room(bidders="abcde")
    for name in "abcde":
        room.submit(name)
    room.ok(WithdrawBid(at=room.now, bidder="e"))
    room.clock.at(CHECK_IN_FROM)
    for name in "abc":
        room.check_in(name)
    room.clock.at(DEADLINE)
    room.ok(Start(at=room.now))
    room.ok(Pause(at=room.clock.advance(MINUTE), reason="stream"))
    room.ok(Resume(at=room.clock.advance(MINUTE)))
    room.unlock("a")
    room.release("b")
    room.do(RecordDecryption(at=room.now, bidder="b", ok=False, reason="bad chunk"))
    room.tick(DEADLINE + 2 * HOUR)
    room.ok(OpenObjections(at=room.now))
    room.ok(Object(at=room.now, bidder="a", objection_id="o1", text="why absent"))
    room.ok(Answer(at=room.now, objection_id="o1", text="no key"))
    room.ok(Confirm(at=room.now, bidder="a"))
    room.ok(Close(at=room.clock.advance(HOUR)))
    return room


def kinds(decision: Decision) -> list[str]:
    return [e.KIND for e in decision.events]


def assert_events(decision: Decision, expected: list[tuple[str, dict[str, Any]]]) -> None:
    """``decision`` produced exactly these event kinds, each with at least these fields."""
    assert decision.refusal is None, decision.refusal
    assert kinds(decision) == [k for k, _ in expected], kinds(decision)
    for event, (_, fields) in zip(decision.events, expected, strict=True):
        for name, value in fields.items():
            assert getattr(event, name) == value, (event, name, value)


def assert_refused(room: Room, command: Command, code: str) -> Decision:
    """``command`` is refused with ``code`` and changes nothing at all."""
    if type(command.at) is int and room.tender.terms is not None:
        room.do(Tick(at=command.at))  # let time do its part first
    before = room.views()
    decision = room.do(command)
    assert decision.refusal is not None, f"expected {code}, got events {kinds(decision)}"
    assert decision.refusal.code == code, decision.refusal
    assert decision.events == () and decision.primary is None
    assert room.views() == before
    return decision
