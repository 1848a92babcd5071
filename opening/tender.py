"""One tender's state, driven by commands and rebuilt from events.

    tender = Tender()
    decision = tender.handle(SubmitBid(at=now, bidder="b1", upload="u1", sha256=..., size=...))
    decision.events      # what happened, in order (time transitions due first, then the answer)
    decision.refusal     # a Refused when the command itself was not allowed
    same = Tender.replay(all_events)       # same state, every time

``handle`` never raises ``Refused``: time keeps moving even when a command is refused
(a bid that arrives after the deadline closes submissions, then is refused), so the
decision carries both. All state changes go through :meth:`Tender.apply`, the same
path replay takes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Self

from . import errors as E
from .commands import (
    Answer,
    CheckIn,
    Close,
    Command,
    Confirm,
    CreateTender,
    DeclareFailed,
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
    Tick,
    WithdrawBid,
)
from .errors import InvariantBroken, Refused
from .events import (
    DECLARED,
    TOO_FEW_BIDS,
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
    RecordConfirmed,
    Resumed,
    Started,
    TenderCreated,
    WindowEnded,
)
from .ledger import Bid, Bidder, Ledger
from .states import CHECK_IN, CONFIRMING, REGISTRATION, SETTLED, Outcome, can
from .states import TenderState as S
from .states import Trigger as T
from .terms import TenderTerms

MAX_TEXT: Final = 2000
MAX_SUMMARY_FIELDS: Final = 32
MAX_SIZE: Final = 2**41  # an envelope of the largest accepted bid file, with room to spare
_ID_RE: Final = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HEX64_RE: Final = re.compile(r"^[0-9a-f]{64}$")
_B64U_RE: Final = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True, slots=True)
class Decision:
    """The result of one command: events to store (maybe none) and the command's answer.

    ``primary`` is the event that answers the command itself; the other events are
    time transitions (the deadline, the window's end) or consequences (the read-out
    once the last bid settles).
    """

    events: tuple[Event, ...]
    primary: Event | None = None
    refusal: Refused | None = None


class Tender(Ledger):
    """A tender: terms, bidders, bids and the opening. See the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self._out: list[Event] = []

    def fork(self) -> Self:
        twin = super().fork()
        twin._out = []
        return twin

    # ------------------------------------------------------------------ replay
    @classmethod
    def replay(cls, events: Iterable[Event]) -> Tender:
        tender = cls()
        for event in events:
            tender.apply(event)
        return tender

    # ------------------------------------------------------------------ commands
    def handle(self, command: Command) -> Decision:
        """Decide ``command`` at its time; apply and return the resulting events."""
        self._out = []
        primary: Event | None = None
        try:
            if type(command.at) is not int:
                raise Refused(E.INVALID_REQUEST, "at must be a whole number of milliseconds")
            now = max(command.at, self.clock)
            if isinstance(command, CreateTender):
                primary = self._create(command, now)
            else:
                if self.terms is None:
                    raise Refused(E.NO_TENDER)
                self._advance(now)
                primary = self._dispatch(command, now)
                self._advance(now)
        except Refused as refusal:
            return Decision(tuple(self._out), None, refusal)
        return Decision(tuple(self._out), primary)

    def _dispatch(self, c: Command, now: int) -> Event | None:
        if isinstance(c, Tick):
            return None
        if self.state is S.FAILED or (self.state is S.CLOSED and not isinstance(c, Confirm)):
            raise Refused(E.TENDER_FINISHED, f"the tender is {self.state}")
        handler = _HANDLERS.get(type(c))
        if handler is None:
            raise InvariantBroken(f"unknown command {type(c).__name__}")
        event: Event = handler(self, c, now)
        return event

    def _create(self, c: CreateTender, now: int) -> Event:
        if self.terms is not None:
            raise Refused(E.TENDER_EXISTS)
        _ident(c.tender_id, "tender_id")
        title = _text(c.title, "title")
        if not isinstance(c.terms, TenderTerms):
            raise Refused(E.INVALID_TERMS)
        if c.terms.deadline <= now:
            raise Refused(E.INVALID_TERMS, "the deadline has already passed")
        return self._emit(TenderCreated, now, tender_id=c.tender_id, title=title, terms=c.terms)

    def _register(self, c: RegisterBidder, now: int) -> Event:
        if self.state not in REGISTRATION or now >= self._terms.deadline:
            raise Refused(E.DEADLINE_PASSED, "registration closed at the deadline")
        _ident(c.bidder, "bidder")
        name = _text(c.name, "name")
        key = _b64u(c.public_key, "public_key")
        if len(key) != 65 or key[0] != 4:
            raise Refused(E.INVALID_REQUEST, "public_key must be an uncompressed P-256 point")
        if not isinstance(c.fingerprint, str) or c.fingerprint != hashlib.sha256(key).hexdigest():
            raise Refused(E.INVALID_REQUEST, "fingerprint must be the SHA-256 of the public key")
        if c.bidder in self.bidders:
            raise Refused(E.ALREADY_REGISTERED)
        return self._emit(BidderRegistered, now, bidder=c.bidder, name=name,
                          public_key=c.public_key, fingerprint=c.fingerprint)

    def _publish(self, c: Publish, now: int) -> Event:
        if self.state is not S.DRAFT:
            raise Refused(E.WRONG_STATE, "the tender has already been published")
        if now >= self._terms.deadline:
            raise Refused(E.DEADLINE_PASSED)
        return self._emit(Published, now)

    def _submission_open(self, bidder: object) -> Bidder:
        if self.state is S.DRAFT:
            raise Refused(E.NOT_ACCEPTING, "the tender has not been published")
        if self.state is not S.ACCEPTING:
            raise Refused(E.DEADLINE_PASSED)
        return self._bidder(bidder)

    def _submit(self, c: SubmitBid, now: int) -> Event:
        self._submission_open(c.bidder)
        _ident(c.upload, "upload")
        if not isinstance(c.sha256, str) or not _HEX64_RE.fullmatch(c.sha256):
            raise Refused(E.INVALID_REQUEST, "sha256 must be 64 lowercase hex digits")
        if type(c.size) is not int or not 0 < c.size <= MAX_SIZE:
            raise Refused(E.INVALID_REQUEST, f"size must be between 1 and {MAX_SIZE} bytes")
        return self._emit(BidSubmitted, now, bidder=c.bidder, upload=c.upload, sha256=c.sha256,
                          size=c.size)

    def _withdraw(self, c: WithdrawBid, now: int) -> Event:
        self._submission_open(c.bidder)
        bid = self.bids.get(c.bidder)
        if bid is None or bid.withdrawn_at is not None:
            raise Refused(E.NO_BID)
        return self._emit(BidWithdrawn, now, bidder=c.bidder)

    def _check_in(self, c: CheckIn, now: int) -> Event:
        if self.state not in CHECK_IN or now < self._terms.check_in_from:
            if self.state in (S.DRAFT, S.ACCEPTING):
                raise Refused(E.CHECK_IN_NOT_OPEN, opens=self._terms.check_in_from)
            raise Refused(E.CHECK_IN_CLOSED)
        if self.times["window_ended"] is not None:
            raise Refused(E.CHECK_IN_CLOSED)
        bidder = self._bidder(c.bidder)
        if bidder.checked_in_at is not None:
            raise Refused(E.ALREADY_CHECKED_IN)
        return self._emit(CheckedIn, now, bidder=c.bidder)

    def _start(self, c: Start, now: int) -> Event:
        if self.state is S.ACCEPTING:
            raise Refused(E.TOO_EARLY, "the opening starts at the deadline")
        if self.state is not S.DEADLINE:
            raise Refused(E.WRONG_STATE, f"cannot start a tender in state {self.state}")
        live = [b for _, b in sorted(self.bids.items()) if b.withdrawn_at is None]
        need = self._terms.min_bids
        if len(live) < need:
            return self._emit(Failed, now, trigger=T.START, code=TOO_FEW_BIDS,
                              text=f"{len(live)} bids received; at least {need} are required")
        rows = tuple({"bidder": b.bidder, "name": self.bidders[b.bidder].name,
                      "sha256": b.sha256, "size": b.size, "submitted_at": b.submitted_at}
                     for b in live)
        return self._emit(Started, now, bids=rows, window_end=now + self._terms.decrypt_window)

    def _window_open(self) -> None:
        if self.state in (S.DRAFT, S.ACCEPTING):
            raise Refused(E.TOO_EARLY)
        if self.state is not S.DECRYPTING or self.times["window_ended"] is not None:
            raise Refused(E.NOT_DECRYPTING)

    def _pause(self, c: Pause, now: int) -> Event:
        self._window_open()
        if self.paused_at is not None:
            raise Refused(E.PAUSED, "the opening is already paused")
        return self._emit(Paused, now, reason=_text(c.reason, "reason"))

    def _resume(self, c: Resume, now: int) -> Event:
        if self.paused_at is None or self.window_end is None:
            raise Refused(E.NOT_PAUSED)
        paused_for = now - self.paused_at
        return self._emit(Resumed, now, paused_for=paused_for,
                          window_end=self.window_end + paused_for)

    def _release_key(self, c: ReleaseKey, now: int) -> Event:
        self._window_open()
        if self.paused_at is not None:
            raise Refused(E.PAUSED)
        bid = self._received_bid(c.bidder)
        if bid.key_released_at is not None or bid.outcome in SETTLED:
            raise Refused(E.ALREADY_DECRYPTED)
        return self._emit(KeyReleased, now, bidder=c.bidder)

    def _record_decryption(self, c: RecordDecryption, now: int) -> Event:
        if self.state is not S.DECRYPTING:
            raise Refused(E.NOT_DECRYPTING)
        bid = self._received_bid(c.bidder)
        if bid.outcome in SETTLED:
            raise Refused(E.ALREADY_DECRYPTED, "the bid's decryption is already recorded")
        if bid.key_released_at is None:
            raise Refused(E.KEY_NOT_RELEASED)
        if c.ok is True:
            return self._emit(BidDecrypted, now, bidder=c.bidder, summary=_summary(c.summary))
        if c.ok is not False or c.summary is not None:
            raise Refused(E.INVALID_REQUEST, "ok must be true with a summary, or false")
        return self._emit(DecryptionFailed, now, bidder=c.bidder,
                          reason=_text(c.reason, "reason"))

    def _open_objections(self, c: OpenObjections, now: int) -> Event:
        if self.state is not S.ANNOUNCED:
            raise Refused(E.WRONG_STATE, "objections open after the announcement")
        return self._emit(ObjectionsOpened, now, until=now + self._terms.objection_window)

    def _object(self, c: Object, now: int) -> Event:
        if self.state is not S.OBJECTIONS:
            raise Refused(E.WRONG_STATE, "objections are not open")
        if self.objections_until is None or now >= self.objections_until:
            raise Refused(E.OBJECTION_WINDOW_CLOSED)
        self._received_bid(c.bidder)
        _ident(c.objection_id, "objection_id")
        text = _text(c.text, "text")
        if c.objection_id in self.objections:
            raise Refused(E.OBJECTION_EXISTS)
        return self._emit(ObjectionRaised, now, bidder=c.bidder, objection_id=c.objection_id,
                          text=text)

    def _answer(self, c: Answer, now: int) -> Event:
        if self.state is not S.OBJECTIONS:
            raise Refused(E.WRONG_STATE, "objections are not open")
        objection = self.objections.get(c.objection_id) if isinstance(c.objection_id, str) \
            else None
        if objection is None:
            raise Refused(E.UNKNOWN_OBJECTION)
        if objection.answer is not None:
            raise Refused(E.ALREADY_ANSWERED)
        return self._emit(ObjectionAnswered, now, objection_id=c.objection_id,
                          text=_text(c.text, "text"))

    def _confirm(self, c: Confirm, now: int) -> Event:
        if self.state not in CONFIRMING:
            raise Refused(E.WRONG_STATE, "the record is confirmed after the announcement")
        self._received_bid(c.bidder)
        if self.bidders[c.bidder].confirmed_at is not None:
            raise Refused(E.ALREADY_CONFIRMED)
        return self._emit(RecordConfirmed, now, bidder=c.bidder)

    def _declare_failed(self, c: DeclareFailed, now: int) -> Event:
        assert self.state is not None
        if not can(self.state, T.FAIL):
            raise Refused(E.WRONG_STATE, "an unpublished tender cannot fail")
        return self._emit(Failed, now, trigger=T.FAIL, code=DECLARED,
                          text=_text(c.reason, "reason"))

    def _close(self, c: Close, now: int) -> Event:
        if self.state is not S.OBJECTIONS or self.objections_until is None:
            raise Refused(E.WRONG_STATE, "the tender closes after the objection window")
        if now < self.objections_until:
            raise Refused(E.OBJECTION_WINDOW_OPEN, until=self.objections_until)
        if any(o.answer is None for o in self.objections.values()):
            raise Refused(E.OBJECTIONS_PENDING)
        return self._emit(Closed, now)

    def _bidder(self, bidder: object) -> Bidder:
        found = self.bidders.get(bidder) if isinstance(bidder, str) else None
        if found is None:
            raise Refused(E.NOT_REGISTERED)
        return found

    def _received_bid(self, bidder: object) -> Bid:
        self._bidder(bidder)
        assert isinstance(bidder, str)
        bid = self.bids.get(bidder)
        if bid is None or not bid.received:
            raise Refused(E.NO_BID, "the bidder has no bid in this opening")
        return bid

    # ------------------------------------------------------------------ time
    def _advance(self, now: int) -> None:
        """Apply what time has made due by ``now``; then announce once every bid is settled
        (``window_end`` when that happens as the window ends, else ``all_settled``)."""
        ended = False
        while (due := self.next_deadline()) is not None and due <= now:
            at = max(due, self.clock)
            if self.state is S.ACCEPTING:
                self._emit(DeadlinePassed, at)
            else:
                outcomes = {b.bidder: Outcome.WITHDRAWN
                            if self.bidders[b.bidder].checked_in_at is not None else Outcome.ABSENT
                            for _, b in sorted(self.bids.items())
                            if b.received and b.outcome is Outcome.WAITING
                            and b.key_released_at is None}
                self._emit(WindowEnded, at, outcomes=outcomes)
                ended = True
        if (self.state is S.DECRYPTING and self.paused_at is None
                and all(b.outcome in SETTLED for b in self.bids.values() if b.received)):
            read_out = tuple(
                {"bidder": b.bidder, "name": self.bidders[b.bidder].name,
                 "outcome": str(b.outcome), "summary": b.summary}
                for _, b in sorted(self.bids.items()) if b.received)
            trigger = T.WINDOW_END if ended else T.ALL_SETTLED
            self._emit(Announced, self.clock, trigger=trigger, read_out=read_out)

    # ------------------------------------------------------------------ events
    def _emit(self, cls: type[Event], at: int, **fields: Any) -> Event:
        public = cls.public is not Event.public
        event = cls(seq=self.seq + 1, pseq=self.pseq + 1 if public else None, at=at, **fields)
        self.apply(event)
        self._out.append(event)
        return event


def _text(value: object, name: str) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not 0 < len(text) <= MAX_TEXT:
        raise Refused(E.INVALID_REQUEST, f"{name} must be text of 1 to {MAX_TEXT} characters")
    return text


def _ident(value: object, name: str) -> None:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise Refused(E.INVALID_REQUEST,
                      f"{name} must be 1 to 64 letters, digits, '_', '.' or '-'")


def _b64u(value: object, name: str) -> bytes:
    if isinstance(value, str) and _B64U_RE.fullmatch(value) and len(value) % 4 != 1:
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            pass
        else:
            if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == value:
                return raw
    raise Refused(E.INVALID_REQUEST, f"{name} must be base64url without padding")


def _summary(value: object) -> dict[str, str | int]:
    """A shallow check of a summary the envelope reader already validated, and a copy."""
    problem = "summary must map 1 to 32 names to text or whole numbers"
    if not isinstance(value, Mapping) or not 0 < len(value) <= MAX_SUMMARY_FIELDS:
        raise Refused(E.INVALID_REQUEST, problem)
    out: dict[str, str | int] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not 0 < len(key) <= 64:
            raise Refused(E.INVALID_REQUEST, problem)
        if not (type(item) is int or (isinstance(item, str) and len(item) <= MAX_TEXT)):
            raise Refused(E.INVALID_REQUEST, problem)
        out[key] = item
    return out


_HANDLERS: dict[type[Command], Any] = {
    RegisterBidder: Tender._register, Publish: Tender._publish, SubmitBid: Tender._submit,
    WithdrawBid: Tender._withdraw, CheckIn: Tender._check_in, Start: Tender._start,
    Pause: Tender._pause, Resume: Tender._resume, ReleaseKey: Tender._release_key,
    RecordDecryption: Tender._record_decryption, OpenObjections: Tender._open_objections,
    Object: Tender._object, Answer: Tender._answer, Confirm: Tender._confirm,
    DeclareFailed: Tender._declare_failed, Close: Tender._close,
}
