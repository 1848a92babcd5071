"""The state a tender's events build, and what each audience may see of it.

:class:`Ledger` holds the facts (bidders, bids, the opening's times, objections)
and changes only through :meth:`Ledger.apply`; :class:`opening.tender.Tender` adds
the decisions on top. Every view is built from this state alone, and
:meth:`Ledger.public_view` only from what public events said.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any, Final, Self

from .errors import InvariantBroken
from .events import (
    Announced,
    BidDecrypted,
    BidderRegistered,
    BidSubmitted,
    BidWithdrawn,
    CheckedIn,
    Closed,
    DeadlinePassed,
    DecryptionFailed,
    Event,
    Failed,
    KeyReleased,
    ObjectionAnswered,
    ObjectionRaised,
    ObjectionsOpened,
    Paused,
    Published,
    ReadOutRow,
    RecordConfirmed,
    Resumed,
    Started,
    TenderCreated,
    WindowEnded,
)
from .states import REGISTRATION, Outcome
from .states import TenderState as S
from .states import Trigger as T
from .states import check as check_transition
from .terms import TenderTerms

_TIMES: Final = ("created", "published", "deadline_passed", "started", "window_ended",
                 "announced", "closed")


# Bidders, bids and objections are frozen: an event replaces a record instead of changing
# it, so a fork shares every record and copies only the dicts that hold them.
@dataclass(frozen=True, slots=True)
class Bidder:
    bidder: str
    name: str
    public_key: str
    fingerprint: str
    registered_at: int
    checked_in_at: int | None = None
    confirmed_at: int | None = None


@dataclass(frozen=True, slots=True)
class Bid:
    """A bidder's current bid; a new submission replaces it (``versions`` counts them)."""

    bidder: str
    upload: str
    sha256: str
    size: int
    submitted_at: int
    versions: int = 1
    withdrawn_at: int | None = None
    received: bool = False  # listed at the start
    key_released_at: int | None = None
    outcome: Outcome | None = None
    reason: str = ""
    settled_at: int | None = None
    summary: dict[str, str | int] | None = None


@dataclass(frozen=True, slots=True)
class Objection:
    objection_id: str
    bidder: str
    text: str
    at: int
    answer: str | None = None
    answered_at: int | None = None

class Ledger:
    """A tender's state as its events tell it. Change it only through :meth:`apply`."""

    def __init__(self) -> None:
        self.seq = 0
        self.pseq = 0
        self.clock = 0
        self.tender_id = ""
        self.title = ""
        self.terms: TenderTerms | None = None
        self.state: S | None = None
        self.bidders: dict[str, Bidder] = {}
        self.bids: dict[str, Bid] = {}
        self.times: dict[str, int | None] = dict.fromkeys(_TIMES)
        self.window_end: int | None = None
        self.paused_at: int | None = None
        self.pauses: list[dict[str, Any]] = []
        self.announce_trigger: T | None = None
        self.read_out: tuple[ReadOutRow, ...] | None = None
        self.objections_until: int | None = None
        self.objections: dict[str, Objection] = {}
        self.failure: dict[str, Any] | None = None
    def fork(self) -> Self:
        """An independent copy to decide on: the dicts and lists are copied; the records
        in them (frozen), terms, events, read-out rows and summaries, never changed in
        place, are shared. A few microseconds per hundred bidders."""
        twin = copy.copy(self)
        twin.bidders = dict(self.bidders)
        twin.bids = dict(self.bids)
        twin.objections = dict(self.objections)
        twin.times = dict(self.times)
        twin.pauses = [dict(p) for p in self.pauses]
        twin.failure = None if self.failure is None else dict(self.failure)
        return twin

    @property
    def _terms(self) -> TenderTerms:
        if self.terms is None:
            raise InvariantBroken("tender not created")
        return self.terms

    def next_deadline(self) -> int | None:
        """The next time at which a :class:`Tick` would change this tender, or ``None``."""
        if self.state is S.ACCEPTING:
            return self._terms.deadline
        if (self.state is S.DECRYPTING and self.paused_at is None
                and self.times["window_ended"] is None):
            return self.window_end
        return None
    def apply(self, event: Event) -> None:
        """Apply one stored or new event. Raises :class:`InvariantBroken` if it does not fit."""
        if event.seq != self.seq + 1:
            raise InvariantBroken(f"event seq {event.seq} after {self.seq}")
        expected_pseq = self.pseq + 1 if type(event).public is not Event.public else None
        if event.pseq != expected_pseq:
            raise InvariantBroken(f"event pseq {event.pseq}, expected {expected_pseq}")
        if event.at < self.clock:
            raise InvariantBroken(f"event time {event.at} before {self.clock}")
        if (self.terms is None) != isinstance(event, TenderCreated):
            raise InvariantBroken(f"{event.KIND} does not fit a tender in state {self.state}")
        apply = _APPLY.get(type(event))
        if apply is None:
            raise InvariantBroken(f"unknown event {type(event).__name__}")
        apply(self, event)
        self.seq = event.seq
        self.pseq = event.pseq or self.pseq
        self.clock = event.at

    def _move(self, trigger: T, target: S) -> None:
        assert self.state is not None
        check_transition(self.state, trigger, target)
        self.state = target

    def _apply_created(self, e: TenderCreated) -> None:
        self.tender_id, self.title, self.terms, self.state = e.tender_id, e.title, e.terms, S.DRAFT
        self.times["created"] = e.at

    def _apply_registered(self, e: BidderRegistered) -> None:
        if e.bidder in self.bidders or self.state not in REGISTRATION:
            raise InvariantBroken(f"bidder {e.bidder} registered twice or too late")
        self.bidders[e.bidder] = Bidder(e.bidder, e.name, e.public_key, e.fingerprint, e.at)

    def _apply_published(self, e: Published) -> None:
        self._move(T.PUBLISH, S.ACCEPTING)
        self.times["published"] = e.at

    def _apply_submitted(self, e: BidSubmitted) -> None:
        if self.state is not S.ACCEPTING or e.bidder not in self.bidders:
            raise InvariantBroken("a bid outside the submission period or by a stranger")
        old = self.bids.get(e.bidder)
        self.bids[e.bidder] = Bid(e.bidder, e.upload, e.sha256, e.size, e.at,
                                  versions=old.versions + 1 if old else 1)

    def _apply_withdrawn(self, e: BidWithdrawn) -> None:
        self.bids[e.bidder] = replace(self.bids[e.bidder], withdrawn_at=e.at,
                                      outcome=Outcome.WITHDRAWN, settled_at=e.at)

    def _apply_checked_in(self, e: CheckedIn) -> None:
        self.bidders[e.bidder] = replace(self.bidders[e.bidder], checked_in_at=e.at)

    def _apply_deadline(self, e: DeadlinePassed) -> None:
        self._move(T.DEADLINE, S.DEADLINE)
        self.times["deadline_passed"] = e.at

    def _apply_started(self, e: Started) -> None:
        self._move(T.START, S.DECRYPTING)
        for row in e.bids:
            bidder = str(row["bidder"])
            bid = self.bids[bidder]
            if bid.withdrawn_at is not None:
                raise InvariantBroken("a withdrawn bid was listed at the start")
            self.bids[bidder] = replace(bid, received=True, outcome=Outcome.WAITING)
        self.times["started"], self.window_end = e.at, e.window_end

    def _apply_paused(self, e: Paused) -> None:
        self.paused_at = e.at
        self.pauses.append({"at": e.at, "reason": e.reason, "resumed_at": None,
                            "paused_for": None})

    def _apply_resumed(self, e: Resumed) -> None:
        self.paused_at, self.window_end = None, e.window_end
        self.pauses[-1].update(resumed_at=e.at, paused_for=e.paused_for)

    def _apply_key_released(self, e: KeyReleased) -> None:
        if self.state is not S.DECRYPTING or not self.bids[e.bidder].received:
            raise InvariantBroken("a key released outside the decryption window")
        self.bids[e.bidder] = replace(self.bids[e.bidder], key_released_at=e.at)

    def _settle(self, bidder: str, outcome: Outcome, at: int, reason: str = "",
                summary: dict[str, str | int] | None = None) -> None:
        bid = self.bids[bidder]
        if bid.outcome is not Outcome.WAITING:
            raise InvariantBroken(f"bid of {bidder} settled twice")
        self.bids[bidder] = replace(bid, outcome=outcome, reason=reason, settled_at=at,
                                    summary=summary)

    def _apply_decrypted(self, e: BidDecrypted) -> None:
        self._settle(e.bidder, Outcome.DECRYPTED, e.at, summary=dict(e.summary))

    def _apply_decryption_failed(self, e: DecryptionFailed) -> None:
        self._settle(e.bidder, Outcome.FAILED, e.at, e.reason)

    def _apply_window_ended(self, e: WindowEnded) -> None:
        for bidder, outcome in e.outcomes.items():
            self._settle(bidder, Outcome(outcome), e.at)
        self.times["window_ended"] = e.at

    def _apply_announced(self, e: Announced) -> None:
        self._move(e.trigger, S.ANNOUNCED)
        self.announce_trigger, self.read_out, self.times["announced"] = e.trigger, e.read_out, e.at

    def _apply_objections_opened(self, e: ObjectionsOpened) -> None:
        self._move(T.OPEN_OBJECTIONS, S.OBJECTIONS)
        self.objections_until = e.until

    def _apply_objection(self, e: ObjectionRaised) -> None:
        self.objections[e.objection_id] = Objection(e.objection_id, e.bidder, e.text, e.at)

    def _apply_answer(self, e: ObjectionAnswered) -> None:
        self.objections[e.objection_id] = replace(self.objections[e.objection_id],
                                                  answer=e.text, answered_at=e.at)

    def _apply_confirmed(self, e: RecordConfirmed) -> None:
        self.bidders[e.bidder] = replace(self.bidders[e.bidder], confirmed_at=e.at)

    def _apply_closed(self, e: Closed) -> None:
        self._move(T.CLOSE, S.CLOSED)
        self.times["closed"] = e.at

    def _apply_failed(self, e: Failed) -> None:
        self._move(e.trigger, S.FAILED)
        self.paused_at = None
        self.failure = {"code": e.code, "text": e.text, "at": e.at, "trigger": str(e.trigger)}
    # ------------------------------------------------------------------ views
    def public_view(self) -> dict[str, Any]:
        """What anyone may see now, built only from what public events said
        (``seq`` counts public events). Bids and counts appear from the start on."""
        started = self.times["started"] is not None
        bids = [b for _, b in sorted(self.bids.items()) if b.received]
        counts: dict[str, int] | None = None
        if started:
            counts = {str(o): 0 for o in Outcome}
            for b in bids:
                counts[str(b.outcome)] += 1
        paused = self.paused_at is not None
        return {
            "tender_id": self.tender_id, "title": self.title, "seq": self.pseq,
            "state": self.state, "terms": self._terms.as_dict(),
            "published_at": self.times["published"],
            "deadline_passed_at": self.times["deadline_passed"],
            "started_at": self.times["started"], "window_end": self.window_end,
            "paused": paused, "pause_reason": self.pauses[-1]["reason"] if paused else None,
            "window_ended_at": self.times["window_ended"],
            "bid_count": len(bids) if started else None, "counts": counts,
            "bids": [{"bidder": b.bidder, "name": self.bidders[b.bidder].name,
                      "sha256": b.sha256, "size": b.size, "submitted_at": b.submitted_at,
                      "outcome": b.outcome, "reason": b.reason or None} for b in bids]
            if started else None,
            "announced_at": self.times["announced"], "read_out": self._read_out(),
            "objections_until": self.objections_until, "objections": self._objections(),
            "confirmed": sorted(b.bidder for b in self.bidders.values() if b.confirmed_at),
            "failure": dict(self.failure) if self.failure else None,
            "closed_at": self.times["closed"],
        }

    def bidder_view(self, bidder: str) -> dict[str, Any] | None:
        """What ``bidder`` may see about itself, or ``None`` if it is not registered."""
        b = self.bidders.get(bidder)
        if b is None:
            return None
        bid = self.bids.get(bidder)
        current = bid if bid is not None and bid.withdrawn_at is None else None
        return {
            "bidder": b.bidder, "name": b.name, "fingerprint": b.fingerprint,
            "state": self.state, "registered_at": b.registered_at,
            "bid": None if current is None else {
                "upload": current.upload, "sha256": current.sha256, "size": current.size,
                "submitted_at": current.submitted_at, "versions": current.versions},
            "withdrawn": bid is not None and bid.withdrawn_at is not None,
            "checked_in": b.checked_in_at is not None, "checked_in_at": b.checked_in_at,
            "received": bid is not None and bid.received,
            "key_released": bid is not None and bid.key_released_at is not None,
            "outcome": bid.outcome if bid else None, "reason": bid.reason or None if bid else None,
            "confirmed": b.confirmed_at is not None,
        }

    def record(self) -> dict[str, Any]:
        """The opening record (开标记录): terms, every bid with its outcome, reason and times
        (a bid withdrawn before the deadline included), check-ins, pauses, the read-out,
        objections with answers, confirmations, the failure reason and the closing time."""
        return {
            "tender_id": self.tender_id, "title": self.title, "state": self.state,
            "terms": self._terms.as_dict(), "times": dict(self.times),
            "window_end": self.window_end, "announce_trigger": self.announce_trigger,
            "bids": [_bid_row(b, self.bidders[b.bidder]) for _, b in sorted(self.bids.items())],
            "check_ins": [{"bidder": b.bidder, "name": b.name, "at": b.checked_in_at}
                          for b in sorted(self.bidders.values(), key=_checked_in)
                          if b.checked_in_at is not None],
            "pauses": [dict(p) for p in self.pauses],
            "read_out": self._read_out(), "objections_until": self.objections_until,
            "objections": self._objections(),
            "confirmations": [{"bidder": b.bidder, "at": b.confirmed_at}
                              for b in sorted(self.bidders.values(), key=_confirmed)
                              if b.confirmed_at is not None],
            "failure": dict(self.failure) if self.failure else None,
        }

    def staff_view(self) -> dict[str, Any]:
        """Everything, for the host and staff: the record plus bidders and sequencing."""
        return {
            **self.record(), "seq": self.seq, "pseq": self.pseq, "clock": self.clock,
            "paused_at": self.paused_at, "next_deadline": self.next_deadline(),
            "bidders": [{"bidder": b.bidder, "name": b.name, "public_key": b.public_key,
                         "fingerprint": b.fingerprint, "registered_at": b.registered_at}
                        for _, b in sorted(self.bidders.items())],
        }

    def _read_out(self) -> list[dict[str, Any]] | None:
        if self.read_out is None:
            return None
        return [{**r, "summary": dict(s) if isinstance(s := r.get("summary"), dict) else s}
                for r in self.read_out]

    def _objections(self) -> list[dict[str, Any]]:
        return [{"objection_id": o.objection_id, "bidder": o.bidder, "text": o.text,
                 "at": o.at, "answer": o.answer, "answered_at": o.answered_at}
                for o in self.objections.values()]


def _bid_row(b: Bid, bidder: Bidder) -> dict[str, Any]:
    return {
        "bidder": b.bidder, "name": bidder.name, "upload": b.upload, "sha256": b.sha256,
        "size": b.size, "submitted_at": b.submitted_at, "versions": b.versions,
        "withdrawn_at": b.withdrawn_at, "received": b.received,
        "checked_in_at": bidder.checked_in_at, "key_released_at": b.key_released_at,
        "outcome": b.outcome, "reason": b.reason or None, "settled_at": b.settled_at,
        "summary": dict(b.summary) if b.summary is not None else None,
    }


def _checked_in(b: Bidder) -> tuple[int, str]:
    return b.checked_in_at or 0, b.bidder


def _confirmed(b: Bidder) -> tuple[int, str]:
    return b.confirmed_at or 0, b.bidder

_APPLY: dict[type[Event], Any] = {
    TenderCreated: Ledger._apply_created, BidderRegistered: Ledger._apply_registered,
    Published: Ledger._apply_published, BidSubmitted: Ledger._apply_submitted,
    BidWithdrawn: Ledger._apply_withdrawn, CheckedIn: Ledger._apply_checked_in,
    DeadlinePassed: Ledger._apply_deadline, Started: Ledger._apply_started,
    Paused: Ledger._apply_paused, Resumed: Ledger._apply_resumed,
    KeyReleased: Ledger._apply_key_released, BidDecrypted: Ledger._apply_decrypted,
    DecryptionFailed: Ledger._apply_decryption_failed, WindowEnded: Ledger._apply_window_ended,
    Announced: Ledger._apply_announced, ObjectionsOpened: Ledger._apply_objections_opened,
    ObjectionRaised: Ledger._apply_objection, ObjectionAnswered: Ledger._apply_answer,
    RecordConfirmed: Ledger._apply_confirmed, Closed: Ledger._apply_closed,
    Failed: Ledger._apply_failed,
}
