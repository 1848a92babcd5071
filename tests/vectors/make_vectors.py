"""Regenerate the shared test vectors: ``python -m tests.vectors.make_vectors`` from the repo root.

The output is deterministic (every key, nonce and salt comes from a fixed seed) and is
made by :mod:`tests.vectors.reference`, not by ``opening/``, so the vectors test the
implementations rather than restate them. See README.md in this folder for the layout.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from tests.vectors import reference as ref

HERE = Path(__file__).parent
TENDER, BIDDER = "T-2025.017", "bidder_07"
PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]"
       b"/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")
ZIP = bytes.fromhex("504b0506") + bytes(18)  # an empty zip archive
FULL_SUMMARY = {"price": "12345678.90", "duration_days": 365, "quality": "合格",
                "manager": "王工", "note": "含税价\uff1b工期自开工令起算"}
#: The two-chunk case is not stored: both sides rebuild its document from this rule.
TWO_CHUNK_LENGTH = ref.CHUNK + 1000


def two_chunk_document(length: int = TWO_CHUNK_LENGTH) -> bytes:
    """Byte ``i`` of the document is ``i % 251``."""
    pattern = bytes(range(251))
    return (pattern * (length // 251 + 1))[:length]


def _key_entry(label: str) -> dict[str, str]:
    key = ref.p256_key(label)
    public = ref.point(key)
    return {"private_pkcs8": ref.pkcs8(key).hex(), "public": public.hex(),
            "fingerprint": hashlib.sha256(public).hexdigest()}


KEYS = {"bidder": "vectors/bidder-key", "other": "vectors/other-key"}


def _public(name: str) -> bytes:
    return ref.point(ref.p256_key(KEYS[name]))


def _sealed(seed: str, summary: bytes, document: bytes = b"", *, key: str = "bidder",
            tender: str = TENDER, bidder: str = BIDDER, **wrap: str) -> ref.Sealed:
    return ref.Sealed(seed=seed, recipient=_public(key), tender=tender, bidder=bidder,
                      data=ref.plaintext(summary, document), **wrap)


def _valid() -> list[dict[str, object]]:
    cases = [
        ("empty-document", {"price": "1234.50"}, b"", TENDER, BIDDER, None),
        ("one-byte-document", {"price": "0"}, b"x", TENDER, BIDDER, None),
        ("full-summary-pdf", FULL_SUMMARY, PDF, TENDER, BIDDER, None),
        ("ids-with-punctuation", {"price": "99.9"}, b"\x00\xff", "t.1-2_3", "B-9.x_y", None),
        # Readers take any JSON object: other key order, spaces, \u escapes.
        ("summary-not-canonical", {"price": "88"}, b"doc", TENDER, BIDDER,
         b'{ "note" : "\\u5de5\\u671f", "price":"88" }'),
    ]
    out: list[dict[str, object]] = []
    for name, summary, document, tender, bidder, raw in cases:
        encoded = raw if raw is not None else ref.summary_bytes(summary)
        sealed = _sealed("valid/" + name, encoded, document, tender=tender, bidder=bidder)
        envelope = sealed.envelope()
        expected = {"price": "88", "note": "工期"} if raw is not None else summary
        out.append({"name": name, "key": "bidder", "tender": tender, "bidder": bidder,
                    "file_key": sealed.file_key.hex(), "envelope": envelope.hex(),
                    "sha256": hashlib.sha256(envelope).hexdigest(), "summary": expected,
                    "document": document.hex()})
    return out


def _generated() -> list[dict[str, object]]:
    summary = {"price": "500000", "duration_days": 90}
    sealed = _sealed("generated/two-chunks", ref.summary_bytes(summary), two_chunk_document())
    envelope = sealed.envelope()
    return [{"name": "two-chunks", "key": "bidder", "tender": TENDER, "bidder": BIDDER,
             "file_key": sealed.file_key.hex(), "prefix": sealed.head().hex(),
             "length": len(envelope), "sha256": hashlib.sha256(envelope).hexdigest(),
             "summary": summary, "document": {"length": TWO_CHUNK_LENGTH, "rule": "i % 251"}}]


def _flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    return data[:offset] + bytes([data[offset] ^ (1 << bit)]) + data[offset + 1:]


def _invalid() -> list[dict[str, object]]:
    summary = ref.summary_bytes({"price": "1000"})
    base = _sealed("invalid/base", summary, b"document")
    good = base.envelope()
    head = base.head()
    raw = ref.header_bytes(base.members)
    cases: list[dict[str, object]] = []

    def add(name: str, envelope: bytes, expect: dict[str, str | None], *,
            tender: str = TENDER, bidder: str = BIDDER, file_key: bytes | None = None,
            key: str = "bidder") -> None:
        cases.append({"name": name, "key": key, "tender": tender, "bidder": bidder,
                      "file_key": (file_key or base.file_key).hex(), "envelope": envelope.hex(),
                      "expect": expect})

    def with_header(header: bytes) -> bytes:
        return ref.prefix(header) + good[len(head):]

    structure = {"structure": "not_an_envelope"}
    add("empty-file", b"", structure)
    add("pdf", PDF, structure)
    add("zip", ZIP, structure)
    add("magic-bit-flipped", _flip(good, 3), structure)
    add("version-2", good[:7] + b"\x02" + good[8:], structure)
    bad_header = {"structure": "bad_header"}
    add("magic-only", ref.MAGIC, bad_header)
    add("hlen-zero", ref.MAGIC + bytes(4) + good[12:], bad_header)
    add("hlen-too-large", ref.MAGIC + struct.pack(">I", 65537) + good[12:], bad_header)
    add("hlen-bit-flipped", _flip(good, 11), bad_header)
    add("header-past-end", head[:-5], bad_header)
    add("header-whitespace", with_header(raw.replace(b",", b", ", 1)), bad_header)
    add("header-keys-reordered",
        with_header(json.dumps(base.members, separators=(",", ":")).encode()
                    .replace(b'"v":"bidenv/v1",', b"").replace(b"{", b'{"v":"bidenv/v1",', 1)),
        bad_header)
    add("header-extra-key", with_header(raw[:-1] + b',"x":"1"}'), bad_header)
    add("header-duplicate-key", with_header(b'{"bidder":"' + BIDDER.encode() + b'",' + raw[1:]),
        bad_header)
    missing = {k: v for k, v in base.members.items() if k != "chunk"}
    add("header-missing-key", with_header(ref.header_bytes(missing)), bad_header)
    for name, change in (("chunk-not-1MiB", {"chunk": 65536}), ("wrong-v", {"v": "bidenv/v2"}),
                         ("size-negative", {"size": -1}), ("size-string", {"size": "26"}),
                         ("size-float", {"size": float(base.members["size"])}),
                         ("recipient-uppercase",
                          {"recipient": str(base.members["recipient"]).upper()}),
                         ("tender-too-long", {"tender": "T" * 65}),
                         ("tender-not-ascii", {"tender": "标段1"}),
                         ("nonce-padded", {"nonce": str(base.members["nonce"]) + "="}),
                         ("nonce-too-short", {"nonce": ref.b64u(base.nonce[:6])}),
                         ("enc-not-uncompressed",
                          {"enc": ref.b64u(b"\x02" + base.enc[1:])})):
        add("header-" + name, with_header(ref.header_bytes({**base.members, **change})),
            bad_header)
    # 7 bytes in b64u is 10 characters whose last carries 2 unused bits: set one.
    nonce = str(base.members["nonce"])
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    loose = nonce[:-1] + alphabet[alphabet.index(nonce[-1]) ^ 1]
    add("header-nonce-trailing-bits", with_header(ref.header_bytes({**base.members,
                                                                     "nonce": loose})),
        bad_header)
    add("header-escaped-string",
        with_header(raw.replace(b'"tender":"T', b'"tender":"\\u0054')), bad_header)

    length = {"structure": "bad_length", "open": "bad_chunk"}
    add("truncated-by-one", good[:-1], length)
    add("extended-by-one", good + b"\x00", length)
    add("no-chunks", head, length)
    add("wrong-tender", good, {"structure": "wrong_tender"}, tender="T-2025.018")
    add("wrong-bidder", good, {"structure": "wrong_bidder"}, bidder="bidder_08")
    add("wrong-recipient", _sealed("invalid/other-key", summary, key="other").envelope(),
        {"structure": "wrong_recipient"})

    unwrap = {"structure": None, "unwrap": "wrong_key"}
    add("wrapped-for-another-tender",
        _sealed("invalid/wrap-tender", summary, wrap_tender="T-2025.018").envelope(), unwrap)
    add("wrapped-for-another-bidder",
        _sealed("invalid/wrap-bidder", summary, wrap_bidder="bidder_08").envelope(), unwrap)
    add("wrapped-bit-flipped",
        base.envelope(head=base.head(wrapped=ref.b64u(_flip(base.wrapped, 5)))), unwrap)

    key_refused = {"structure": None, "open": "wrong_key"}
    add("wrong-file-key", good, key_refused, file_key=ref.seeded("invalid/not-the-key", 32))
    add("commit-altered", base.envelope(head=base.head(commit=ref.b64u(_flip(
        ref.commitment(base.file_key, base.nonce), 0)))), {"structure": None,
                                                          "unwrap": "wrong_key",
                                                          "open": "wrong_key"})
    chunk = {"structure": None, "unwrap": None, "open": "bad_chunk"}
    add("ciphertext-bit-flipped", _flip(good, len(head) + 3), chunk)
    add("tag-bit-flipped", _flip(good, len(good) - 1, 7), chunk)
    add("final-chunk-not-flagged-last", base.envelope(last=[False]), chunk)
    # Same-length tender: header canonical, key unwraps only for the original ids.
    other_tender = TENDER[:-1] + "8"
    add("header-tender-swapped", base.head(tender=other_tender) + good[len(head):],
        {"structure": None, "open": "bad_chunk"}, tender=other_tender)
    add("chunk-from-another-envelope",
        head + _sealed("invalid/donor", summary, b"document").envelope()[len(head):],
        {"structure": None, "open": "bad_chunk"})

    def plain_case(name: str, data: bytes) -> None:
        sealed = ref.Sealed(seed="invalid/" + name, recipient=_public("bidder"), tender=TENDER,
                            bidder=BIDDER, data=data)
        add(name, sealed.envelope(), {"structure": None, "unwrap": None, "open": "bad_summary"},
            file_key=sealed.file_key)

    plain_case("plaintext-empty", b"")
    plain_case("summary-length-one", ref.plaintext(b"{", b""))
    plain_case("summary-length-past-end", struct.pack(">I", 100) + summary)
    plain_case("summary-length-too-large", struct.pack(">I", 65537) + summary)
    bad_summaries = {
        "summary-not-json": b"price=1000",
        "summary-array": b'["1000"]',
        "summary-no-price": b'{"duration_days":30}',
        "summary-extra-member": b'{"price":"1000","deposit":"paid"}',
        "summary-price-number": b'{"price":1000}',
        "summary-price-three-decimals": b'{"price":"1000.001"}',
        "summary-price-leading-zero": b'{"price":"01000"}',
        "summary-price-negative": b'{"price":"-1"}',
        "summary-duplicate-price": b'{"price":"1","price":"1000"}',
        "summary-null-member": b'{"price":"1000","note":null}',
        "summary-duration-zero": b'{"price":"1000","duration_days":0}',
        "summary-duration-float": b'{"price":"1000","duration_days":30.0}',
        "summary-manager-too-long": json.dumps({"price": "1", "manager": "王" * 101},
                                               ensure_ascii=False).encode(),
        "summary-bad-utf8": b'{"price":"1000","note":"\xff"}',
        "summary-lone-surrogate": b'{"price":"1000","note":"\\ud800"}',
    }
    for name, text in bad_summaries.items():
        plain_case(name, ref.plaintext(text, b"doc"))
    return cases


def bidenv() -> dict[str, object]:
    return {"spec": "docs/sealed-bids.md#bidenvv1-envelope",
            "keys": {name: _key_entry(label) for name, label in KEYS.items()},
            "valid": _valid(), "generated": _generated(), "invalid": _invalid()}


def _bidkey_file(label: str, bidder: str, password: str, iterations: int,
                 sealed_key: str | None = None, aad_public: bytes | None = None) -> bytes:
    key = ref.p256_key(label)
    public = ref.point(key)
    salt, iv = ref.seeded(label + "/salt", 16), ref.seeded(label + "/iv", 12)
    kek = PBKDF2HMAC(algorithm=SHA256(), length=32, salt=salt,
                     iterations=iterations).derive(password.encode())
    inner = ref.pkcs8(ref.p256_key(sealed_key or label))
    sealed = AESGCM(kek).encrypt(iv, inner, b"bidkey/v1" + (aad_public or public))
    doc = {"v": "bidkey/v1", "bidder": bidder, "public": ref.b64u(public),
           "fingerprint": hashlib.sha256(public).hexdigest(), "kdf": "PBKDF2-SHA256",
           "iterations": iterations, "salt": ref.b64u(salt), "iv": ref.b64u(iv),
           "sealed": ref.b64u(sealed)}
    return json.dumps(doc, indent=1).encode()


def bidkey() -> dict[str, object]:
    password = "correct horse 电池 staple"
    label = "vectors/bidder-key"
    good = _bidkey_file(label, BIDDER, password, 600_000)
    weak = json.loads(_bidkey_file(label, BIDDER, password, 100_000))
    weak["iterations"] = 99_999
    tampered = json.loads(good)
    tampered["fingerprint"] = "0" * 64
    return {
        "spec": "docs/sealed-bids.md#bidkeyv1-key-backup",
        "valid": [{"name": "bidder-key", "password": password, "file": good.decode(),
                   "bidder": BIDDER, **_key_entry(label)}],
        "invalid": [
            {"name": "wrong-password", "password": password + "!", "file": good.decode(),
             "code": "wrong_password"},
            {"name": "too-few-iterations", "password": password, "file": json.dumps(weak),
             "code": "bad_key_file"},
            {"name": "fingerprint-mismatch", "password": password,
             "file": json.dumps(tampered), "code": "bad_key_file"},
            {"name": "sealed-key-is-another-key", "password": password,
             "file": _bidkey_file(label, BIDDER, password, 100_000,
                                  sealed_key="vectors/other-key").decode(),
             "code": "bad_key_file"},
        ]}


def _receipt(key: Ed25519PrivateKey, body: dict[str, object]) -> dict[str, object]:
    signed = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return {**body, "sig": ref.b64u(key.sign(signed.encode()))}


def bidreceipt() -> dict[str, object]:
    key = Ed25519PrivateKey.from_private_bytes(ref.seeded("vectors/platform-key", 32))
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    other = Ed25519PrivateKey.from_private_bytes(ref.seeded("vectors/other-platform-key", 32))
    other_raw = other.public_key().public_bytes(serialization.Encoding.Raw,
                                                serialization.PublicFormat.Raw)
    body: dict[str, object] = {
        "v": "bidreceipt/v1", "tender": TENDER, "bidder": BIDDER, "sha256": "ab" * 32,
        "size": 1_234_567, "at": 1_790_000_000_000, "upload": "上传-0001",
        "key": hashlib.sha256(raw).hexdigest()}
    good = _receipt(key, body)
    signed = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    other_body = {**body, "key": hashlib.sha256(other_raw).hexdigest()}
    missing = {k: v for k, v in good.items() if k != "at"}
    return {
        "spec": "docs/sealed-bids.md#bidreceiptv1-upload-receipt",
        "platform_key": {"public": ref.b64u(raw), "pem": pem.decode()},
        "valid": [{"name": "receipt", "receipt": good, "signed": signed}],
        "invalid": [
            {"name": "size-altered", "receipt": {**good, "size": 1_234_568},
             "code": "bad_signature"},
            {"name": "upload-altered", "receipt": {**good, "upload": "上传-0002"},
             "code": "bad_signature"},
            {"name": "signed-by-another-key", "receipt": _receipt(other, other_body),
             "code": "wrong_key"},
            {"name": "key-member-swapped", "receipt": {**good, "key": other_body["key"]},
             "code": "wrong_key"},
            {"name": "missing-member", "receipt": missing, "code": "bad_receipt"},
            {"name": "extra-member", "receipt": {**good, "note": "x"}, "code": "bad_receipt"},
            {"name": "sig-too-short", "receipt": {**good, "sig": str(good["sig"])[:-4]},
             "code": "bad_receipt"},
            {"name": "size-as-string", "receipt": {**good, "size": "1234567"},
             "code": "bad_receipt"},
        ]}


def build() -> dict[str, bytes]:
    """Every vector file's name and content."""
    files = {"bidenv-v1.json": bidenv(), "bidkey-v1.json": bidkey(),
             "bidreceipt-v1.json": bidreceipt()}
    return {name: (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode()
            for name, doc in files.items()}


def main() -> int:
    for name, content in build().items():
        (HERE / name).write_bytes(content)
        print(f"{name}: {len(content)} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
