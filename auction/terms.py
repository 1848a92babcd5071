"""The published terms of a lot: prices, increments, timings and the local rule set.

Money is whole yuan (``int``); times are milliseconds since the Unix epoch (``int``);
durations are milliseconds. Terms are public: the secret reserve is not part of them
(see :class:`auction.commands.SetReserve`).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Final

from .errors import INVALID_TERMS, Refused

#: Largest amount the platform accepts, in yuan. Every amount stays exact in a
#: JavaScript number (2**53 > 9e15), so browsers never round a price.
MAX_AMOUNT: Final = 10**15
MINUTE: Final = 60_000
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR


class Kind(enum.StrEnum):
    LAND = "land"
    MINING = "mining"


class FinalMode(enum.StrEnum):
    """What follows the listing when it is contested."""

    TIMED = "timed"  # 限时竞价: a countdown restarted by every bid
    AUCTION = "auction"  # 网上拍卖: optional preparation, then a countdown restarted by every bid


class Eligibility(enum.StrEnum):
    """Who may bid after the listing."""

    LISTING_BIDDERS = "listing_bidders"  # only bidders with a valid listing bid
    ALL_QUALIFIED = "all_qualified"  # every qualified bidder


class CapMode(enum.StrEnum):
    """The follow-up once the price cap is reached (it runs after the price phase)."""

    LOTTERY = "lottery"
    SEALED_ONCE = "sealed_once"
    AREA = "area"


@dataclass(frozen=True, slots=True, kw_only=True)
class LotTerms:
    """Terms of one lot. Construction checks every field and raises ``Refused(invalid_terms)``.

    ``contest_window``/``contest_min_bidders`` decide at listing end whether the
    final phase runs: it runs when at least ``contest_min_bidders`` distinct
    bidders bid during the last ``contest_window`` ms of the listing (0 = the whole
    listing); otherwise the highest listing bid decides. ``stop_before_end`` > 0
    stops listing price bids that long before the end once enough bidders are
    active (Suzhou).
    """

    preset: str
    kind: Kind
    start_price: int
    deposit: int
    listing_increment: int
    final_increment: int
    multiple_rule: bool
    listing_start: int
    listing_end: int
    final_mode: FinalMode
    countdown: int
    preparation: int
    contest_window: int
    contest_min_bidders: int
    final_eligibility: Eligibility
    stop_before_end: int
    reserve_lock: int
    price_cap: int | None = None
    cap_mode: CapMode | None = None

    def __post_init__(self) -> None:
        problems = list(_problems(self))
        if problems:
            raise Refused(INVALID_TERMS, "; ".join(problems))

    def replace(self, **changes: object) -> LotTerms:
        """A copy with ``changes`` applied, checked like a new instance."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _is_int(value: object) -> bool:
    return type(value) is int


def _problems(t: LotTerms) -> list[str]:
    out: list[str] = []
    for name in ("start_price", "deposit", "listing_increment", "final_increment"):
        value = getattr(t, name)
        if not _is_int(value) or not 0 < value <= MAX_AMOUNT:
            out.append(f"{name} must be a whole number of yuan between 1 and {MAX_AMOUNT}")
    for name in ("listing_start", "listing_end", "countdown", "preparation", "contest_window",
                 "stop_before_end", "reserve_lock"):
        value = getattr(t, name)
        if not _is_int(value) or value < 0:
            out.append(f"{name} must be a non-negative whole number of milliseconds")
    if out:
        return out
    if not isinstance(t.preset, str) or not 0 < len(t.preset) <= 32:
        out.append("preset must be a name of 1 to 32 characters")
    if t.listing_end <= t.listing_start:
        out.append("listing_end must be after listing_start")
    if t.countdown < 1_000:
        out.append("countdown must be at least one second")
    if t.final_mode is FinalMode.TIMED and t.preparation:
        out.append("a timed phase has no preparation; use final_mode 'auction'")
    if not _is_int(t.contest_min_bidders) or not 0 <= t.contest_min_bidders <= 1000:
        out.append("contest_min_bidders must be between 0 and 1000")
    if t.stop_before_end >= t.listing_end - t.listing_start:
        out.append("stop_before_end must be shorter than the listing")
    if t.price_cap is not None:
        if not _is_int(t.price_cap) or not t.start_price < t.price_cap <= MAX_AMOUNT:
            out.append("price_cap must be above start_price")
        if t.cap_mode is None:
            out.append("a price_cap needs a cap_mode (lottery, sealed_once or area)")
    elif t.cap_mode is not None:
        out.append("cap_mode needs a price_cap")
    return out
