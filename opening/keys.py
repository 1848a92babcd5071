"""The bidder's P-256 key pair and its ``bidkey/v1`` backup file.

The key pair is made on the bidder's side; the platform only ever sees the public
key (65-byte uncompressed point) and its fingerprint (hex SHA-256 of those bytes).
The backup holds the private key as PKCS#8 DER, exactly what WebCrypto's
``exportKey("pkcs8")`` writes and ``importKey("pkcs8", ..., {name: "ECDH",
namedCurve: "P-256"})`` reads, sealed with AES-256-GCM under a PBKDF2-SHA256 key.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from .crypto_errors import EnvelopeError, b64u, is_id, loads_strict, unb64u

VERSION: Final = "bidkey/v1"
KDF: Final = "PBKDF2-SHA256"
ITERATIONS: Final = 600_000
#: Readers refuse fewer (too weak) or more (a file that would hang the reader).
MIN_ITERATIONS: Final = 100_000
MAX_ITERATIONS: Final = 10_000_000
PUBLIC_LENGTH: Final = 65
_MEMBERS: Final = frozenset({"v", "bidder", "public", "fingerprint", "kdf", "iterations",
                             "salt", "iv", "sealed"})

PublicOrPrivate = ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey


def generate() -> ec.EllipticCurvePrivateKey:
    """A new P-256 key pair."""
    return ec.generate_private_key(ec.SECP256R1())


def public_bytes(key: PublicOrPrivate) -> bytes:
    """The 65-byte uncompressed point (``04 || X || Y``) of ``key`` or of its public half."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(serialization.Encoding.X962,
                               serialization.PublicFormat.UncompressedPoint)


def load_public(data: bytes) -> ec.EllipticCurvePublicKey:
    """The P-256 public key of a 65-byte uncompressed point; ``bad_public_key`` otherwise."""
    if not isinstance(data, bytes) or len(data) != PUBLIC_LENGTH or data[0] != 4:
        raise EnvelopeError("bad_public_key",
                            "a public key is a 65-byte uncompressed P-256 point (04 || X || Y)")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), data)
    except ValueError:
        raise EnvelopeError("bad_public_key", "the public key is not a point on P-256") from None


def fingerprint(public: bytes) -> str:
    """The lowercase hex SHA-256 of a 65-byte public key (checked: ``bad_public_key``)."""
    load_public(public)
    return hashlib.sha256(public).hexdigest()


def _pkcs8(key: ec.EllipticCurvePrivateKey) -> bytes:
    # OpenSSL writes the same 138 bytes as WebCrypto: ECPrivateKey with the public key,
    # curve named once in the AlgorithmIdentifier.
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _derive(password: str, salt: bytes, iterations: int) -> bytes:
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=iterations)
    return kdf.derive(password.encode("utf-8"))


def backup(key: ec.EllipticCurvePrivateKey, bidder: str, password: str,
           iterations: int = ITERATIONS) -> bytes:
    """The ``bidkey/v1`` file (UTF-8 JSON) holding ``key`` under ``password``.

    Refuses an invalid bidder id (``bad_id``) and an empty password (``weak_password``).
    """
    if not is_id(bidder):
        raise EnvelopeError("bad_id", f"the bidder id {bidder!r:.80} is not valid")
    if not isinstance(password, str) or not password:
        raise EnvelopeError("weak_password", "the password must not be empty")
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise TypeError("backup() needs a P-256 private key")
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"iterations must be {MIN_ITERATIONS} to {MAX_ITERATIONS}")
    public = public_bytes(key)
    salt, iv = os.urandom(16), os.urandom(12)
    sealed = AESGCM(_derive(password, salt, iterations)).encrypt(
        iv, _pkcs8(key), VERSION.encode() + public)
    doc = {"v": VERSION, "bidder": bidder, "public": b64u(public),
           "fingerprint": hashlib.sha256(public).hexdigest(), "kdf": KDF,
           "iterations": iterations, "salt": b64u(salt), "iv": b64u(iv), "sealed": b64u(sealed)}
    return (json.dumps(doc, indent=1) + "\n").encode("utf-8")


@dataclass(frozen=True, slots=True)
class KeyFile:
    """The public part of a ``bidkey/v1`` file, checked; readable without the password."""

    bidder: str
    public: bytes
    iterations: int
    salt: bytes
    iv: bytes
    sealed: bytes

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.public).hexdigest()


def _bad(message: str) -> EnvelopeError:
    return EnvelopeError("bad_key_file", message)


def read_key_file(data: bytes) -> KeyFile:
    """Check a ``bidkey/v1`` file without its password; ``bad_key_file`` if malformed."""
    try:
        obj = loads_strict(data)
    except ValueError as exc:
        raise _bad(f"the key file is not JSON: {str(exc)[:200]}") from None
    if not isinstance(obj, Mapping):
        raise _bad("the key file must be a JSON object")
    if obj.get("v") != VERSION:
        raise _bad(f"not a {VERSION} key file")
    if set(obj) != _MEMBERS:
        raise _bad(f"a {VERSION} file has exactly the members {', '.join(sorted(_MEMBERS))}")
    if obj["kdf"] != KDF:
        raise _bad(f"the key derivation must be {KDF}")
    if not is_id(obj["bidder"]):
        raise _bad("the bidder id is not valid")
    iterations = obj["iterations"]
    if type(iterations) is not int or not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise _bad(f"iterations must be a whole number from {MIN_ITERATIONS} to {MAX_ITERATIONS}")
    try:
        public = unb64u(obj["public"], PUBLIC_LENGTH)
        salt = unb64u(obj["salt"], 16)
        iv = unb64u(obj["iv"], 12)
        sealed = unb64u(obj["sealed"])
    except ValueError as exc:
        raise _bad(f"a binary member is not valid: {exc}") from None
    try:
        load_public(public)
    except EnvelopeError:
        raise _bad("the public key is not a P-256 point") from None
    if obj["fingerprint"] != hashlib.sha256(public).hexdigest():
        raise _bad("the fingerprint does not match the public key")
    if len(sealed) < 16:
        raise _bad("the sealed private key is too short")
    return KeyFile(obj["bidder"], public, iterations, salt, iv, sealed)


def restore(data: bytes, password: str) -> tuple[ec.EllipticCurvePrivateKey, str]:
    """The private key and bidder id of a ``bidkey/v1`` file.

    Codes: ``bad_key_file`` (malformed, or the key inside does not match ``public``),
    ``wrong_password``.
    """
    info = read_key_file(data)
    try:
        pkcs8 = AESGCM(_derive(password, info.salt, info.iterations)).decrypt(
            info.iv, info.sealed, VERSION.encode() + info.public)
    except InvalidTag:
        raise EnvelopeError("wrong_password") from None
    try:
        key = serialization.load_der_private_key(pkcs8, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise _bad("the sealed private key is not PKCS#8") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise _bad("the sealed private key is not a P-256 key")
    if public_bytes(key) != info.public:
        raise _bad("the sealed private key does not match the public key")
    return key, info.bidder
