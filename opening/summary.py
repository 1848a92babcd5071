"""A bid's summary (开标一览表 entry): what is read out at the opening.

The summary travels inside the sealed plaintext, ahead of the document (see
docs/sealed-bids.md, "Plaintext"). :func:`parse_summary` checks a decoded JSON
object; :func:`decode_summary` checks the bytes as found in an envelope. Both
raise ``EnvelopeError("bad_summary")`` for anything the format does not allow.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Final

from .crypto_errors import EnvelopeError, loads_strict

#: Bid price in yuan: at most 15 integer digits and 2 decimals, no sign, no exponent.
PRICE_RE: Final = re.compile(r"(0|[1-9][0-9]{0,14})(\.[0-9]{1,2})?")
MAX_DURATION_DAYS: Final = 100_000
#: Longest text of each optional member, in characters (Unicode code points).
TEXT_LIMITS: Final[dict[str, int]] = {"quality": 200, "manager": 100, "note": 500}
MEMBERS: Final = frozenset({"price", "duration_days", *TEXT_LIMITS})
#: Length limits of the encoded summary (the ``slen`` prefix).
MIN_LENGTH: Final = 2
MAX_LENGTH: Final = 65536


def _refuse(message: str) -> EnvelopeError:
    return EnvelopeError("bad_summary", message)


@dataclass(frozen=True, slots=True)
class Summary:
    """One bid's summary. Construction checks every member.

    ``price`` is decimal yuan as sealed (``"1234.5"``); absent optional members
    are ``None``.
    """

    price: str
    duration_days: int | None = None
    quality: str | None = None
    manager: str | None = None
    note: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.price, str) or PRICE_RE.fullmatch(self.price) is None:
            raise _refuse("price must be decimal yuan with at most 2 decimals, e.g. \"1234.50\"")
        days = self.duration_days
        if days is not None and (type(days) is not int or not 1 <= days <= MAX_DURATION_DAYS):
            raise _refuse(f"duration_days must be a whole number from 1 to {MAX_DURATION_DAYS}")
        for name, limit in TEXT_LIMITS.items():
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, str):
                raise _refuse(f"{name} must be a string")
            if len(value) > limit:
                raise _refuse(f"{name} is longer than {limit} characters")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise _refuse(f"{name} is not valid Unicode text") from None

    @property
    def price_fen(self) -> int:
        """The price in fen (hundredths of a yuan), exact."""
        yuan, _, decimals = self.price.partition(".")
        return int(yuan) * 100 + int(decimals.ljust(2, "0"))

    def to_json(self) -> dict[str, object]:
        """The summary's members as sealed: absent ones are left out."""
        out: dict[str, object] = {"price": self.price}
        for name in ("duration_days", "quality", "manager", "note"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def encode(self) -> bytes:
        """The bytes a writer seals: sorted keys, no whitespace, UTF-8 as itself."""
        data = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode("utf-8")
        if len(data) > MAX_LENGTH:  # only reachable with escapes: limits keep it shorter
            raise _refuse(f"the summary is longer than {MAX_LENGTH} bytes")
        return data


def parse_summary(obj: object) -> Summary:
    """A :class:`Summary` from a decoded JSON object; ``bad_summary`` if it is not one.

    ``price`` is required; ``duration_days``, ``quality``, ``manager``, ``note``
    are optional and must have their type when present (``null`` is refused);
    any other member is refused.
    """
    if not isinstance(obj, dict):
        raise _refuse("the summary must be a JSON object")
    extra = sorted(str(k) for k in obj if k not in MEMBERS)
    if extra:
        raise _refuse(f"unknown member(s) in the summary: {', '.join(extra)[:200]}")
    if "price" not in obj:
        raise _refuse("the summary has no price")
    for name, value in obj.items():
        if value is None:
            raise _refuse(f"{name} is null; leave optional members out instead")
    return Summary(price=obj["price"], duration_days=obj.get("duration_days"),
                   quality=obj.get("quality"), manager=obj.get("manager"),
                   note=obj.get("note"))


def decode_summary(data: bytes) -> Summary:
    """A :class:`Summary` from its sealed bytes (UTF-8 JSON, no duplicate members)."""
    if not MIN_LENGTH <= len(data) <= MAX_LENGTH:
        raise _refuse(f"the summary must be {MIN_LENGTH} to {MAX_LENGTH} bytes")
    try:
        obj = loads_strict(data)
    except ValueError as exc:
        raise _refuse(f"the summary is not valid JSON: {str(exc)[:200]}") from None
    return parse_summary(obj)
