"""Fuzzing the sealed-bid readers: every input is accepted or refused with a documented code.

Nothing but ``EnvelopeError`` may escape a reader, whatever the bytes; and what a reader
accepts must be exactly what a writer would have produced.
"""

from __future__ import annotations

import io
import json
import struct
from decimal import Decimal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opening import keys, receipts
from opening.crypto_errors import CODES, EnvelopeError
from opening.envelope import MAGIC, open_envelope, parse_header, read_header, seal, unwrap
from opening.summary import Summary, decode_summary, parse_summary
from tests.vectors import reference as ref

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
HEADER_CODES = {"not_an_envelope", "bad_header"}

KEY = keys.generate()
_out = io.BytesIO()
HEADER = seal(io.BytesIO(b"a small bid document"), _out, public_key=keys.public_bytes(KEY),
              tender="T-1", bidder="b-1", summary={"price": "100.5", "note": "备注"})
ENVELOPE = _out.getvalue()
FILE_KEY = unwrap(HEADER, KEY)
MEMBERS: dict[str, object] = json.loads(HEADER.raw)

PLATFORM = Ed25519PrivateKey.generate()
RECEIPT = receipts.issue(PLATFORM, tender="T-1", bidder="b-1", sha256="ab" * 32, size=10,
                         at=1_790_000_000_000, upload="u-1")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats()
    | st.text(max_size=30) | st.sampled_from(["1", "0.5", "01", "1.234", "99.99", "", "\ud800"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=10)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few random flips, insertions, deletions and overwrites."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "overwrite", "truncate"]))
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        if kind == "flip" and out:
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=8)
                              | st.sampled_from([b" ", b",", b'"', b"{", b"}", b"0", b"\\"]))
        elif kind == "delete":
            del out[at:at + draw(st.integers(1, 8))]
        elif kind == "overwrite":
            patch = draw(st.binary(min_size=1, max_size=8))
            out[at:at + len(patch)] = patch
        else:
            del out[at:]
    return bytes(out)


def _parse_or_refuse(data: bytes) -> None:
    try:
        header = parse_header(data)
    except EnvelopeError as exc:
        assert exc.code in HEADER_CODES, exc.code
        return
    # Accepted: then it is canonical, and reading it as a stream agrees.
    assert data[:header.prefix_length] == header.prefix
    assert read_header(io.BytesIO(data)) == header


@FUZZ
@given(st.binary(max_size=600))
def test_parse_header_random_bytes(data: bytes) -> None:
    _parse_or_refuse(data)
    _parse_or_refuse(MAGIC + data)
    _parse_or_refuse(MAGIC + struct.pack(">I", len(data)) + data)


@FUZZ
@given(st.text(alphabet='{}":,0123456789abcdefv_-./ABZ', max_size=500))
def test_parse_header_json_like_text(text: str) -> None:
    data = text.encode()
    _parse_or_refuse(MAGIC + struct.pack(">I", len(data)) + data)


@FUZZ
@given(mutated(ENVELOPE[:HEADER.prefix_length + 40]))
def test_parse_header_mutated(data: bytes) -> None:
    _parse_or_refuse(data)


@FUZZ
@given(st.dictionaries(st.sampled_from([*MEMBERS, "x", "V", "size "]), json_values,
                       max_size=4),
       st.lists(st.sampled_from(sorted(MEMBERS)), max_size=3))
def test_parse_header_member_changes(changes: dict[str, object], drop: list[str]) -> None:
    members = {k: v for k, v in {**MEMBERS, **changes}.items() if k not in drop}
    try:
        raw = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        return
    data = ref.prefix(raw)
    _parse_or_refuse(data)
    if members == MEMBERS:
        assert parse_header(data) == HEADER


@FUZZ
@given(mutated(ENVELOPE))
def test_open_envelope_mutated(data: bytes) -> None:
    try:
        summary = open_envelope(io.BytesIO(data), FILE_KEY)
    except EnvelopeError as exc:
        assert exc.code in CODES
        assert data != ENVELOPE
        return
    assert data == ENVELOPE  # nothing else opens
    assert summary.to_json() == {"price": "100.5", "note": "备注"}


@FUZZ
@given(json_values | st.dictionaries(
    st.sampled_from(["price", "duration_days", "quality", "manager", "note", "x"]),
    json_values, max_size=5))
def test_parse_summary(obj: object) -> None:
    try:
        summary = parse_summary(obj)
    except EnvelopeError as exc:
        assert exc.code == "bad_summary"
        return
    assert isinstance(summary, Summary)
    assert summary.to_json() == obj
    assert decode_summary(summary.encode()) == summary
    assert summary.price_fen == Decimal(summary.price) * 100


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=100).map(str.encode)
       | st.builds(lambda p, n: json.dumps({"price": p, "note": n}).encode(),
                   st.text(max_size=8), st.text(max_size=20)))
def test_decode_summary(data: bytes) -> None:
    try:
        decode_summary(data)
    except EnvelopeError as exc:
        assert exc.code == "bad_summary"


@FUZZ
@given(st.dictionaries(st.sampled_from([*RECEIPT, "extra"]), json_values, max_size=3),
       st.lists(st.sampled_from(sorted(RECEIPT)), max_size=2))
def test_verify_receipt_changes(changes: dict[str, object], drop: list[str]) -> None:
    receipt = {k: v for k, v in {**RECEIPT, **changes}.items() if k not in drop}
    try:
        receipts.verify(receipt, PLATFORM.public_key())
    except EnvelopeError as exc:
        assert exc.code in {"bad_receipt", "wrong_key", "bad_signature"}
        assert receipt != RECEIPT
        return
    assert receipt == RECEIPT


@FUZZ
@given(st.binary(max_size=400) | mutated(json.dumps(RECEIPT).encode()) | json_values.map(
    lambda v: json.dumps(v).encode()))
def test_verify_receipt_bytes(data: bytes) -> None:
    try:
        receipts.verify(data, PLATFORM.public_key())
    except EnvelopeError as exc:
        assert exc.code in {"bad_receipt", "wrong_key", "bad_signature"}
        return
    assert json.loads(data) == RECEIPT


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300) | mutated(keys.backup(KEY, "b-1", "password", 100_000)))
def test_read_key_file(data: bytes) -> None:
    try:
        keys.read_key_file(data)
    except EnvelopeError as exc:
        assert exc.code == "bad_key_file"
