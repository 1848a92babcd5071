"""Refusals of the sealed-bid formats, and the strict encodings they share.

One error class for everything a reader of ``bidenv/v1``, ``bidkey/v1`` or
``bidreceipt/v1`` can refuse::

    EnvelopeError           the input is not acceptable; carries a stable ``code``
                            (a key of :data:`CODES`) and an English ``message``

Nothing is changed when one is raised: readers check before they act and writers
validate their input before they write the first byte. A code not in :data:`CODES`
is a bug and raises ``ValueError``.

The encodings (see docs/sealed-bids.md): ``b64u`` is base64url without padding and
must be canonical (no padding, no stray characters, zero trailing bits), so every
value has exactly one spelling; ids are 1 to 64 of ``A-Z a-z 0-9 _ . -``.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Final

# Stable codes. Clients switch on these strings; never rename one.
CODES: Final[dict[str, str]] = {
    "not_an_envelope": "the file is not a sealed bid envelope (bidenv/v1)",
    "bad_header": "the envelope header is malformed",
    "bad_length": "the envelope's length does not match its header",
    "wrong_tender": "the envelope is sealed for another tender",
    "wrong_bidder": "the envelope is sealed for another bidder",
    "wrong_recipient": "the envelope is sealed to another public key",
    "wrong_key": "the key does not open this envelope",
    "bad_chunk": "the envelope's content fails authentication",
    "bad_summary": "the bid summary is malformed",
    "bad_id": "an id must be 1 to 64 characters of A-Z a-z 0-9 _ . -",
    "too_large": "the bid is too large to seal",
    "source_changed": "the document changed while it was being sealed",
    "bad_public_key": "the public key is not valid",
    "bad_key_file": "the key file is malformed",
    "wrong_password": "the password does not open the key file",
    "weak_password": "the password is too short",
    "bad_receipt": "the receipt is malformed",
    "bad_signature": "the receipt's signature is not valid",
}


class EnvelopeError(Exception):
    """Input a sealed-bid reader or writer refuses. Nothing was changed.

    ``code`` is one of :data:`CODES`; ``message`` is a human sentence (English;
    clients translate by ``code``).
    """

    def __init__(self, code: str, message: str | None = None) -> None:
        if code not in CODES:
            raise ValueError(f"unknown sealed-bid error code {code!r}")
        self.code = code
        self.message = message or CODES[code]
        super().__init__(f"{code}: {self.message}")


ID_RE: Final = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_B64U_RE: Final = re.compile(r"[A-Za-z0-9_\-]*")


def is_id(value: object) -> bool:
    """Whether ``value`` is a tender or bidder id."""
    return isinstance(value, str) and ID_RE.fullmatch(value) is not None


def b64u(data: bytes) -> str:
    """``data`` as base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: object, length: int | None = None) -> bytes:
    """Decode canonical base64url without padding; ``ValueError`` otherwise.

    With ``length``, the decoded value must have exactly that many bytes.
    """
    if not isinstance(text, str) or _B64U_RE.fullmatch(text) is None or len(text) % 4 == 1:
        raise ValueError("not base64url without padding")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64u(data) != text:
        raise ValueError("not canonical base64url (non-zero trailing bits)")
    if length is not None and len(data) != length:
        raise ValueError(f"expected {length} bytes, got {len(data)}")
    return data


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("a member name appears twice")
    return obj


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def loads_strict(data: bytes) -> object:
    """Parse JSON text strictly; ``ValueError`` for anything else.

    UTF-8 only (no BOM, no lone surrogates in the bytes), no duplicate member
    names (two readers could otherwise see different values), no ``NaN`` or
    ``Infinity``; nesting too deep for the parser is refused, not a crash.
    """
    try:
        text = data.decode("utf-8")
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None
