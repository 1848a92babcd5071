"""bidreceipt/v1: issue, verify offline, refuse forgeries."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from opening import receipts
from opening.crypto_errors import EnvelopeError, b64u, unb64u

FIELDS = {"tender": "T-1", "bidder": "b-1", "sha256": "0f" * 32, "size": 1234,
          "at": 1_790_000_000_123, "upload": "u-9f8e"}


def refusal(call: object, *args: object, **kw: object) -> str:
    with pytest.raises(EnvelopeError) as caught:
        call(*args, **kw)  # type: ignore[operator]
    return caught.value.code


@pytest.fixture(scope="module")
def platform() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)


def test_issue_and_verify(platform: Ed25519PrivateKey) -> None:
    receipt = receipts.issue(platform, **FIELDS)  # type: ignore[arg-type]
    assert sorted(receipt) == sorted([*FIELDS, "v", "key", "sig"])
    assert receipt["v"] == "bidreceipt/v1"
    assert receipt["key"] == hashlib.sha256(raw(platform)).hexdigest()
    assert receipt["key"] == receipts.key_id(platform.public_key())
    receipts.verify(receipt, platform.public_key())
    receipts.verify(json.dumps(receipt).encode(), platform.public_key())
    receipts.verify(json.dumps(receipt, indent=2, ensure_ascii=False).encode(),
                    platform.public_key())
    # The signature covers the documented canonical bytes, checked without receipts.py.
    body = {k: v for k, v in receipt.items() if k != "sig"}
    signed = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    platform.public_key().verify(unb64u(receipt["sig"], 64), signed)


def test_canonical_json() -> None:
    assert receipts.canonical({"b": 1, "a": "上传", "c": "x\"y"}) == \
        '{"a":"上传","b":1,"c":"x\\"y"}'.encode()


def test_non_ascii_upload_ids_are_signed_as_themselves(platform: Ed25519PrivateKey) -> None:
    receipt = receipts.issue(platform, **{**FIELDS, "upload": "上传-1"})  # type: ignore[arg-type]
    receipts.verify(json.dumps(receipt, ensure_ascii=False).encode(), platform.public_key())
    receipts.verify(json.dumps(receipt, ensure_ascii=True).encode(), platform.public_key())


def test_every_altered_member_breaks_the_signature(platform: Ed25519PrivateKey) -> None:
    receipt = receipts.issue(platform, **FIELDS)  # type: ignore[arg-type]
    changes = {"tender": "T-2", "bidder": "b-2", "sha256": "1f" * 32, "size": 1235,
               "at": 1_790_000_000_124, "upload": "u-9f8f"}
    for name, value in changes.items():
        forged = {**receipt, name: value}
        assert refusal(receipts.verify, forged, platform.public_key()) == "bad_signature", name
    sig = bytearray(unb64u(receipt["sig"]))
    sig[10] ^= 1
    forged = {**receipt, "sig": b64u(bytes(sig))}
    assert refusal(receipts.verify, forged, platform.public_key()) == "bad_signature"


def test_another_platform_key(platform: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    receipt = receipts.issue(other, **FIELDS)  # type: ignore[arg-type]
    assert refusal(receipts.verify, receipt, platform.public_key()) == "wrong_key"
    claimed = {**receipt, "key": receipts.key_id(platform.public_key())}
    assert refusal(receipts.verify, claimed, platform.public_key()) == "bad_signature"


def test_malformed_receipts(platform: Ed25519PrivateKey) -> None:
    receipt = receipts.issue(platform, **FIELDS)  # type: ignore[arg-type]
    public = platform.public_key()
    malformed: list[object] = [
        b"", b"not json", b"[]", b'{"v":"bidreceipt/v1"}', b"\xff\xfe", b"[" * 5000,
        json.dumps(receipt).replace('"v"', '"v": "x", "v"', 1).encode(),  # duplicate member
        [], "text", 42,
        {k: v for k, v in receipt.items() if k != "at"},
        {**receipt, "extra": 1},
        {**receipt, "v": "bidreceipt/v2"},
        {**receipt, "size": "1234"}, {**receipt, "size": -1}, {**receipt, "size": 1234.0},
        {**receipt, "at": True}, {**receipt, "at": 2**53},
        {**receipt, "sha256": "0F" * 32}, {**receipt, "sha256": "0f" * 31},
        {**receipt, "tender": ""}, {**receipt, "bidder": "b 1"},
        {**receipt, "upload": ""}, {**receipt, "upload": "x" * 257},
        {**receipt, "upload": "\ud800"}, {**receipt, "key": "xyz"},
        {**receipt, "sig": receipt["sig"] + "="}, {**receipt, "sig": b64u(bytes(63))},
        {**receipt, "sig": None},
    ]
    for bad in malformed:
        assert refusal(receipts.verify, bad, public) == "bad_receipt", bad


def test_issue_refuses_bad_fields(platform: Ed25519PrivateKey) -> None:
    for change in ({"sha256": "abc"}, {"size": -1}, {"tender": "标段"}, {"upload": ""},
                   {"at": 1.5}):
        assert refusal(receipts.issue, platform, **{**FIELDS, **change}) == "bad_receipt"


def test_load_platform_key(platform: Ed25519PrivateKey) -> None:
    public = platform.public_key()
    pem = public.public_bytes(serialization.Encoding.PEM,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    for data in (b64u(raw(platform)).encode(), b64u(raw(platform)).encode() + b"\n", pem,
                 b"\n" + pem + b"\n"):
        assert receipts.key_id(receipts.load_platform_key(data)) == receipts.key_id(public)
    p256_pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for bad in (b"", b"abc", b64u(bytes(31)).encode(), p256_pem,
                b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "密钥".encode()):
        assert refusal(receipts.load_platform_key, bad) == "bad_public_key", bad
