"""The bidder's P-256 key and its bidkey/v1 backup file."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from opening import keys
from opening.crypto_errors import EnvelopeError, b64u, unb64u

FAST = 100_000  # the least a reader accepts; the default (600,000) is tested once
PASSWORD = "correct horse 电池"

# WebCrypto's exportKey("pkcs8") of a P-256 key: PrivateKeyInfo(ecPublicKey, prime256v1,
# ECPrivateKey(version 1, d, [1] public key)) with no [0] parameters: 138 bytes.
WEBCRYPTO_HEAD = bytes.fromhex("308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b"
                               "0201010420")
WEBCRYPTO_MIDDLE = bytes.fromhex("a144034200")


def refusal(call: object, *args: object, **kw: object) -> str:
    with pytest.raises(EnvelopeError) as caught:
        call(*args, **kw)  # type: ignore[operator]
    return caught.value.code


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return keys.generate()


@pytest.fixture(scope="module")
def key_file(key: ec.EllipticCurvePrivateKey) -> bytes:
    return keys.backup(key, "bidder-1", PASSWORD, FAST)


def test_public_key_and_fingerprint(key: ec.EllipticCurvePrivateKey) -> None:
    public = keys.public_bytes(key)
    assert len(public) == 65 and public[0] == 4
    assert keys.public_bytes(key.public_key()) == public
    assert keys.public_bytes(keys.load_public(public)) == public
    assert keys.fingerprint(public) == hashlib.sha256(public).hexdigest()
    assert len(keys.fingerprint(public)) == 64
    assert keys.fingerprint(keys.public_bytes(keys.generate())) != keys.fingerprint(public)


def test_bad_public_keys(key: ec.EllipticCurvePrivateKey) -> None:
    public = keys.public_bytes(key)
    compressed = key.public_key().public_bytes(serialization.Encoding.X962,
                                               serialization.PublicFormat.CompressedPoint)
    for bad in (b"", public[:-1], public + b"\x00", compressed, b"\x05" + public[1:],
                b"\x04" + bytes(64), public[:64] + bytes([public[64] ^ 1]),
                b64u(public).encode()):
        assert refusal(keys.load_public, bad) == "bad_public_key"
        assert refusal(keys.fingerprint, bad) == "bad_public_key"


def test_backup_restore(key: ec.EllipticCurvePrivateKey, key_file: bytes) -> None:
    restored, bidder = keys.restore(key_file, PASSWORD)
    assert bidder == "bidder-1"
    assert restored.private_numbers() == key.private_numbers()
    doc = json.loads(key_file)
    assert list(doc) == ["v", "bidder", "public", "fingerprint", "kdf", "iterations", "salt",
                         "iv", "sealed"]
    assert doc["v"] == "bidkey/v1" and doc["kdf"] == "PBKDF2-SHA256"
    assert unb64u(doc["public"]) == keys.public_bytes(key)
    assert doc["fingerprint"] == keys.fingerprint(keys.public_bytes(key))
    info = keys.read_key_file(key_file)
    assert (info.bidder, info.public, info.iterations) == ("bidder-1", keys.public_bytes(key),
                                                           FAST)


def test_default_iterations_are_600000(key: ec.EllipticCurvePrivateKey) -> None:
    data = keys.backup(key, "b", "pass")
    assert json.loads(data)["iterations"] == 600_000
    assert keys.restore(data, "pass")[1] == "b"


def test_the_sealed_key_is_webcrypto_pkcs8(key: ec.EllipticCurvePrivateKey,
                                           key_file: bytes) -> None:
    """Decrypt as a browser would (PBKDF2, AES-GCM, aad) and check the PKCS#8 layout."""
    doc = json.loads(key_file)
    public = unb64u(doc["public"])
    kek = PBKDF2HMAC(algorithm=SHA256(), length=32, salt=unb64u(doc["salt"]),
                     iterations=doc["iterations"]).derive(PASSWORD.encode())
    pkcs8 = AESGCM(kek).decrypt(unb64u(doc["iv"]), unb64u(doc["sealed"]),
                                b"bidkey/v1" + public)
    d = key.private_numbers().private_value.to_bytes(32, "big")
    assert pkcs8 == WEBCRYPTO_HEAD + d + WEBCRYPTO_MIDDLE + public
    assert len(pkcs8) == 138


def test_each_backup_has_its_own_salt_and_iv(key: ec.EllipticCurvePrivateKey,
                                             key_file: bytes) -> None:
    again = json.loads(keys.backup(key, "bidder-1", PASSWORD, FAST))
    first = json.loads(key_file)
    assert again["salt"] != first["salt"] and again["iv"] != first["iv"]


def test_wrong_password(key_file: bytes) -> None:
    for password in ("", PASSWORD + " ", PASSWORD.upper(), "correct horse 电"):
        assert refusal(keys.restore, key_file, password) == "wrong_password"


def test_backup_refuses_bad_input(key: ec.EllipticCurvePrivateKey) -> None:
    assert refusal(keys.backup, key, "", PASSWORD, FAST) == "bad_id"
    assert refusal(keys.backup, key, "投标人", PASSWORD, FAST) == "bad_id"
    assert refusal(keys.backup, key, "b", "", FAST) == "weak_password"


def _reseal(doc: dict[str, object], inner: bytes, password: str = PASSWORD) -> bytes:
    """``doc`` with its sealed member replaced by ``inner`` sealed under ``password``."""
    kek = PBKDF2HMAC(algorithm=SHA256(), length=32, salt=unb64u(doc["salt"]),
                     iterations=int(str(doc["iterations"]))).derive(password.encode())
    sealed = AESGCM(kek).encrypt(unb64u(doc["iv"]), inner,
                                 b"bidkey/v1" + unb64u(doc["public"]))
    return json.dumps({**doc, "sealed": b64u(sealed)}).encode()


def test_malformed_key_files(key_file: bytes) -> None:
    doc = json.loads(key_file)
    other = keys.generate()
    other_public = keys.public_bytes(other)

    def changed(**change: object) -> bytes:
        return json.dumps({**doc, **change}).encode()

    malformed = {
        "not json": b"-----BEGIN PRIVATE KEY-----",
        "not utf-8": b'{"v":"\xff"}',
        "array": b"[]",
        "empty": b"",
        "wrong version": changed(v="bidkey/v2"),
        "wrong kdf": changed(kdf="scrypt"),
        "missing member": json.dumps({k: v for k, v in doc.items() if k != "iv"}).encode(),
        "extra member": changed(comment="x"),
        "duplicate member": key_file.replace(b'"v": "bidkey/v1",',
                                             b'"v": "bidkey/v1", "v": "bidkey/v1",'),
        "too few iterations": changed(iterations=99_999),
        "too many iterations": changed(iterations=10**12),
        "iterations as text": changed(iterations="100000"),
        "iterations as float": changed(iterations=100000.0),
        "iterations as bool": changed(iterations=True),
        "bad bidder": changed(bidder="a b"),
        "short salt": changed(salt=b64u(bytes(15))),
        "long iv": changed(iv=b64u(bytes(13))),
        "padded b64u": changed(iv=doc["iv"] + "="),
        "public not a point": changed(public=b64u(b"\x04" + bytes(64))),
        "fingerprint mismatch": changed(fingerprint="0" * 64),
        "public swapped with fingerprint": changed(
            public=b64u(other_public), fingerprint=hashlib.sha256(other_public).hexdigest()),
        "sealed too short": changed(sealed=b64u(bytes(8))),
    }
    for name, data in malformed.items():
        code = refusal(keys.restore, data, PASSWORD)
        # Swapping in another public key breaks the AES-GCM aad: indistinguishable from a
        # wrong password, which is what it reports.
        expected = "wrong_password" if name == "public swapped with fingerprint" else \
            "bad_key_file"
        assert code == expected, name
    sealed_not_pkcs8 = _reseal(doc, b"not a key")
    assert refusal(keys.restore, sealed_not_pkcs8, PASSWORD) == "bad_key_file"
    ed = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    assert refusal(keys.restore, _reseal(doc, ed), PASSWORD) == "bad_key_file"
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    assert refusal(keys.restore, _reseal(doc, p384), PASSWORD) == "bad_key_file"
    another = other.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    assert refusal(keys.restore, _reseal(doc, another), PASSWORD) == "bad_key_file"
    assert keys.restore(_reseal(doc, keys._pkcs8(keys.restore(key_file, PASSWORD)[0])),
                        PASSWORD)[1] == "bidder-1"


def test_b64u_is_strict() -> None:
    assert unb64u("AQID") == b"\x01\x02\x03"
    assert unb64u("_-8", 2) == b"\xff\xef"
    assert unb64u("") == b""
    for bad in ("AQID=", "AQ==", "AQI+", "AQI/", "A", "AQ I", "AR", "AQJ", 5, None):
        with pytest.raises(ValueError):
            unb64u(bad)  # "AR" and "AQJ" have non-zero unused bits
    with pytest.raises(ValueError):
        unb64u("AQID", 4)
