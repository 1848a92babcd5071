"""The ``bidenv/v1`` sealed-bid envelope: read, check, seal and open (docs/sealed-bids.md).

Layout: ``magic(8) || u32 hlen || header(hlen) || chunks``. Every reader works on
streams with memory bounded by about two 1 MiB chunks, whatever the file's size.

Who calls what:

* the platform, on every upload: :func:`check_structure` (no key needed);
* the bidder's page, at the opening: :func:`read_header`, then :func:`unwrap` with
  its private key, and posts the file key;
* the platform, with the released key: :func:`check_key`, then :func:`open_envelope`;
* the bidder's tools: :func:`seal`.

Every refusal is an :class:`EnvelopeError` with one of the codes in :data:`CODES`.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .crypto_errors import CODES, EnvelopeError, b64u, is_id, loads_strict, unb64u
from .keys import fingerprint, load_public, public_bytes
from .summary import MAX_LENGTH as MAX_SUMMARY
from .summary import MIN_LENGTH as MIN_SUMMARY
from .summary import Summary, decode_summary, parse_summary

__all__ = ["CHUNK", "CODES", "MAGIC", "MAX_HEADER", "MAX_SIZE", "EnvelopeError", "Header",
           "check_key", "check_structure", "open_envelope", "parse_header", "read_header",
           "seal", "unwrap"]

MAGIC: Final = b"BIDENV\x00\x01"
VERSION: Final = "bidenv/v1"
CHUNK: Final = 1 << 20
TAG: Final = 16
MAX_HEADER: Final = 65536
MAX_SIZE: Final = 1 << 40
PREFIX: Final = len(MAGIC) + 4
NONCE_PREFIX: Final = 7
FILE_KEY: Final = 32

_SUITE: Final = hpke.Suite(hpke.KEM.P256, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_ENC: Final = 65
_WRAPPED: Final = FILE_KEY + TAG
_COMMIT: Final = 32
_MEMBERS: Final = ("bidder", "chunk", "commit", "enc", "nonce", "recipient", "size", "tender",
                   "v", "wrapped")
# Everything a canonical header can contain: ids, hex and b64u strings, digits, JSON syntax.
_HEADER_CHARS: Final = re.compile(rb'[A-Za-z0-9_.\-/{}":,]*')
_FINGERPRINT: Final = re.compile(r"[0-9a-f]{64}")


def _bad_header(message: str) -> EnvelopeError:
    return EnvelopeError("bad_header", message)


def _canonical(tender: str, bidder: str, recipient: str, size: int, nonce: bytes, enc: bytes,
               wrapped: bytes, commit: bytes) -> bytes:
    members = {"bidder": bidder, "chunk": CHUNK, "commit": b64u(commit), "enc": b64u(enc),
               "nonce": b64u(nonce), "recipient": recipient, "size": size, "tender": tender,
               "v": VERSION, "wrapped": b64u(wrapped)}
    return _json_bytes(members)


def _json_bytes(members: Mapping[str, object]) -> bytes:
    return json.dumps(members, sort_keys=True, separators=(",", ":")).encode("ascii")


def chunk_count(size: int) -> int:
    """How many chunks a plaintext of ``size`` bytes has (an empty one still has one)."""
    return max(1, -(-size // CHUNK))


def _plain_length(size: int, index: int, count: int) -> int:
    return CHUNK if index < count - 1 else size - CHUNK * (count - 1)


@dataclass(frozen=True, slots=True)
class Header:
    """A checked, canonical envelope header. Construction refuses with ``bad_header``.

    Build one with :meth:`build` (which serialises it) or get one from
    :func:`parse_header`; ``raw`` is always the one canonical encoding of the fields.
    """

    tender: str
    bidder: str
    recipient: str
    size: int
    nonce: bytes
    enc: bytes
    wrapped: bytes
    commit: bytes
    raw: bytes

    def __post_init__(self) -> None:
        if not is_id(self.tender):
            raise _bad_header("tender must be 1 to 64 characters of A-Z a-z 0-9 _ . -")
        if not is_id(self.bidder):
            raise _bad_header("bidder must be 1 to 64 characters of A-Z a-z 0-9 _ . -")
        if not isinstance(self.recipient, str) or not _FINGERPRINT.fullmatch(self.recipient):
            raise _bad_header("recipient must be 64 lowercase hex digits")
        if type(self.size) is not int or not 0 <= self.size <= MAX_SIZE:
            raise _bad_header(f"size must be a whole number from 0 to {MAX_SIZE}")
        for name, length in (("nonce", NONCE_PREFIX), ("enc", _ENC), ("wrapped", _WRAPPED),
                             ("commit", _COMMIT)):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != length:
                raise _bad_header(f"{name} must be {length} bytes")
        if self.enc[0] != 4:
            raise _bad_header("enc must be an uncompressed P-256 point")
        expected = _canonical(self.tender, self.bidder, self.recipient, self.size, self.nonce,
                              self.enc, self.wrapped, self.commit)
        if self.raw != expected:
            raise _bad_header("the header is not in canonical form (key order, spacing, "
                              "number or string spelling)")
        if len(self.raw) > MAX_HEADER:
            raise _bad_header(f"the header is longer than {MAX_HEADER} bytes")

    @classmethod
    def build(cls, *, tender: str, bidder: str, recipient: str, size: int, nonce: bytes,
              enc: bytes, wrapped: bytes, commit: bytes) -> Header:
        """A header from its fields, with its canonical ``raw`` bytes."""
        if not all(isinstance(v, bytes) for v in (nonce, enc, wrapped, commit)):
            raise _bad_header("nonce, enc, wrapped and commit must be bytes")
        try:
            raw = _canonical(tender, bidder, recipient, size, nonce, enc, wrapped, commit)
        except (TypeError, ValueError):
            raise _bad_header("a header field has the wrong type") from None
        return cls(tender, bidder, recipient, size, nonce, enc, wrapped, commit, raw)

    @property
    def prefix_length(self) -> int:
        """Bytes a reader fetches to get the header: magic, ``hlen`` and the header."""
        return PREFIX + len(self.raw)

    @property
    def chunks(self) -> int:
        """How many ciphertext chunks follow the header."""
        return chunk_count(self.size)

    @property
    def length(self) -> int:
        """The envelope's total length, fixed by the header."""
        return self.prefix_length + self.size + TAG * self.chunks

    @property
    def prefix(self) -> bytes:
        """``magic || hlen || header``: the envelope's first :attr:`prefix_length` bytes."""
        return MAGIC + struct.pack(">I", len(self.raw)) + self.raw

    @property
    def aad(self) -> bytes:
        """The associated data of every chunk: SHA-256 of :attr:`prefix`."""
        return hashlib.sha256(self.prefix).digest()

    @property
    def info(self) -> bytes:
        """HPKE ``info``: binds the wrapped file key to this tender and bidder."""
        return b"bidenv/v1 " + self.tender.encode() + b"\x00" + self.bidder.encode()


def _decode_header(raw: bytes) -> Header:
    if _HEADER_CHARS.fullmatch(raw) is None:
        raise _bad_header("the header contains characters a canonical header never has")
    try:
        obj = loads_strict(raw)
    except ValueError as exc:
        raise _bad_header(f"the header is not JSON: {str(exc)[:120]}") from None
    if not isinstance(obj, dict):
        raise _bad_header("the header must be a JSON object")
    if set(obj) != set(_MEMBERS):
        missing = sorted(set(_MEMBERS) - set(obj))
        extra = sorted(set(obj) - set(_MEMBERS))
        raise _bad_header(f"header members: missing {missing or 'none'}, "
                          f"unknown {[e[:40] for e in extra[:5]] or 'none'}")
    if obj["v"] != VERSION:
        raise _bad_header(f"v must be {VERSION!r}")
    if obj["chunk"] != CHUNK or type(obj["chunk"]) is not int:
        raise _bad_header(f"chunk must be {CHUNK} in {VERSION}")
    binary: dict[str, bytes] = {}
    for name, length in (("nonce", NONCE_PREFIX), ("enc", _ENC), ("wrapped", _WRAPPED),
                         ("commit", _COMMIT)):
        try:
            binary[name] = unb64u(obj[name], length)
        except ValueError as exc:
            raise _bad_header(f"{name}: {exc}") from None
    return Header(obj["tender"], obj["bidder"], obj["recipient"], obj["size"], binary["nonce"],
                  binary["enc"], binary["wrapped"], binary["commit"], raw)


def _header_length(start: bytes) -> int:
    """``hlen`` from the first 12 bytes; refuses what is not an envelope."""
    if start[:len(MAGIC)] != MAGIC:
        if len(start) >= len(MAGIC) and start[:6] == MAGIC[:6]:
            raise EnvelopeError("not_an_envelope",
                                f"unsupported envelope version {start[6:8].hex()}")
        raise EnvelopeError("not_an_envelope")
    if len(start) < PREFIX:
        raise _bad_header("the file ends before the header length")
    (hlen,) = struct.unpack(">I", start[len(MAGIC):PREFIX])
    if not 2 <= hlen <= MAX_HEADER:
        raise _bad_header(f"the header length {hlen} is not from 2 to {MAX_HEADER}")
    return int(hlen)


def parse_header(data: bytes) -> Header:
    """The header of the envelope starting at ``data[0]``; ``data`` may hold more after it."""
    hlen = _header_length(bytes(data[:PREFIX]))
    raw = bytes(data[PREFIX:PREFIX + hlen])
    if len(raw) < hlen:
        raise _bad_header("the file ends inside the header")
    return _decode_header(raw)


def _read_exact(f: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes: fewer only at the end of the stream."""
    data = f.read(n)
    if data is None:
        data = b""
    if len(data) == n or not data:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = f.read(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def read_header(f: BinaryIO) -> Header:
    """Read and check the header of the envelope at ``f``'s position; ``f`` ends after it."""
    start = _read_exact(f, PREFIX)
    hlen = _header_length(start)
    raw = _read_exact(f, hlen)
    if len(raw) < hlen:
        raise _bad_header("the file ends inside the header")
    return _decode_header(raw)


def _remaining(f: BinaryIO) -> int | None:
    """Bytes left from ``f``'s position to its end, or ``None`` if ``f`` cannot seek."""
    try:
        if not f.seekable():
            return None
        here = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(here)
    except (OSError, ValueError, AttributeError):
        return None
    return end - here


def check_structure(path_or_file: str | os.PathLike[str] | BinaryIO, *,
                    tender: str | None = None, bidder: str | None = None,
                    recipient: str | None = None, size: int | None = None) -> Header:
    """Check an envelope without its key and return its header.

    Checks the magic, the canonical header and the exact total length, then that the
    header names ``tender``, ``bidder`` and ``recipient`` (a key fingerprint) when
    given. ``size``, when given, is the length the envelope is known to have (e.g. an
    upload's declared length); a file object is read from its current position.
    Codes: not_an_envelope, bad_header, bad_length, wrong_tender, wrong_bidder,
    wrong_recipient.
    """
    if isinstance(path_or_file, str | os.PathLike):
        with Path(path_or_file).open("rb") as f:
            return _check_structure(f, tender, bidder, recipient, size)
    return _check_structure(path_or_file, tender, bidder, recipient, size)


def _check_structure(f: BinaryIO, tender: str | None, bidder: str | None,
                     recipient: str | None, size: int | None) -> Header:
    header = read_header(f)
    actual = _remaining(f)
    if actual is not None:
        actual += header.prefix_length
    elif size is None:
        raise ValueError("check_structure needs a seekable file or the envelope's size")
    for what, length in (("file", actual), ("upload", size)):
        if length is not None and length != header.length:
            raise EnvelopeError("bad_length", f"the {what} is {length} bytes but its header "
                                f"implies {header.length}: truncated or extended")
    if tender is not None and header.tender != tender:
        raise EnvelopeError("wrong_tender", f"the envelope is sealed for tender "
                            f"{header.tender!r}, not {tender!r}")
    if bidder is not None and header.bidder != bidder:
        raise EnvelopeError("wrong_bidder", f"the envelope is sealed for bidder "
                            f"{header.bidder!r}, not {bidder!r}")
    if recipient is not None and header.recipient != recipient:
        raise EnvelopeError("wrong_recipient", f"the envelope is sealed to key "
                            f"{header.recipient[:16]}..., not the registered "
                            f"{recipient[:16]}...")
    return header


def _subkey(file_key: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(file_key)


def _commitment(file_key: bytes, nonce: bytes) -> bytes:
    commit_key = _subkey(file_key, b"bidenv/v1 commit")
    return hmac.digest(commit_key, b"bidenv/v1 key commitment" + nonce, "sha256")


def _chunk_nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">I", index) + (b"\x01" if last else b"\x00")


def check_key(header: Header, file_key: bytes) -> None:
    """Refuse (``wrong_key``) a file key that is not the one ``header`` commits to."""
    if not isinstance(file_key, bytes) or len(file_key) != FILE_KEY:
        raise EnvelopeError("wrong_key", f"a file key is {FILE_KEY} bytes")
    if not hmac.compare_digest(_commitment(file_key, header.nonce), header.commit):
        raise EnvelopeError("wrong_key", "the file key is not the one this envelope commits to")


def unwrap(header: Header, private_key: ec.EllipticCurvePrivateKey) -> bytes:
    """The 32-byte file key, unwrapped with the bidder's private key (``wrong_key`` if not)."""
    mine = fingerprint(public_bytes(private_key))
    if mine != header.recipient:
        raise EnvelopeError("wrong_key", f"the envelope is sealed to key "
                            f"{header.recipient[:16]}..., not to this key ({mine[:16]}...)")
    try:
        file_key = _SUITE.decrypt(header.enc + header.wrapped, private_key, info=header.info)
    except InvalidTag:
        raise EnvelopeError("wrong_key", f"the file key does not unwrap for tender "
                            f"{header.tender!r} and bidder {header.bidder!r}") from None
    except ValueError:
        raise _bad_header("enc is not a P-256 point") from None
    check_key(header, file_key)
    return file_key


def seal(src: BinaryIO, dst: BinaryIO, *, public_key: bytes, tender: str, bidder: str,
         summary: Mapping[str, object] | Summary,
         progress: Callable[[int, int], None] | None = None) -> Header:
    """Seal the document read from ``src`` (from its position to its end) into ``dst``.

    ``public_key`` is the bidder's 65-byte point; ``summary`` the bid's summary
    (checked first: ``bad_summary``). ``src`` must be seekable (its length goes into
    the header). Streams: memory stays around two chunks whatever the size.
    ``progress(done, total)`` is called after each chunk with plaintext byte counts.
    Codes: bad_summary, bad_id, bad_public_key, too_large, source_changed.
    """
    checked = summary if isinstance(summary, Summary) else parse_summary(dict(summary))
    summary_bytes = checked.encode()
    for name, value in (("tender", tender), ("bidder", bidder)):
        if not is_id(value):
            raise EnvelopeError("bad_id", f"the {name} id {value!r:.80} is not valid: 1 to 64 "
                                "characters of A-Z a-z 0-9 _ . -")
    recipient = load_public(public_key)
    document = _remaining(src)
    if document is None:
        raise ValueError("seal() needs a seekable source: its length goes into the header")
    first = struct.pack(">I", len(summary_bytes)) + summary_bytes
    size = len(first) + document
    if size > MAX_SIZE:
        raise EnvelopeError("too_large", f"a sealed bid holds at most {MAX_SIZE} bytes")

    file_key, nonce = os.urandom(FILE_KEY), os.urandom(NONCE_PREFIX)
    info = b"bidenv/v1 " + tender.encode() + b"\x00" + bidder.encode()
    wrapped = _SUITE.encrypt(file_key, recipient, info=info)
    header = Header.build(tender=tender, bidder=bidder, recipient=fingerprint(public_key),
                          size=size, nonce=nonce, enc=wrapped[:_ENC], wrapped=wrapped[_ENC:],
                          commit=_commitment(file_key, nonce))
    aes, aad = AESGCM(_subkey(file_key, b"bidenv/v1 content")), header.aad
    dst.write(header.prefix)
    count, done = header.chunks, 0
    for index in range(count):
        want = _plain_length(size, index, count)
        if index == 0:
            body = first + _read_exact(src, want - len(first))
        else:
            body = _read_exact(src, want)
        if len(body) != want:
            raise EnvelopeError("source_changed", "the document got shorter while sealing")
        dst.write(aes.encrypt(_chunk_nonce(nonce, index, index == count - 1), body, aad))
        done += want
        del body
        if progress is not None:
            progress(done, size)
    if src.read(1):
        raise EnvelopeError("source_changed", "the document got longer while sealing")
    return header


def open_envelope(src: BinaryIO, file_key: bytes, document: BinaryIO | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Summary:
    """Authenticate and decrypt the envelope at ``src``'s position; return its summary.

    Checks the key commitment first, then the length (when ``src`` can seek), then
    decrypts and authenticates every chunk in bounded memory. The document (the
    plaintext after the summary) goes to ``document`` if given, one authenticated
    chunk at a time: on a refusal part of it may have been written, so a caller
    keeps it only when this returns. Codes: not_an_envelope, bad_header, wrong_key,
    bad_chunk (altered, reordered, dropped, truncated or extended), bad_summary.
    """
    header = read_header(src)
    check_key(header, file_key)
    body_length = header.length - header.prefix_length
    remaining = _remaining(src)
    if remaining is not None and remaining != body_length:
        raise EnvelopeError("bad_chunk", f"the envelope is {header.prefix_length + remaining} "
                            f"bytes but its header implies {header.length}: truncated or "
                            "extended")
    aes, aad = AESGCM(_subkey(file_key, b"bidenv/v1 content")), header.aad
    count, size, done = header.chunks, header.size, 0
    summary: Summary | None = None
    for index in range(count):
        want = _plain_length(size, index, count) + TAG
        data = _read_exact(src, want)
        if len(data) != want:
            raise EnvelopeError("bad_chunk", f"the envelope ends inside chunk {index}")
        try:
            plain = aes.decrypt(_chunk_nonce(header.nonce, index, index == count - 1), data, aad)
        except InvalidTag:
            raise EnvelopeError("bad_chunk", f"chunk {index} of {count} fails authentication: "
                                "altered, reordered, dropped or from another envelope") from None
        del data
        if index == 0:
            summary, start = _summary_of(plain, size)
            if document is not None:
                document.write(memoryview(plain)[start:])
        elif document is not None:
            document.write(plain)
        done += len(plain)
        del plain
        if progress is not None:
            progress(done, size)
    if src.read(1):
        raise EnvelopeError("bad_chunk", "bytes follow the final chunk")
    assert summary is not None  # there is always a chunk 0
    return summary


def _summary_of(first: bytes, size: int) -> tuple[Summary, int]:
    """The summary at the start of the plaintext, and where the document starts."""
    if len(first) < 4:
        raise EnvelopeError("bad_summary", "the plaintext is too short to hold a summary")
    (slen,) = struct.unpack(">I", first[:4])
    if not MIN_SUMMARY <= slen <= MAX_SUMMARY or 4 + slen > size:
        raise EnvelopeError("bad_summary", f"the summary length {slen} is not from "
                            f"{MIN_SUMMARY} to {MAX_SUMMARY} or runs past the plaintext")
    return decode_summary(first[4:4 + slen]), 4 + slen
