"""Request and response bodies of the HTTP API.

Handlers pass every response through :func:`msgspec.convert` with these types, so the
OpenAPI document generated from them (``/openapi.json``) cannot drift from what the
server actually sends.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from auction import MAX_AMOUNT

from .protocol import LOT_ID_PATTERN

Amount = Annotated[int, Meta(gt=0, le=MAX_AMOUNT, description="whole yuan")]
#: Body fields holding money: a refusal of one of these is ``invalid_amount``.
MONEY_FIELDS = ("amount", "start_price", "deposit", "listing_increment", "final_increment",
                "price_cap")
Millis = Annotated[int, Meta(ge=0, le=2**53, description="ms since the Unix epoch")]
Duration = Annotated[int, Meta(ge=0, le=2**53, description="milliseconds")]
Text = Annotated[str, Meta(min_length=1, max_length=500)]
LotId = Annotated[str, Meta(pattern=LOT_ID_PATTERN)]


class CreateLot(msgspec.Struct, forbid_unknown_fields=True):
    """A new lot from a preset; any rule of the preset may be overridden."""

    title: Annotated[str, Meta(min_length=1, max_length=200)]
    preset: str
    start_price: Amount
    deposit: Amount
    listing_increment: Amount
    listing_end: Millis
    lot_id: LotId | None = None
    listing_start: Millis | None = None
    final_increment: Amount | None = None
    multiple_rule: bool | None = None
    final_mode: str | None = None
    countdown: Duration | None = None
    preparation: Duration | None = None
    contest_window: Duration | None = None
    contest_min_bidders: Annotated[int, Meta(ge=0, le=1000)] | None = None
    final_eligibility: str | None = None
    stop_before_end: Duration | None = None
    reserve_lock: Duration | None = None
    price_cap: Amount | None = None
    cap_mode: str | None = None


class QualifyBidder(msgspec.Struct, forbid_unknown_fields=True):
    """The bidder's deposit is confirmed (``deposit_ref``: bank or receipt reference)."""

    bidder: Annotated[str, Meta(min_length=1, max_length=128)]
    deposit_ref: Annotated[str, Meta(min_length=1, max_length=128)]
    token_ttl: Annotated[int, Meta(ge=1, le=10 * 365 * 86400,
                                   description="token lifetime in seconds")] | None = None


class SetReserve(msgspec.Struct, forbid_unknown_fields=True):
    amount: Amount


class ChangeIncrement(msgspec.Struct, forbid_unknown_fields=True):
    amount: Amount
    reason: Text
    final: bool = False


class Reason(msgspec.Struct, forbid_unknown_fields=True):
    reason: Text


class BidderToken(msgspec.Struct):
    bidder: str
    lot_id: str
    paddle: int
    token: str
    expires: int
    hall_url: str


class Bidder(msgspec.Struct):
    bidder: str
    paddle: int
    deposit_ref: str
    last_listing_bid_at: int | None


class LotResult(msgspec.Struct):
    """``outcome`` is null while the sale runs. ``winner`` is published once sold.
    ``refunds`` and ``deposit_applied`` are shown to staff only."""

    lot_id: str
    phase: str
    outcome: str | None
    reason: str | None
    winner: str | None
    paddle: int | None
    price: int | None
    deposit_applied: int | msgspec.UnsetType | None = msgspec.UNSET
    refunds: list[dict[str, Any]] | msgspec.UnsetType = msgspec.UNSET


class LotView(msgspec.Struct):
    """A lot as anyone may see it. ``seq`` counts public events; ``history`` holds the last
    bids as ``[at, paddle, amount]``. Staff also get ``reserve``."""

    lot_id: str
    title: str
    preset: str
    kind: str
    seq: int
    phase: str
    frozen: bool
    frozen_reason: str | None
    price: int | None
    leader: int | None
    start_price: int
    deposit: int
    increment: int
    listing_increment: int
    final_increment: int
    multiple_rule: bool
    price_cap: int | None
    listing_start: int
    listing_end: int
    ends_at: int | None
    countdown: int
    final_mode: str
    next_min: int
    bid_count: int
    result: dict[str, Any] | None
    history: list[list[int]]
    reserve: int | msgspec.UnsetType | None = msgspec.UNSET


class LotList(msgspec.Struct):
    lots: list[LotView]


class BidRecord(msgspec.Struct):
    at: int
    paddle: int
    amount: int


class BidHistory(msgspec.Struct):
    lot_id: str
    bids: list[BidRecord]


class EventPage(msgspec.Struct):
    """Events after ``since``; public callers see public events numbered by public seq."""

    lot_id: str
    events: list[dict[str, Any]]
    next: int


class Accepted(msgspec.Struct):
    ok: bool
    seq: int


class ServerTime(msgspec.Struct):
    server_time: int


class Preset(msgspec.Struct):
    name: str
    rules: dict[str, Any]


class PresetList(msgspec.Struct):
    presets: list[Preset]


class ErrorBody(msgspec.Struct):
    code: str
    message: str


class Error(msgspec.Struct):
    error: ErrorBody
