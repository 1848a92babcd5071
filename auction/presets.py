"""Local rule sets, named after the places they come from (see DOMAIN.md, "Countdown variants").

A preset fixes the rules; the lot's own figures (prices, dates) come from staff::

    terms = preset("suzhou", start_price=12_000_000, deposit=2_400_000,
                   listing_increment=100_000, listing_start=t0, listing_end=t0 + 10 * DAY)

Any field of :class:`~auction.terms.LotTerms` may be overridden by keyword.
"""

from __future__ import annotations

from typing import Any, Final

from .errors import INVALID_TERMS, Refused
from .terms import HOUR, MINUTE, CapMode, Eligibility, FinalMode, Kind, LotTerms

_RULES: Final[dict[str, dict[str, Any]]] = {
    # Suzhou: bids stop 60 min before listing end once >= 2 bidders are active; then a
    # 4-minute timed phase among listing bidders only; raises are whole multiples.
    "suzhou": {
        "kind": Kind.LAND,
        "multiple_rule": True,
        "final_mode": FinalMode.TIMED,
        "countdown": 4 * MINUTE,
        "preparation": 0,
        "contest_window": 0,
        "contest_min_bidders": 2,
        "final_eligibility": Eligibility.LISTING_BIDDERS,
        "stop_before_end": HOUR,
        "reserve_lock": HOUR,
    },
    # Fujian: >= 2 bidders in the last hour -> online auction open to every qualified
    # bidder after 15 minutes' preparation, 5-minute countdown; any amount >= increment.
    "fujian": {
        "kind": Kind.LAND,
        "multiple_rule": False,
        "final_mode": FinalMode.AUCTION,
        "countdown": 5 * MINUTE,
        "preparation": 15 * MINUTE,
        "contest_window": HOUR,
        "contest_min_bidders": 2,
        "final_eligibility": Eligibility.ALL_QUALIFIED,
        "stop_before_end": 0,
        "reserve_lock": HOUR,
    },
    # Qinzhou: free bidding, then 5-minute windows that every bid extends; nobody in the
    # first window -> the highest free-phase bid wins.
    "qinzhou": {
        "kind": Kind.LAND,
        "multiple_rule": False,
        "final_mode": FinalMode.TIMED,
        "countdown": 5 * MINUTE,
        "preparation": 0,
        "contest_window": 0,
        "contest_min_bidders": 0,
        "final_eligibility": Eligibility.ALL_QUALIFIED,
        "stop_before_end": 0,
        "reserve_lock": HOUR,
    },
    # Mining rights: only bidders with a valid listing bid enter the timed phase; each
    # round starts at the current price + increment.
    "mining": {
        "kind": Kind.MINING,
        "multiple_rule": False,
        "final_mode": FinalMode.TIMED,
        "countdown": 5 * MINUTE,
        "preparation": 0,
        "contest_window": 0,
        "contest_min_bidders": 2,
        "final_eligibility": Eligibility.LISTING_BIDDERS,
        "stop_before_end": 0,
        "reserve_lock": HOUR,
    },
}

#: Names of the presets, in the order staff see them.
PRESETS: Final = tuple(_RULES)


def rules(name: str) -> dict[str, Any]:
    """The rule fields preset ``name`` fixes (a copy). ``KeyError`` for an unknown name."""
    return dict(_RULES[name])


def preset(name: str, **fields: Any) -> LotTerms:
    """Terms for preset ``name`` with the lot's own ``fields`` (and any rule overrides).

    ``final_increment`` defaults to ``listing_increment``. Raises ``Refused(invalid_terms)``
    for an unknown preset, an unknown field or a field that fails the checks.
    """
    rules = _RULES.get(name)
    if rules is None:
        raise Refused(INVALID_TERMS, f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    known = set(LotTerms.__dataclass_fields__)
    unknown = sorted(set(fields) - known)
    if unknown:
        raise Refused(INVALID_TERMS, f"unknown term(s): {', '.join(unknown)}")
    merged: dict[str, Any] = {"preset": name, **rules, **fields}
    merged.setdefault("final_increment", merged.get("listing_increment"))
    missing = sorted(known - set(merged) - {"price_cap", "cap_mode"})
    if missing:
        raise Refused(INVALID_TERMS, f"missing term(s): {', '.join(missing)}")
    try:
        merged["kind"] = Kind(merged["kind"])
        merged["final_mode"] = FinalMode(merged["final_mode"])
        merged["final_eligibility"] = Eligibility(merged["final_eligibility"])
    except ValueError as exc:
        raise Refused(INVALID_TERMS, str(exc)) from None
        if merged.get("cap_mode") is not None:
            merged["cap_mode"] = CapMode(merged["cap_mode"])
    return LotTerms(**merged)
