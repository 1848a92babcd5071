"""``bidreceipt/v1``: the platform's signed receipt for a completed upload.

The platform signs (Ed25519) the canonical JSON of every member but ``sig``: sorted
keys, no whitespace, non-ASCII as itself. Anyone holding the platform's public key
checks a receipt offline with :func:`verify`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .crypto_errors import EnvelopeError, b64u, is_id, loads_strict, unb64u

VERSION: Final = "bidreceipt/v1"
MEMBERS: Final = ("at", "bidder", "key", "sha256", "sig", "size", "tender", "upload", "v")
MAX_UPLOAD_ID: Final = 256
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
_MAX_INT: Final = 2**53 - 1  # exact in every JSON reader, browsers included


def canonical(obj: Mapping[str, object]) -> bytes:
    """The bytes a signature covers: sorted keys, no whitespace, UTF-8 as itself."""
    return json.dumps(dict(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def key_id(public: Ed25519PublicKey) -> str:
    """Hex SHA-256 of the platform's raw 32-byte public key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def _bad(message: str) -> EnvelopeError:
    return EnvelopeError("bad_receipt", message)


def _check_body(body: Mapping[str, object]) -> None:
    if body.get("v") != VERSION:
        raise _bad(f"not a {VERSION} receipt")
    for name in ("tender", "bidder"):
        if not is_id(body.get(name)):
            raise _bad(f"{name} is not a valid id")
    if not isinstance(body.get("sha256"), str) or not _HEX64.fullmatch(str(body["sha256"])):
        raise _bad("sha256 must be 64 lowercase hex digits")
    for name in ("size", "at"):
        value = body.get(name)
        if type(value) is not int or not 0 <= value <= _MAX_INT:
            raise _bad(f"{name} must be a whole number from 0 to 2^53-1")
    upload = body.get("upload")
    if not isinstance(upload, str) or not 1 <= len(upload) <= MAX_UPLOAD_ID:
        raise _bad(f"upload must be a string of 1 to {MAX_UPLOAD_ID} characters")
    try:
        upload.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad("upload is not valid Unicode text") from None
    if not isinstance(body.get("key"), str) or not _HEX64.fullmatch(str(body["key"])):
        raise _bad("key must be 64 lowercase hex digits")


def issue(key: Ed25519PrivateKey, *, tender: str, bidder: str, sha256: str, size: int, at: int,
          upload: str) -> dict[str, object]:
    """A signed receipt: the members in ``docs/sealed-bids.md`` plus ``key`` and ``sig``.

    ``sha256`` is the hex digest of the whole envelope, ``size`` its length, ``at``
    the server time in milliseconds. Refuses invalid members with ``bad_receipt``.
    """
    body: dict[str, object] = {"v": VERSION, "tender": tender, "bidder": bidder,
                               "sha256": sha256, "size": size, "at": at, "upload": upload,
                               "key": key_id(key.public_key())}
    _check_body(body)
    return {**body, "sig": b64u(key.sign(canonical(body)))}


def verify(receipt: Mapping[str, object] | bytes, public: Ed25519PublicKey) -> None:
    """Check a receipt (decoded, or its JSON bytes) against the platform's public key.

    Codes: ``bad_receipt`` (malformed), ``wrong_key`` (signed by another key, per its
    ``key`` member), ``bad_signature``.
    """
    if isinstance(receipt, bytes | bytearray | memoryview):
        try:
            obj = loads_strict(bytes(receipt))
        except ValueError as exc:
            raise _bad(f"the receipt is not JSON: {str(exc)[:200]}") from None
    else:
        obj = receipt
    if not isinstance(obj, Mapping):
        raise _bad("a receipt is a JSON object")
    if sorted(map(str, obj)) != list(MEMBERS) or len(obj) != len(MEMBERS):
        raise _bad(f"a receipt has exactly the members {', '.join(MEMBERS)}")
    body = {k: v for k, v in obj.items() if k != "sig"}
    _check_body(body)
    try:
        sig = unb64u(obj["sig"], 64)
    except ValueError as exc:
        raise _bad(f"sig: {exc}") from None
    if body["key"] != key_id(public):
        raise EnvelopeError("wrong_key", f"the receipt is signed by key {str(body['key'])[:16]}"
                            f"..., not by {key_id(public)[:16]}...")
    try:
        public.verify(sig, canonical(body))
    except InvalidSignature:
        raise EnvelopeError("bad_signature") from None


def load_platform_key(data: bytes) -> Ed25519PublicKey:
    """The platform's public key from a file: b64u of the raw 32 bytes, or PEM.

    Code: ``bad_public_key``.
    """
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise EnvelopeError("bad_public_key", "the PEM file is not a public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise EnvelopeError("bad_public_key", "the platform key must be an Ed25519 key")
        return key
    try:
        raw = unb64u(text.decode("ascii"), 32)
    except (ValueError, UnicodeDecodeError):
        raise EnvelopeError("bad_public_key", "the platform key must be PEM or the base64url "
                            "of its 32 raw bytes") from None
    return Ed25519PublicKey.from_public_bytes(raw)
