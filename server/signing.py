"""The platform's Ed25519 signing key: receipts and opening records are signed with it.

The key lives in the store (made once, at the first start, like the token secret), so
every process serving the same database signs with the same key. ``BIDHALL_SIGNING_KEY``
names a PEM file to use instead (a key kept outside the database, e.g. on an HSM-backed
mount); the public half is served at ``GET /api/platform-key`` and printed by
``bidhall platform-key``.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SETTING = "signing_key_ed25519"


def _pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _load(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the platform signing key must be an Ed25519 private key (PEM)")
    return key


async def load_signing_key(store: Any, path: Path | None) -> Ed25519PrivateKey:
    """The platform key: from ``path`` when given, else from the store (made on first use)."""
    if path is not None:
        return _load(path.read_bytes())
    pem = await store.setting(SETTING, lambda: _pem(Ed25519PrivateKey.generate()))
    return _load(pem.encode())


def public_raw(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def describe(key: Ed25519PrivateKey) -> dict[str, str]:
    """The public half as ``GET /api/platform-key`` serves it."""
    raw = public_raw(key)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"algorithm": "Ed25519", "key_id": hashlib.sha256(raw).hexdigest(),
            "public": base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), "pem": pem.decode()}
