"""Events: the facts a tender records, in order. State is rebuilt by applying them.

Every event has ``seq`` (gapless per tender, starting at 1), ``pseq`` (gapless count
of public events, ``None`` for private ones) and ``at`` (server time, ms).

Each class has a ``KIND`` (the stored and wire name) and :meth:`Event.public`, the
only fields anyone may see without a credential. Nothing public may tell, before the
start, who registered, who submitted, how many bids there are or who checked in: those
events are private. From the start on the list of received bids is public (开标全公开);
bid summaries are published only with the announcement.

Fields are plain data (str, int, bool, None, tuples, mappings, :class:`TenderTerms`),
so events encode to JSON and decode by ``KIND`` (see :data:`EVENT_TYPES`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from .states import Outcome, Trigger
from .terms import TenderTerms

Public = dict[str, Any]
#: A bid as published at the start: bidder, name, sha256, size, submitted_at.
ReceivedBid = Mapping[str, str | int]
#: One announced bid: bidder, name, outcome and (when decrypted) its summary.
ReadOutRow = Mapping[str, str | int | Mapping[str, str | int] | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    KIND: ClassVar[str] = ""
    seq: int
    pseq: int | None
    at: int

    def public(self) -> Public | None:
        """The public form, or ``None`` for an event only staff may see."""
        return None

    def _public(self, **fields: Any) -> Public:
        return {"kind": self.KIND, "at": self.at, **fields}


# ---------------------------------------------------------------------- preparation
@dataclass(frozen=True, slots=True, kw_only=True)
class TenderCreated(Event):
    KIND: ClassVar[str] = "tender_created"
    tender_id: str
    title: str
    terms: TenderTerms

    def public(self) -> Public:
        return self._public(tender_id=self.tender_id, title=self.title,
                            terms=self.terms.as_dict())


@dataclass(frozen=True, slots=True, kw_only=True)
class BidderRegistered(Event):
    KIND: ClassVar[str] = "bidder_registered"
    bidder: str
    name: str
    public_key: str
    fingerprint: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Published(Event):
    KIND: ClassVar[str] = "published"

    def public(self) -> Public:
        return self._public()


@dataclass(frozen=True, slots=True, kw_only=True)
class BidSubmitted(Event):
    """A bid received; it replaces the bidder's earlier bid, if any."""

    KIND: ClassVar[str] = "bid_submitted"
    bidder: str
    upload: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BidWithdrawn(Event):
    KIND: ClassVar[str] = "bid_withdrawn"
    bidder: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckedIn(Event):
    KIND: ClassVar[str] = "checked_in"
    bidder: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadlinePassed(Event):
    """Submissions closed. Carries no counts: those are published at the start."""

    KIND: ClassVar[str] = "deadline_passed"

    def public(self) -> Public:
        return self._public()


# ---------------------------------------------------------------------- the opening
@dataclass(frozen=True, slots=True, kw_only=True)
class Started(Event):
    """The host started the opening; ``bids`` lists the received bids by bidder id."""

    KIND: ClassVar[str] = "started"
    bids: tuple[ReceivedBid, ...]
    window_end: int

    def public(self) -> Public:
        return self._public(bids=[dict(b) for b in self.bids], window_end=self.window_end)


@dataclass(frozen=True, slots=True, kw_only=True)
class Paused(Event):
    KIND: ClassVar[str] = "paused"
    reason: str

    def public(self) -> Public:
        return self._public(reason=self.reason)


@dataclass(frozen=True, slots=True, kw_only=True)
class Resumed(Event):
    """The opening resumed after ``paused_for`` ms; the window now ends at ``window_end``."""

    KIND: ClassVar[str] = "resumed"
    paused_for: int
    window_end: int

    def public(self) -> Public:
        return self._public(paused_for=self.paused_for, window_end=self.window_end)


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyReleased(Event):
    """The server may now decrypt this bidder's bid with the key the bidder posted."""

    KIND: ClassVar[str] = "key_released"
    bidder: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BidDecrypted(Event):
    """The bid was decrypted. The summary is kept for the announcement, not published here."""

    KIND: ClassVar[str] = "bid_decrypted"
    bidder: str
    summary: Mapping[str, str | int]

    def public(self) -> Public:
        return self._public(bidder=self.bidder)


@dataclass(frozen=True, slots=True, kw_only=True)
class DecryptionFailed(Event):
    KIND: ClassVar[str] = "decryption_failed"
    bidder: str
    reason: str

    def public(self) -> Public:
        return self._public(bidder=self.bidder, reason=self.reason)


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowEnded(Event):
    """The decryption window ended. ``outcomes`` settles every bid whose key was not
    released: ``withdrawn`` if the bidder checked in, ``absent`` if it never did."""

    KIND: ClassVar[str] = "window_ended"
    outcomes: Mapping[str, Outcome]

    def public(self) -> Public:
        return self._public(outcomes=dict(self.outcomes))


@dataclass(frozen=True, slots=True, kw_only=True)
class Announced(Event):
    """The read-out (唱标): one row per received bid, by bidder id."""

    KIND: ClassVar[str] = "announced"
    trigger: Trigger
    read_out: tuple[ReadOutRow, ...]

    def public(self) -> Public:
        return self._public(trigger=self.trigger, read_out=[_row(r) for r in self.read_out])


# ---------------------------------------------------------------------- after the read-out
@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectionsOpened(Event):
    KIND: ClassVar[str] = "objections_opened"
    until: int

    def public(self) -> Public:
        return self._public(until=self.until)


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectionRaised(Event):
    KIND: ClassVar[str] = "objection_raised"
    bidder: str
    objection_id: str
    text: str

    def public(self) -> Public:
        return self._public(bidder=self.bidder, objection_id=self.objection_id, text=self.text)


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectionAnswered(Event):
    KIND: ClassVar[str] = "objection_answered"
    objection_id: str
    text: str

    def public(self) -> Public:
        return self._public(objection_id=self.objection_id, text=self.text)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordConfirmed(Event):
    KIND: ClassVar[str] = "record_confirmed"
    bidder: str

    def public(self) -> Public:
        return self._public(bidder=self.bidder)


@dataclass(frozen=True, slots=True, kw_only=True)
class Closed(Event):
    KIND: ClassVar[str] = "closed"

    def public(self) -> Public:
        return self._public()


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed(Event):
    """The tender failed (流标): ``code`` is ``too_few_bids`` or ``declared``; ``text`` says why."""

    KIND: ClassVar[str] = "failed"
    trigger: Trigger
    code: str
    text: str

    def public(self) -> Public:
        return self._public(trigger=self.trigger, code=self.code, text=self.text)


def _row(row: ReadOutRow) -> dict[str, Any]:
    out = dict(row)
    summary = out.get("summary")
    if isinstance(summary, Mapping):
        out["summary"] = dict(summary)
    return out


#: Event classes by ``KIND``, for decoding stored events.
EVENT_TYPES: dict[str, type[Event]] = {
    cls.KIND: cls
    for cls in (TenderCreated, BidderRegistered, Published, BidSubmitted, BidWithdrawn,
                CheckedIn, DeadlinePassed, Started, Paused, Resumed, KeyReleased, BidDecrypted,
                DecryptionFailed, WindowEnded, Announced, ObjectionsOpened, ObjectionRaised,
                ObjectionAnswered, RecordConfirmed, Closed, Failed)
}

#: Why a tender failed.
TOO_FEW_BIDS = "too_few_bids"
DECLARED = "declared"
