"""bidenv/v1: round trips, every refusal, and agreement with the reference implementation."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from opening import keys
from opening.envelope import (
    CHUNK,
    MAGIC,
    EnvelopeError,
    Header,
    check_key,
    check_structure,
    open_envelope,
    parse_header,
    read_header,
    seal,
    unwrap,
)
from tests.vectors import reference as ref

TENDER, BIDDER = "T-1", "bidder-1"
SUMMARY = {"price": "1234.56", "duration_days": 30, "manager": "李四"}
# What the plaintext holds before the document: u32 length + the summary as sealed.
OVERHEAD = 4 + len(json.dumps(SUMMARY, sort_keys=True, separators=(",", ":"),
                              ensure_ascii=False).encode())


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return keys.generate()


def sealed(key: ec.EllipticCurvePrivateKey, document: bytes, *, tender: str = TENDER,
           bidder: str = BIDDER, summary: dict[str, object] | None = None) -> bytes:
    out = io.BytesIO()
    seal(io.BytesIO(document), out, public_key=keys.public_bytes(key), tender=tender,
         bidder=bidder, summary=summary or SUMMARY)
    return out.getvalue()


def refusal(call: object, *args: object, **kw: object) -> str:
    """The code ``call`` refuses with (it must refuse)."""
    with pytest.raises(EnvelopeError) as caught:
        call(*args, **kw)  # type: ignore[operator]
    assert caught.value.message
    return caught.value.code


def opened(envelope: bytes, file_key: bytes) -> tuple[dict[str, object], bytes]:
    document = io.BytesIO()
    summary = open_envelope(io.BytesIO(envelope), file_key, document)
    return summary.to_json(), document.getvalue()


def file_key_of(envelope: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    return unwrap(parse_header(envelope), key)


def rewrite_header(envelope: bytes, **changes: object) -> bytes:
    """The envelope with header members changed, re-serialised canonically."""
    header = parse_header(envelope)
    members = json.loads(header.raw)
    members.update(changes)
    return ref.prefix(ref.header_bytes(members)) + envelope[header.prefix_length:]


# ------------------------------------------------------------------ round trips
@pytest.mark.parametrize("length", [0, 1, CHUNK - OVERHEAD, CHUNK - OVERHEAD + 1, CHUNK,
                                    3 * CHUNK + 5],
                         ids=["empty", "one-byte", "plaintext-1MiB", "plaintext-1MiB+1",
                              "document-1MiB", "several-chunks"])
def test_round_trip(key: ec.EllipticCurvePrivateKey, length: int) -> None:
    document = bytes(i * 7 % 256 for i in range(min(length, 4096))) * (length // 4096 + 1)
    document = document[:length]
    envelope = sealed(key, document)
    header = check_structure(io.BytesIO(envelope), tender=TENDER, bidder=BIDDER,
                             recipient=keys.fingerprint(keys.public_bytes(key)),
                             size=len(envelope))
    assert header.size == OVERHEAD + length
    assert header.chunks == max(1, -(-(OVERHEAD + length) // CHUNK))
    assert header.length == len(envelope)
    assert envelope[:header.prefix_length] == header.prefix
    file_key = unwrap(header, key)
    summary, document_back = opened(envelope, file_key)
    assert summary == SUMMARY
    assert document_back == document


def test_plaintext_of_exactly_one_chunk_has_no_empty_chunk_after_it(key: ec.EllipticCurvePrivateKey
                                                                    ) -> None:
    envelope = sealed(key, bytes(CHUNK - OVERHEAD))
    header = parse_header(envelope)
    assert header.chunks == 1
    assert len(envelope) == header.prefix_length + CHUNK + 16


def test_python_envelopes_open_with_the_reference_implementation(
        key: ec.EllipticCurvePrivateKey) -> None:
    document = b"\x01\x02" * (CHUNK // 2 + 10)
    envelope = sealed(key, document)
    header = parse_header(envelope)
    file_key = ref.hpke_open(key, ref.hpke_info(TENDER, BIDDER), header.enc, header.wrapped)
    assert ref.commitment(file_key, header.nonce) == header.commit
    plain = ref.plaintext(ref.summary_bytes(SUMMARY), document)
    # Re-encrypting with the same key and nonce gives the same bytes: STREAM is deterministic.
    rebuilt = header.prefix + ref.encrypt_chunks(file_key, header.nonce, header.prefix,
                                                 ref.split(plain))
    assert rebuilt == envelope


def test_reference_envelopes_open_with_python(key: ec.EllipticCurvePrivateKey) -> None:
    made = ref.Sealed(seed="test/reference", recipient=keys.public_bytes(key), tender=TENDER,
                      bidder=BIDDER, data=ref.plaintext(ref.summary_bytes(SUMMARY), b"doc"))
    envelope = made.envelope()
    assert file_key_of(envelope, key) == made.file_key
    assert opened(envelope, made.file_key) == (SUMMARY, b"doc")


def test_each_seal_has_its_own_file_key_and_nonce(key: ec.EllipticCurvePrivateKey) -> None:
    one, two = sealed(key, b"same"), sealed(key, b"same")
    assert parse_header(one).nonce != parse_header(two).nonce
    assert file_key_of(one, key) != file_key_of(two, key)


def test_read_header_leaves_the_file_at_the_first_chunk(
        key: ec.EllipticCurvePrivateKey, tmp_path: Path) -> None:
    envelope = sealed(key, b"abc")
    path = tmp_path / "bid.bidenv"
    path.write_bytes(envelope)
    with path.open("rb") as f:
        header = read_header(f)
        assert f.tell() == header.prefix_length
    assert check_structure(path) == header
    assert check_structure(str(path)) == header
    assert parse_header(envelope[:header.prefix_length]) == header


def test_progress_counts_plaintext_bytes(key: ec.EllipticCurvePrivateKey) -> None:
    seen: list[tuple[int, int]] = []
    out = io.BytesIO()
    header = seal(io.BytesIO(bytes(2 * CHUNK)), out, public_key=keys.public_bytes(key),
                  tender=TENDER, bidder=BIDDER, summary=SUMMARY,
                  progress=lambda done, total: seen.append((done, total)))
    assert seen == [(CHUNK, header.size), (2 * CHUNK, header.size),
                    (header.size, header.size)]
    back: list[tuple[int, int]] = []
    open_envelope(io.BytesIO(out.getvalue()), unwrap(header, key),
                  progress=lambda done, total: back.append((done, total)))
    assert back == seen


def test_open_reads_a_stream_that_cannot_seek(key: ec.EllipticCurvePrivateKey) -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data = memoryview(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            n = min(len(buffer), len(self.data), 1000)  # short reads, like a socket
            buffer[:n] = self.data[:n]
            self.data = self.data[n:]
            return n

    envelope = sealed(key, bytes(CHUNK + 3))
    file_key = file_key_of(envelope, key)
    assert open_envelope(Pipe(envelope), file_key).to_json() == SUMMARY  # type: ignore[arg-type]
    for broken in (envelope[:-1], envelope + b"\x00"):
        assert refusal(open_envelope, Pipe(broken), file_key) == "bad_chunk"


# ------------------------------------------------------------------ seal refuses bad input
def test_seal_checks_its_input_before_writing(key: ec.EllipticCurvePrivateKey) -> None:
    public = keys.public_bytes(key)
    cases = [
        ({"summary": {"price": "1.234"}}, "bad_summary"),
        ({"summary": {"price": "1", "deposit": "paid"}}, "bad_summary"),
        ({"tender": "标段一"}, "bad_id"),
        ({"bidder": ""}, "bad_id"),
        ({"bidder": "b" * 65}, "bad_id"),
        ({"public_key": public[:-1]}, "bad_public_key"),
        ({"public_key": b"\x04" + bytes(64)}, "bad_public_key"),
    ]
    for change, code in cases:
        out = io.BytesIO()
        args: dict[str, object] = {"public_key": public, "tender": TENDER, "bidder": BIDDER,
                                   "summary": SUMMARY, **change}
        assert refusal(seal, io.BytesIO(b"doc"), out, **args) == code, change
        assert out.getvalue() == b""


def test_seal_notices_a_document_that_changes_while_sealing(
        key: ec.EllipticCurvePrivateKey) -> None:
    class Growing(io.BytesIO):
        def seek(self, offset: int, whence: int = 0) -> int:
            position = super().seek(offset, whence)
            return position - 5 if whence == io.SEEK_END else position

    class Shrinking(io.BytesIO):
        def seek(self, offset: int, whence: int = 0) -> int:
            position = super().seek(offset, whence)
            return position + 5 if whence == io.SEEK_END else position

    for source in (Growing(bytes(100)), Shrinking(bytes(100))):
        code = refusal(seal, source, io.BytesIO(), public_key=keys.public_bytes(key),
                       tender=TENDER, bidder=BIDDER, summary=SUMMARY)
        assert code == "source_changed"


# ------------------------------------------------------------------ refusals
def test_plain_files_are_not_envelopes(tmp_path: Path) -> None:
    samples = {"bid.pdf": b"%PDF-1.7\n" + bytes(3000), "bid.zip": b"PK\x03\x04" + bytes(100),
               "empty": b"", "short": b"BIDENV", "text.txt": "投标文件".encode()}
    for name, data in samples.items():
        (tmp_path / name).write_bytes(data)
        assert refusal(check_structure, tmp_path / name) == "not_an_envelope", name
        assert refusal(parse_header, data) == "not_an_envelope"
        assert refusal(open_envelope, io.BytesIO(data), bytes(32)) == "not_an_envelope"


def test_truncated_and_extended(key: ec.EllipticCurvePrivateKey) -> None:
    envelope = sealed(key, bytes(CHUNK + 100))
    header = parse_header(envelope)
    file_key = unwrap(header, key)
    first_chunk_end = header.prefix_length + CHUNK + 16
    for cut in (1, 16, 17, len(envelope) - first_chunk_end, len(envelope) - header.prefix_length):
        short = envelope[:-cut]
        assert refusal(check_structure, io.BytesIO(short)) == "bad_length"
        assert refusal(open_envelope, io.BytesIO(short), file_key) == "bad_chunk"
    for extra in (b"\x00", bytes(16), envelope[header.prefix_length:]):
        long = envelope + extra
        assert refusal(check_structure, io.BytesIO(long)) == "bad_length"
        assert refusal(open_envelope, io.BytesIO(long), file_key) == "bad_chunk"
    assert refusal(check_structure, io.BytesIO(envelope), size=len(envelope) + 1) == "bad_length"
    for inside_header in (5, 12, header.prefix_length - 1):
        code = refusal(check_structure, io.BytesIO(envelope[:inside_header]))
        assert code == ("not_an_envelope" if inside_header < len(MAGIC) else "bad_header")


def test_reordered_and_dropped_chunks(key: ec.EllipticCurvePrivateKey) -> None:
    envelope = sealed(key, bytes(3 * CHUNK))  # chunks 0-2 full, chunk 3 short
    header = parse_header(envelope)
    file_key = unwrap(header, key)
    start, step = header.prefix_length, CHUNK + 16
    chunks = [envelope[start + i * step:start + (i + 1) * step] for i in range(4)]
    assert len(chunks[3]) == header.size - 3 * CHUNK + 16
    for order in ([1, 0, 2, 3], [0, 2, 1, 3], [0, 0, 2, 3], [2, 1, 0, 3]):
        shuffled = envelope[:start] + b"".join(chunks[i] for i in order)
        assert check_structure(io.BytesIO(shuffled)) == header  # same length: only keys tell
        assert refusal(open_envelope, io.BytesIO(shuffled), file_key) == "bad_chunk"
    dropped = envelope[:start] + chunks[0] + chunks[2] + chunks[3]
    assert refusal(check_structure, io.BytesIO(dropped)) == "bad_length"
    assert refusal(open_envelope, io.BytesIO(dropped), file_key) == "bad_chunk"


def test_last_flag_tricks(key: ec.EllipticCurvePrivateKey) -> None:
    """Dropping the final chunk never yields a shorter valid envelope, even to the key holder."""
    envelope = sealed(key, bytes(2 * CHUNK))  # 3 chunks, the final one short
    header = parse_header(envelope)
    file_key = unwrap(header, key)
    start, step = header.prefix_length, CHUNK + 16
    two_full = envelope[start:start + 2 * step]
    # Drop the final chunk and shrink size so the length adds up again: the header is in
    # every chunk's associated data and the flags say chunk 1 is not last.
    forged = rewrite_header(envelope[:start] + two_full, size=2 * CHUNK)
    assert check_structure(io.BytesIO(forged)).length == len(forged)
    assert refusal(open_envelope, io.BytesIO(forged), file_key) == "bad_chunk"
    # Even re-encrypting for the new header (the bidder knows the key) needs the last
    # flag right: chunks built with the flags of the longer envelope are refused.
    new_head = forged[:parse_header(forged).prefix_length]
    plain = ref.plaintext(ref.summary_bytes(SUMMARY), bytes(2 * CHUNK - OVERHEAD))
    for flags in ([False, False], [True, True], [True, False]):
        body = ref.encrypt_chunks(file_key, header.nonce, new_head, ref.split(plain), flags)
        assert refusal(open_envelope, io.BytesIO(new_head + body), file_key) == "bad_chunk"
    body = ref.encrypt_chunks(file_key, header.nonce, new_head, ref.split(plain))
    assert open_envelope(io.BytesIO(new_head + body), file_key).to_json() == SUMMARY
    # An empty last chunk appended after full ones is refused too.
    exact = sealed(key, bytes(CHUNK - OVERHEAD))
    exact_header = parse_header(exact)
    exact_key = unwrap(exact_header, key)
    plain = ref.plaintext(ref.summary_bytes(SUMMARY), bytes(CHUNK - OVERHEAD))
    body = ref.encrypt_chunks(exact_key, exact_header.nonce, exact_header.prefix,
                              [plain, b""], [False, True])
    assert refusal(open_envelope, io.BytesIO(exact_header.prefix + body), exact_key) == "bad_chunk"


def test_a_flipped_bit_anywhere_is_refused(key: ec.EllipticCurvePrivateKey) -> None:
    envelope = sealed(key, b"the bid document")
    header = parse_header(envelope)
    file_key = unwrap(header, key)
    expected = {range(0, 8): {"not_an_envelope"}, range(8, 12): {"bad_header"},
                range(12, header.prefix_length): {"bad_header", "wrong_key", "bad_chunk"},
                range(header.prefix_length, len(envelope)): {"bad_chunk"}}
    for region, codes in expected.items():
        for offset in region:
            for bit in (0, 5, 7):
                broken = bytearray(envelope)
                broken[offset] ^= 1 << bit
                code = refusal(open_envelope, io.BytesIO(bytes(broken)), file_key)
                assert code in codes, (offset, bit, code)


def test_a_flipped_bit_in_each_chunk_names_the_chunk(key: ec.EllipticCurvePrivateKey) -> None:
    envelope = sealed(key, bytes(2 * CHUNK + 7))
    header = parse_header(envelope)
    file_key = unwrap(header, key)
    for index in range(header.chunks):
        start = header.prefix_length + index * (CHUNK + 16)
        end = min(start + CHUNK + 16, len(envelope))
        for offset in (start, (start + end) // 2, end - 1):  # first byte, middle, tag
            broken = bytearray(envelope)
            broken[offset] ^= 0x10
            with pytest.raises(EnvelopeError) as caught:
                open_envelope(io.BytesIO(bytes(broken)), file_key)
            assert caught.value.code == "bad_chunk"
            assert f"chunk {index} of {header.chunks}" in caught.value.message


def test_wrong_keys(key: ec.EllipticCurvePrivateKey) -> None:
    envelope = sealed(key, b"doc")
    header = parse_header(envelope)
    assert refusal(unwrap, header, keys.generate()) == "wrong_key"
    assert refusal(check_key, header, bytes(32)) == "wrong_key"
    assert refusal(check_key, header, b"short") == "wrong_key"
    assert refusal(open_envelope, io.BytesIO(envelope), bytes(32)) == "wrong_key"
    other = sealed(key, b"doc")
    assert refusal(open_envelope, io.BytesIO(envelope), file_key_of(other, key)) == "wrong_key"


def test_a_file_key_unwraps_only_for_its_tender_and_bidder(
        key: ec.EllipticCurvePrivateKey) -> None:
    envelope = sealed(key, b"doc", tender="T-1", bidder="b-1")
    for change in ({"tender": "T-2"}, {"bidder": "b-2"}):
        moved = rewrite_header(envelope, **change)
        header = check_structure(io.BytesIO(moved), **change)  # well formed, same length
        assert refusal(unwrap, header, key) == "wrong_key"
        # The released key still fails: the header is in every chunk's associated data.
        assert refusal(open_envelope, io.BytesIO(moved),
                       file_key_of(envelope, key)) == "bad_chunk"


def test_ids_and_recipient_must_match_the_upload(key: ec.EllipticCurvePrivateKey) -> None:
    envelope = io.BytesIO(sealed(key, b"doc"))
    mine = keys.fingerprint(keys.public_bytes(key))
    other = keys.fingerprint(keys.public_bytes(keys.generate()))
    assert check_structure(envelope, tender=TENDER, bidder=BIDDER, recipient=mine)
    for expect, code in (({"tender": "T-2"}, "wrong_tender"), ({"bidder": "x"}, "wrong_bidder"),
                         ({"recipient": other}, "wrong_recipient")):
        envelope.seek(0)
        assert refusal(check_structure, envelope, **expect) == code


def test_non_canonical_headers(key: ec.EllipticCurvePrivateKey) -> None:
    envelope = sealed(key, b"doc")
    header = parse_header(envelope)
    raw, body = header.raw, envelope[header.prefix_length:]
    members = json.loads(raw)
    variants = {
        "space after comma": raw.replace(b",", b", ", 1),
        "newline at end": raw + b"\n",
        "pretty printed": json.dumps(members, sort_keys=True, indent=1).encode(),
        "keys reordered": json.dumps(dict(reversed(members.items())),
                                     separators=(",", ":")).encode(),
        "extra key": raw[:-1] + b',"zz":1}',
        "duplicate key": b'{"bidder":"x",' + raw[1:],
        "missing key": ref.header_bytes({k: v for k, v in members.items() if k != "v"}),
        "size with exponent": raw.replace(b'"size":%d' % header.size, b'"size":%de0' % header.size),
        "size with leading zero": raw.replace(b'"size":', b'"size":0'),
        "escaped letter": raw.replace(b'"v":"b', b'"v":"\\u0062'),
        "not an object": b'["bidenv/v1"]',
        "nested deeply": b'{"a":' * 3000 + b"1" + b"}" * 3000,
        "array deeply": b"[" * 3000 + b"]" * 3000,
    }
    for name, variant in variants.items():
        data = ref.prefix(variant) + body
        assert refusal(parse_header, data) == "bad_header", name
        assert refusal(check_structure, io.BytesIO(data)) == "bad_header", name
    assert parse_header(ref.prefix(raw) + body) == header


def test_header_checks_itself(key: ec.EllipticCurvePrivateKey) -> None:
    header = parse_header(sealed(key, b"doc"))
    fields = {"tender": header.tender, "bidder": header.bidder, "recipient": header.recipient,
              "size": header.size, "nonce": header.nonce, "enc": header.enc,
              "wrapped": header.wrapped, "commit": header.commit}
    assert Header.build(**fields) == header  # type: ignore[arg-type]
    for change in ({"size": -1}, {"size": 2**40 + 1}, {"size": True}, {"nonce": b"1234567890"},
                   {"recipient": header.recipient.upper()}, {"tender": "a b"},
                   {"enc": b"\x02" + header.enc[1:]}, {"commit": "not bytes"}):
        assert refusal(Header.build, **{**fields, **change}) == "bad_header", change
    with pytest.raises(EnvelopeError):
        Header(**fields, raw=header.raw + b" ")  # type: ignore[arg-type]


def test_envelope_summary_refusals(key: ec.EllipticCurvePrivateKey) -> None:
    public = keys.public_bytes(key)
    for data in (b"", struct.pack(">I", 1) + b"{", struct.pack(">I", 9) + b'{"price":"1"}'[:5],
                 struct.pack(">I", 7) + b'{"a":1}', struct.pack(">I", 11) + b'{"price":1}'):
        made = ref.Sealed(seed="summary", recipient=public, tender=TENDER, bidder=BIDDER,
                          data=data)
        assert refusal(open_envelope, io.BytesIO(made.envelope()), made.file_key) == "bad_summary"


# ------------------------------------------------------------------ bounded memory
class ZeroSink(io.RawIOBase):
    """Counts what is written and checks it is all zero bytes, keeping none of it."""

    def __init__(self) -> None:
        self.count = 0
        self.zero = True

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        view = memoryview(data)
        self.count += len(view)
        self.zero = self.zero and bytes(view).count(0) == len(view)
        return len(view)


def test_seal_and_open_256_mib_in_bounded_memory(key: ec.EllipticCurvePrivateKey,
                                                 tmp_path: Path) -> None:
    import tracemalloc

    size = 256 << 20
    source, target = tmp_path / "bid.pdf", tmp_path / "bid.pdf.bidenv"
    with source.open("wb") as f:
        f.truncate(size)  # sparse: nothing is held in memory or written to disk
    tracemalloc.start()
    try:
        with source.open("rb") as src, target.open("wb") as dst:
            header = seal(src, dst, public_key=keys.public_bytes(key), tender=TENDER,
                          bidder=BIDDER, summary=SUMMARY)
        _, seal_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        sink = ZeroSink()
        with target.open("rb") as f:
            summary = open_envelope(f, unwrap(header, key), sink)
        _, open_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert target.stat().st_size == header.length
    assert summary.to_json() == SUMMARY
    assert sink.count == size and sink.zero
    assert seal_peak < 8 << 20, seal_peak
    assert open_peak < 8 << 20, open_peak
