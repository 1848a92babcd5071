"""A second, deliberately naive implementation of docs/sealed-bids.md, written from the spec.

It shares no code with ``opening/``: HPKE (RFC 9180) is spelled out from HMAC and
ECDH, and all randomness comes from a seed, so the vectors it makes are the same on
every run. The tests check that the two implementations agree byte for byte; the
browser implementation is checked against the vectors this one writes.

Everything here holds whole envelopes in memory: fine for vectors, not for bids.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"BIDENV\x00\x01"
CHUNK = 1 << 20
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def seeded(label: str, n: int) -> bytes:
    """``n`` deterministic bytes named by ``label``."""
    out, counter = b"", 0
    while len(out) < n:
        out += hashlib.sha256(f"{label}/{counter}".encode()).digest()
        counter += 1
    return out[:n]


def p256_key(label: str) -> ec.EllipticCurvePrivateKey:
    """A deterministic P-256 private key."""
    scalar = int.from_bytes(seeded(label, 40), "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def point(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(serialization.Encoding.X962,
                               serialization.PublicFormat.UncompressedPoint)


def pkcs8(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# ------------------------------------------------------------------ RFC 9180, base mode
_KEM_SUITE = b"KEM" + struct.pack(">H", 0x0010)
_HPKE_SUITE = b"HPKE" + struct.pack(">HHH", 0x0010, 0x0001, 0x0002)


def _extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.digest(salt, ikm, "sha256")


def _expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes([counter]), "sha256")
        out += block
        counter += 1
    return out[:length]


def _labeled_extract(suite: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(salt, b"HPKE-v1" + suite + label + ikm)


def _labeled_expand(suite: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return _expand(prk, struct.pack(">H", length) + b"HPKE-v1" + suite + label + info, length)


def _key_schedule(shared_secret: bytes, info: bytes) -> tuple[bytes, bytes]:
    psk_id_hash = _labeled_extract(_HPKE_SUITE, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(_HPKE_SUITE, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash
    secret = _labeled_extract(_HPKE_SUITE, shared_secret, b"secret", b"")
    key = _labeled_expand(_HPKE_SUITE, secret, b"key", context, 32)
    base_nonce = _labeled_expand(_HPKE_SUITE, secret, b"base_nonce", context, 12)
    return key, base_nonce


def _shared_secret(dh: bytes, enc: bytes, recipient: bytes) -> bytes:
    eae_prk = _labeled_extract(_KEM_SUITE, b"", b"eae_prk", dh)
    return _labeled_expand(_KEM_SUITE, eae_prk, b"shared_secret", enc + recipient, 32)


def hpke_seal(recipient: bytes, info: bytes, plaintext: bytes,
              ephemeral: ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    """SealBase with a given ephemeral key: ``(enc, ciphertext)``."""
    pk = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), recipient)
    enc = point(ephemeral)
    secret = _shared_secret(ephemeral.exchange(ec.ECDH(), pk), enc, recipient)
    key, nonce = _key_schedule(secret, info)
    return enc, AESGCM(key).encrypt(nonce, plaintext, b"")


def hpke_open(private: ec.EllipticCurvePrivateKey, info: bytes, enc: bytes,
              ciphertext: bytes) -> bytes:
    """OpenBase: raises ``cryptography.exceptions.InvalidTag`` if it does not open."""
    pk = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), enc)
    secret = _shared_secret(private.exchange(ec.ECDH(), pk), enc, point(private))
    key, nonce = _key_schedule(secret, info)
    return AESGCM(key).decrypt(nonce, ciphertext, b"")


# ------------------------------------------------------------------ bidenv/v1
def hkdf(file_key: bytes, info: bytes) -> bytes:
    return _expand(_extract(b"", file_key), info, 32)


def commitment(file_key: bytes, nonce: bytes) -> bytes:
    commit_key = hkdf(file_key, b"bidenv/v1 commit")
    return hmac.digest(commit_key, b"bidenv/v1 key commitment" + nonce, "sha256")


def hpke_info(tender: str, bidder: str) -> bytes:
    return b"bidenv/v1 " + tender.encode() + b"\x00" + bidder.encode()


def header_members(*, tender: str, bidder: str, recipient: bytes, size: int, nonce: bytes,
                   enc: bytes, wrapped: bytes, commit: bytes) -> dict[str, object]:
    return {"bidder": bidder, "chunk": CHUNK, "commit": b64u(commit), "enc": b64u(enc),
            "nonce": b64u(nonce), "recipient": hashlib.sha256(recipient).hexdigest(),
            "size": size, "tender": tender, "v": "bidenv/v1", "wrapped": b64u(wrapped)}


def header_bytes(members: dict[str, object]) -> bytes:
    return json.dumps(members, sort_keys=True, separators=(",", ":")).encode()


def prefix(raw_header: bytes) -> bytes:
    return MAGIC + struct.pack(">I", len(raw_header)) + raw_header


def plaintext(summary: bytes, document: bytes) -> bytes:
    return struct.pack(">I", len(summary)) + summary + document


def summary_bytes(summary: dict[str, object]) -> bytes:
    return json.dumps(summary, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def split(data: bytes) -> list[bytes]:
    """The plaintext chunks: an empty plaintext is one empty chunk."""
    return [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]


def encrypt_chunks(file_key: bytes, nonce: bytes, head: bytes, chunks: list[bytes],
                   last: list[bool] | None = None) -> bytes:
    """The chunk section for ``head`` (magic, hlen, header); ``last`` overrides the flags."""
    aes = AESGCM(hkdf(file_key, b"bidenv/v1 content"))
    aad = hashlib.sha256(head).digest()
    flags = last if last is not None else [i == len(chunks) - 1 for i in range(len(chunks))]
    return b"".join(
        aes.encrypt(nonce + struct.pack(">I", i) + (b"\x01" if flag else b"\x00"), chunk, aad)
        for i, (chunk, flag) in enumerate(zip(chunks, flags, strict=True)))


class Sealed:
    """One envelope and everything used to make it, for building variants."""

    def __init__(self, *, seed: str, recipient: bytes, tender: str, bidder: str,
                 data: bytes, wrap_tender: str | None = None,
                 wrap_bidder: str | None = None) -> None:
        self.recipient, self.tender, self.bidder, self.data = recipient, tender, bidder, data
        self.file_key = seeded(seed + "/file_key", 32)
        self.nonce = seeded(seed + "/nonce", 7)
        info = hpke_info(wrap_tender or tender, wrap_bidder or bidder)
        self.enc, self.wrapped = hpke_seal(recipient, info, self.file_key,
                                           p256_key(seed + "/ephemeral"))
        self.members = header_members(
            tender=tender, bidder=bidder, recipient=recipient, size=len(data), nonce=self.nonce,
            enc=self.enc, wrapped=self.wrapped, commit=commitment(self.file_key, self.nonce))

    def head(self, **changes: object) -> bytes:
        return prefix(header_bytes({**self.members, **changes}))

    def envelope(self, head: bytes | None = None, chunks: list[bytes] | None = None,
                 last: list[bool] | None = None, file_key: bytes | None = None) -> bytes:
        head = head if head is not None else self.head()
        chunks = chunks if chunks is not None else split(self.data)
        return head + encrypt_chunks(file_key or self.file_key, self.nonce, head, chunks, last)
