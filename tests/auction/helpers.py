"""Test helpers that speak the domain: a fake clock, a lot with bidders, event assertions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from auction import (
    HOUR,
    MINUTE,
    Command,
    Decision,
    Event,
    Lot,
    OpenLot,
    PlaceBid,
    QualifyBidder,
    Tick,
    preset,
)

T0 = 1_800_000_000_000  # listing opens here


@dataclass
class Clock:
    now: int = T0 - MINUTE

    def advance(self, ms: int) -> int:
        self.now += ms
        return self.now

    def at(self, when: int) -> int:
        self.now = max(self.now, when)
        return self.now


class Hall:
    """One lot driven like the sequencer drives it, with a fake clock."""

    def __init__(self, preset_name: str = "suzhou", bidders: Iterable[str] = ("a", "b", "c"),
                 listing: int = 2 * HOUR, **overrides: Any) -> None:
        self.clock = Clock()
        fields: dict[str, Any] = {"start_price": 1_000_000, "deposit": 200_000,
                                  "listing_increment": 10_000, "listing_start": T0,
                                  "listing_end": T0 + listing}
        fields.update(overrides)
        self.terms = preset(preset_name, **fields)
        self.lot = Lot()
        self.events: list[Event] = []
        self.do(OpenLot(at=self.clock.now, lot_id="L1", title="t", terms=self.terms,
                        paddle_seed="00ff"))
        for name in bidders:
            self.do(QualifyBidder(at=self.clock.now, bidder=name, deposit_ref=f"ref-{name}"))

    def do(self, command: Command) -> Decision:
        decision = self.lot.handle(command)
        self.events.extend(decision.events)
        return decision

    def bid(self, bidder: str, amount: int, at: int | None = None) -> Decision:
        if at is not None:
            self.clock.at(at)
        return self.do(PlaceBid(at=self.clock.now, bidder=bidder, amount=amount,
                                bid_id=f"{bidder}-{amount}-{len(self.events)}"))

    def tick(self, at: int) -> Decision:
        return self.do(Tick(at=self.clock.at(at)))

    def replayed(self) -> Lot:
        return Lot.replay(self.events)


def kinds(decision: Decision) -> list[str]:
    return [e.KIND for e in decision.events]


def assert_events(decision: Decision, expected: list[tuple[str, dict[str, Any]]]) -> None:
    """``decision`` produced exactly these event kinds, each with at least these fields."""
    assert decision.refusal is None, decision.refusal
    assert kinds(decision) == [k for k, _ in expected], kinds(decision)
    for event, (_, fields) in zip(decision.events, expected, strict=True):
        for name, value in fields.items():
            assert getattr(event, name) == value, (event, name, value)


def assert_refused(decision: Decision, code: str) -> None:
    assert decision.refusal is not None, f"expected {code}, got events {kinds(decision)}"
    assert decision.refusal.code == code, decision.refusal
