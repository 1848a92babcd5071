"""Commands: what staff, the host, bidders, the server and the clock ask a tender to do.

Every command carries ``at``, the server time in milliseconds at which it was
received; the core never reads a clock. A tender handles commands strictly in the
order given and treats time as never going backwards (an ``at`` older than the
last event is read as the time of that event).

Text fields (names, reasons, objections, answers) are 1 to 2000 characters once
stripped; the stripped text is what gets recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .terms import TenderTerms

#: A decrypted bid's read-out entry (开标一览表), already checked by the envelope reader.
Summary = Mapping[str, str | int]


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateTender(Command):
    tender_id: str
    title: str
    terms: TenderTerms


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisterBidder(Command):
    """Admit a bidder with its public key (b64u SEC1 point) and the key's fingerprint."""

    bidder: str
    name: str
    public_key: str
    fingerprint: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Publish(Command):
    """Open the tender for submissions."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitBid(Command):
    """A completed, checked upload (``upload`` id) of an envelope; replaces an earlier bid."""

    bidder: str
    upload: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WithdrawBid(Command):
    bidder: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckIn(Command):
    bidder: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Start(Command):
    """The host starts the opening (after the deadline)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Pause(Command):
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Resume(Command):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseKey(Command):
    """Asked by the server before it does any cryptography with the bidder's file key."""

    bidder: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordDecryption(Command):
    """What the server found after decrypting: ``ok`` with the ``summary``, or a ``reason``."""

    bidder: str
    ok: bool
    summary: Summary | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick(Command):
    """Time passed: apply whatever fell due at or before ``at``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenObjections(Command):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Object(Command):
    bidder: str
    objection_id: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer(Command):
    objection_id: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Confirm(Command):
    """The bidder confirms the opening record."""

    bidder: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeclareFailed(Command):
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Close(Command):
    pass
