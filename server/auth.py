"""Bearer tokens: HMAC-SHA256 signed, self-describing, checked without a database read.

A token is ``bh1.<payload>.<signature>`` (base64url). The payload names the role
(``staff``, ``bidder`` or ``publisher``), the subject (staff name, bidder id or
stream session), for bidders the lot or tender and for publishers the stream session,
and an expiry in ms. The key is the platform secret kept in the store, made at
first start, so every process serving the same database accepts the same tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

import msgspec

from .errors import ServerError

PREFIX = "bh1"
MAX_TOKEN = 2048

Role = Literal["staff", "bidder", "publisher"]


class _Payload(msgspec.Struct, forbid_unknown_fields=True):
    r: Role
    s: str
    l: str | None = None  # noqa: E741 - short keys keep tokens short
    e: int | None = None


@dataclass(frozen=True, slots=True)
class Credential:
    role: Role
    subject: str
    lot: str | None
    expires: int | None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_secret() -> str:
    return secrets.token_hex(32)


class Tokens:
    """Issues and checks tokens with one secret."""

    def __init__(self, secret: str) -> None:
        self._key = bytes.fromhex(secret)

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, f"{PREFIX}.{body}".encode(), hashlib.sha256).digest())

    def issue(self, role: Role, subject: str, lot: str | None = None,
              expires: int | None = None) -> str:
        body = _b64(msgspec.json.encode(_Payload(r=role, s=subject, l=lot, e=expires)))
        return f"{PREFIX}.{body}.{self._sign(body)}"

    def fingerprint(self, purpose: str) -> str:
        """A short public id derived from the secret (it does not reveal the secret)."""
        return hmac.new(self._key, f"fingerprint:{purpose}".encode(),
                        hashlib.sha256).hexdigest()[:12]

    def staff(self, name: str = "admin") -> str:
        """The staff token of ``name``; the same every time for the same secret."""
        return self.issue("staff", name)

    def verify(self, token: object, now: int) -> Credential:
        """The credential in ``token``; ``ServerError`` bad_token or token_expired if not valid."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN or (
                not token.isascii()):
            raise ServerError("bad_token")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != PREFIX:
            raise ServerError("bad_token", "the token is not a bidhall token")
        _, body, signature = parts
        if not hmac.compare_digest(self._sign(body), signature):
            raise ServerError("bad_token", "the token's signature does not match")
        try:
            payload = msgspec.json.decode(_unb64(body), type=_Payload)
        except (ValueError, msgspec.DecodeError):
            raise ServerError("bad_token") from None
        if payload.e is not None and payload.e <= now:
            raise ServerError("token_expired")
        return Credential(payload.r, payload.s, payload.l, payload.e)


def bearer(header: str | None) -> str | None:
    """The token in an ``Authorization: Bearer ...`` header, if any."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None
