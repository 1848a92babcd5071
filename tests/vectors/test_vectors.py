"""The shared vectors (bidenv, bidkey, bidreceipt): Python reads every one as the files say.

The browser implementation runs the same files; make_vectors.py writes them from the
reference implementation, and a test checks the stored files are current.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from opening import keys, receipts
from opening.envelope import (
    CHUNK,
    EnvelopeError,
    check_structure,
    open_envelope,
    parse_header,
    unwrap,
)
from tests.vectors import reference as ref

VECTORS = Path(__file__).parent


def refusal(call: object, *args: object, **kw: object) -> str:
    with pytest.raises(EnvelopeError) as caught:
        call(*args, **kw)  # type: ignore[operator]
    return caught.value.code


def opened(envelope: bytes, file_key: bytes) -> tuple[dict[str, object], bytes]:
    document = io.BytesIO()
    summary = open_envelope(io.BytesIO(envelope), file_key, document)
    return summary.to_json(), document.getvalue()


def _bidenv() -> dict[str, object]:
    data: dict[str, object] = json.loads((VECTORS / "bidenv-v1.json").read_text())
    return data


def _private(entry: dict[str, str]) -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    loaded = load_der_private_key(bytes.fromhex(entry["private_pkcs8"]), None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    assert keys.public_bytes(loaded).hex() == entry["public"]
    return loaded


def test_valid_vectors_open() -> None:
    vectors = _bidenv()
    key_table: dict[str, dict[str, str]] = vectors["keys"]  # type: ignore[assignment]
    cases: list[dict[str, object]] = vectors["valid"]  # type: ignore[assignment]
    assert len(cases) >= 5
    for case in cases:
        entry = key_table[str(case["key"])]
        envelope = bytes.fromhex(str(case["envelope"]))
        assert hashlib.sha256(envelope).hexdigest() == case["sha256"]
        header = check_structure(io.BytesIO(envelope), tender=str(case["tender"]),
                                 bidder=str(case["bidder"]), recipient=entry["fingerprint"])
        file_key = unwrap(header, _private(entry))
        assert file_key.hex() == case["file_key"], case["name"]
        summary, document = opened(envelope, file_key)
        assert summary == case["summary"], case["name"]
        assert document.hex() == case["document"], case["name"]


def test_invalid_vectors_are_refused_at_the_stated_stage() -> None:
    vectors = _bidenv()
    key_table: dict[str, dict[str, str]] = vectors["keys"]  # type: ignore[assignment]
    cases: list[dict[str, object]] = vectors["invalid"]  # type: ignore[assignment]
    assert len(cases) >= 50
    for case in cases:
        entry = key_table[str(case["key"])]
        envelope = bytes.fromhex(str(case["envelope"]))
        expect: dict[str, str | None] = case["expect"]  # type: ignore[assignment]
        got: dict[str, str | None] = {}
        try:
            header = check_structure(io.BytesIO(envelope), tender=str(case["tender"]),
                                     bidder=str(case["bidder"]), recipient=entry["fingerprint"])
            got["structure"] = None
        except EnvelopeError as exc:
            got["structure"] = exc.code
        if "unwrap" in expect:
            try:
                unwrap(header, _private(entry))
                got["unwrap"] = None
            except EnvelopeError as exc:
                got["unwrap"] = exc.code
        if "open" in expect:
            try:
                open_envelope(io.BytesIO(envelope), bytes.fromhex(str(case["file_key"])))
                got["open"] = None
            except EnvelopeError as exc:
                got["open"] = exc.code
        assert got == expect, case["name"]
        assert any(code is not None for code in got.values()), case["name"]


def test_generated_two_chunk_vector() -> None:
    from tests.vectors.make_vectors import two_chunk_document

    vectors = _bidenv()
    (case,) = vectors["generated"]  # type: ignore[misc]
    key = _private(vectors["keys"][case["key"]])  # type: ignore[index]
    head = bytes.fromhex(case["prefix"])
    header = parse_header(head)
    file_key = bytes.fromhex(case["file_key"])
    assert unwrap(header, key) == file_key
    document = two_chunk_document(case["document"]["length"])
    plain = ref.plaintext(ref.summary_bytes(case["summary"]), document)
    envelope = head + ref.encrypt_chunks(file_key, header.nonce, head, ref.split(plain))
    assert len(envelope) == case["length"] == header.length
    assert hashlib.sha256(envelope).hexdigest() == case["sha256"]
    assert header.chunks == 2
    assert opened(envelope, file_key) == (case["summary"], document)
    first_end = len(head) + CHUNK + 16
    donor = ref.Sealed(seed="test/donor", recipient=keys.public_bytes(key),
                       tender=header.tender, bidder=header.bidder, data=plain).envelope()
    assert len(donor) == len(envelope)
    variants = {"final chunk dropped": envelope[:first_end],
                "chunks swapped": head + envelope[first_end:] + envelope[len(head):first_end],
                "final chunk from another envelope": envelope[:first_end] + donor[first_end:]}
    for name, variant in variants.items():
        assert refusal(open_envelope, io.BytesIO(variant), file_key) == "bad_chunk", name


def test_stored_vectors_are_what_make_vectors_writes() -> None:
    from tests.vectors.make_vectors import build

    built = build()
    assert sorted(built) == ["bidenv-v1.json", "bidkey-v1.json", "bidreceipt-v1.json"]
    for name, content in built.items():
        assert (VECTORS / name).read_bytes() == content, "run python -m tests.vectors.make_vectors"
    assert sum(len(c) for c in built.values()) < 100_000


def _load(name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((VECTORS / name).read_text())
    return data


def test_bidkey_vectors() -> None:
    vectors = _load("bidkey-v1.json")
    (case,) = vectors["valid"]  # type: ignore[misc]
    info = keys.read_key_file(case["file"].encode())
    assert info.public.hex() == case["public"]
    assert info.fingerprint == case["fingerprint"] == keys.fingerprint(info.public)
    key, bidder = keys.restore(case["file"].encode(), case["password"])
    assert bidder == case["bidder"]
    assert keys.public_bytes(key).hex() == case["public"]
    assert keys._pkcs8(key).hex() == case["private_pkcs8"]
    for bad in vectors["invalid"]:  # type: ignore[attr-defined]
        code = refusal(keys.restore, bad["file"].encode(), bad["password"])
        assert code == bad["code"], bad["name"]


def test_receipt_vectors() -> None:
    vectors = _load("bidreceipt-v1.json")
    platform = vectors["platform_key"]
    public = receipts.load_platform_key(platform["public"].encode())  # type: ignore[index]
    assert receipts.key_id(receipts.load_platform_key(
        platform["pem"].encode())) == receipts.key_id(public)  # type: ignore[index]
    (case,) = vectors["valid"]  # type: ignore[misc]
    body = {k: v for k, v in case["receipt"].items() if k != "sig"}
    assert receipts.canonical(body) == case["signed"].encode()
    receipts.verify(case["receipt"], public)
    receipts.verify(json.dumps(case["receipt"], ensure_ascii=False).encode(), public)
    for bad in vectors["invalid"]:  # type: ignore[attr-defined]
        assert refusal(receipts.verify, bad["receipt"], public) == bad["code"], bad["name"]
