"""The published terms of a tender: the deadline, the opening's timings and the price limits.

Times are milliseconds since the Unix epoch (``int``); durations are milliseconds.
Money is decimal yuan as text with at most two decimals (``"1234567.89"``); the core
compares amounts in fen (:func:`to_fen`), never as floats.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Final

from .errors import INVALID_TERMS, Refused

MINUTE: Final = 60_000
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR

#: The same shape a bid summary's ``price`` has (docs/sealed-bids.md).
MONEY_RE: Final = re.compile(r"^(0|[1-9][0-9]{0,14})(\.[0-9]{1,2})?$")

WARN_OVER_BUDGET: Final = "over_budget"
WARN_ABOVE_CEILING: Final = "above_ceiling"


def to_fen(amount: str) -> int:
    """``"1234.5"`` -> ``123450``. Raises ``ValueError`` unless ``amount`` is decimal yuan text
    with at most two decimals (no sign, no exponent, no leading zeros)."""
    if not isinstance(amount, str) or not MONEY_RE.fullmatch(amount):
        raise ValueError(f"{amount!r} is not an amount of yuan with at most two decimals")
    whole, _, cents = amount.partition(".")
    return int(whole) * 100 + int(cents.ljust(2, "0"))


@dataclass(frozen=True, slots=True, kw_only=True)
class TenderTerms:
    """Terms of one tender. Construction checks every field and raises ``ValueError``.

    ``check_in_from`` opens check-in (at or before the ``deadline``); the decryption
    window (``decrypt_window``, 1 minute to 4 hours) starts when the host starts the
    opening; ``min_bids`` bids are needed to open at all. ``ceiling`` is the published
    highest acceptable price (最高投标限价) and ``budget`` the budget; a price more than
    ``warn_over_budget_pct`` percent over the budget draws a warning when sealing.
    """

    deadline: int
    check_in_from: int
    decrypt_window: int = 30 * MINUTE
    objection_window: int = 5 * MINUTE
    min_bids: int = 3
    ceiling: str | None = None
    budget: str | None = None
    warn_over_budget_pct: int = 20

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    def replace(self, **changes: Any) -> TenderTerms:
        """A copy with ``changes`` applied, checked like a new instance."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def checked_terms(**fields: Any) -> TenderTerms:
    """Build terms from untrusted fields, refusing bad ones with ``invalid_terms``."""
    try:
        return TenderTerms(**fields)
    except (TypeError, ValueError) as exc:
        raise Refused(INVALID_TERMS, str(exc)) from None


def price_warning(terms: TenderTerms, price: str) -> str | None:
    """``"above_ceiling"`` if ``price`` exceeds the ceiling, ``"over_budget"`` if it is more
    than ``warn_over_budget_pct`` percent over the budget, else ``None``.

    Raises ``ValueError`` if ``price`` is not decimal yuan text (see :func:`to_fen`).
    """
    fen = to_fen(price)
    if terms.ceiling is not None and fen > to_fen(terms.ceiling):
        return WARN_ABOVE_CEILING
    if terms.budget is not None and fen * 100 > to_fen(terms.budget) * (
        100 + terms.warn_over_budget_pct
    ):
        return WARN_OVER_BUDGET
    return None


def _is_int(value: object) -> bool:
    return type(value) is int


def _problems(t: TenderTerms) -> list[str]:
    out: list[str] = []
    for name in ("deadline", "check_in_from", "decrypt_window", "objection_window",
                 "min_bids", "warn_over_budget_pct"):
        if not _is_int(getattr(t, name)) or getattr(t, name) < 0:
            out.append(f"{name} must be a non-negative whole number")
    if out:
        return out
    if t.check_in_from > t.deadline:
        out.append("check_in_from must not be after the deadline")
    if not MINUTE <= t.decrypt_window <= 4 * HOUR:
        out.append("decrypt_window must be between 1 minute and 4 hours")
    if not MINUTE <= t.objection_window <= DAY:
        out.append("objection_window must be between 1 minute and 24 hours")
    if not 1 <= t.min_bids <= 1000:
        out.append("min_bids must be between 1 and 1000")
    if not 0 <= t.warn_over_budget_pct <= 100:
        out.append("warn_over_budget_pct must be between 0 and 100")
    for name in ("ceiling", "budget"):
        value = getattr(t, name)
        if value is None:
            continue
        try:
            fen = to_fen(value)
        except ValueError:
            out.append(f"{name} must be decimal yuan text with at most two decimals")
            continue
        if fen <= 0:
            out.append(f"{name} must be more than zero")
    return out
