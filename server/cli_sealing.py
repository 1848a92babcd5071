"""``bidhall keygen``, ``seal``, ``open`` and ``receipt verify``: sealed bids on the bidder's side.

    bidhall keygen --bidder ID [--out FILE] [--password-file F]
    bidhall seal FILE --tender T --bidder B (--public-key B64U | --key-file KEYFILE)
                 --price 123.45 [--duration-days N] [--quality S] [--manager S] [--note S]
                 [--out FILE.bidenv]
    bidhall open ENVELOPE --key-file KEYFILE [--out DOC] [--password-file F]
    bidhall receipt verify RECEIPT.json --key PLATFORM_PUBLIC

Everything runs on the bidder's machine; nothing here talks to the platform. A refusal
prints one line ``bidhall: <code>: <message>`` to stderr and exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import getpass
import hashlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from opening import keys, receipts
from opening.crypto_errors import EnvelopeError, b64u, is_id, loads_strict, unb64u
from opening.envelope import open_envelope, read_header, seal, unwrap

MIN_PASSWORD = 8
#: Files at least this big get a progress line on stderr.
PROGRESS_FROM = 16 << 20


class Failed(Exception):
    """A refusal of the command line itself (the formats raise ``EnvelopeError``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _guarded(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def guarded(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except (EnvelopeError, Failed) as exc:
            print(f"bidhall: {exc.code}: {exc.message}", file=sys.stderr)
        except FileExistsError as exc:
            print(f"bidhall: exists: {exc.filename} already exists; choose another --out or "
                  "move it away", file=sys.stderr)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            print(f"bidhall: io_error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1

    return guarded


# ------------------------------------------------------------------ helpers
def _password(args: argparse.Namespace, prompt: str, confirm: bool = False) -> str:
    if args.password_file:
        text = Path(args.password_file).read_text(encoding="utf-8")
        return text.splitlines()[0] if text.splitlines() else ""
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("Password again (再次输入密码): ") != first:
        raise Failed("password_mismatch", "the two passwords differ")
    return first


def _grouped(fingerprint: str) -> str:
    return " ".join(fingerprint[i:i + 4] for i in range(0, len(fingerprint), 4))


@contextlib.contextmanager
def _new_file(path: Path) -> Iterator[BinaryIO]:
    """Create ``path`` (never overwrite); remove it again if the block fails."""
    f = path.open("xb")
    try:
        with f:
            yield f
    except BaseException:
        path.unlink(missing_ok=True)
        raise


class _Hashing:
    """A writer that hashes what passes through (to ``f`` if given), so nothing is read back."""

    def __init__(self, f: IO[bytes] | None = None) -> None:
        self.f, self.sha256, self.size = f, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.f.write(data) if self.f is not None else len(data)


def _progress(label: str, total_file: int) -> Callable[[int, int], None] | None:
    if total_file < PROGRESS_FROM:
        return None
    shown = [-1]

    def report(done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if tenth != shown[0]:
            shown[0] = tenth
            print(f"{label}: {tenth * 10}% ({done >> 20} of {total >> 20} MiB)",
                  file=sys.stderr, flush=True)

    return report


# ------------------------------------------------------------------ keygen
def _keygen(args: argparse.Namespace) -> int:
    out = Path(args.out or f"bidhall-key-{args.bidder}.json")
    if not is_id(args.bidder):
        raise EnvelopeError("bad_id", f"the bidder id {args.bidder!r:.80} is not valid")
    if out.exists():
        raise Failed("exists", f"{out} already exists; a key file is never overwritten")
    password = _password(args, "Password for the key file (密钥文件密码): ", confirm=True)
    if len(password) < MIN_PASSWORD:
        raise EnvelopeError("weak_password",
                            f"the password must have at least {MIN_PASSWORD} characters")
    key = keys.generate()
    data = keys.backup(key, args.bidder, password)
    with _new_file(out) as f:
        with contextlib.suppress(OSError):
            os.chmod(out, 0o600)
        f.write(data)
    public = keys.public_bytes(key)
    print(f"key file:    {out}")
    print(f"public key:  {b64u(public)}")
    print(f"fingerprint: {_grouped(keys.fingerprint(public))}")
    print("Register the public key with the tender (登记公钥) and keep the key file and its "
          "password: without them the bid cannot be opened.")
    return 0


# ------------------------------------------------------------------ seal
def _seal(args: argparse.Namespace) -> int:
    source = Path(args.file)
    if args.key_file:
        info = keys.read_key_file(Path(args.key_file).read_bytes())
        if info.bidder != args.bidder:
            raise EnvelopeError("wrong_bidder", f"the key file is bidder {info.bidder!r}'s, "
                                f"not {args.bidder!r}'s")
        public = info.public
    else:
        try:
            public = unb64u(args.public_key.strip(), keys.PUBLIC_LENGTH)
        except ValueError as exc:
            raise EnvelopeError("bad_public_key", f"--public-key must be the base64url of a "
                                f"65-byte P-256 point: {exc}") from None
    summary: dict[str, object] = {"price": args.price}
    if args.duration_days is not None:
        if not args.duration_days.isdigit():
            raise EnvelopeError("bad_summary", "--duration-days must be a whole number of days")
        summary["duration_days"] = int(args.duration_days)
    for name in ("quality", "manager", "note"):
        if getattr(args, name) is not None:
            summary[name] = getattr(args, name)
    out = Path(args.out or f"{source}.bidenv")
    if out.exists():
        raise Failed("exists", f"{out} already exists; choose another --out or move it away")
    with source.open("rb") as src, _new_file(out) as dst:
        writer = _Hashing(dst)
        header = seal(src, cast(BinaryIO, writer), public_key=public, tender=args.tender,
                      bidder=args.bidder, summary=summary,
                      progress=_progress("sealing", source.stat().st_size))
    print(f"sealed:      {out}")
    print(f"size:        {writer.size} bytes")
    print(f"sha256:      {writer.sha256.hexdigest()}")
    print(f"tender {header.tender}, bidder {header.bidder}, sealed to key "
          f"{_grouped(header.recipient[:16])} ...")
    return 0


# ------------------------------------------------------------------ open
def _open(args: argparse.Namespace) -> int:
    key_data = Path(args.key_file).read_bytes()
    keys.read_key_file(key_data)  # a malformed file is refused before asking the password
    key, _ = keys.restore(key_data, _password(args, "Password for the key file (密钥文件密码): "))
    path = Path(args.envelope)
    out = Path(args.out) if args.out else None
    if out is not None and out.exists():
        raise Failed("exists", f"{out} already exists; choose another --out or move it away")
    with path.open("rb") as f:
        header = read_header(f)
        file_key = unwrap(header, key)
        f.seek(0)
        progress = _progress("checking", path.stat().st_size)
        if out is None:
            document = _Hashing()
            summary = open_envelope(f, file_key, cast(BinaryIO, document), progress=progress)
        else:
            with _new_file(out) as doc:
                document = _Hashing(doc)
                summary = open_envelope(f, file_key, cast(BinaryIO, document),
                                        progress=progress)
    print(f"envelope:    {path} (tender {header.tender}, bidder {header.bidder})")
    print("status:      opens with this key; every chunk authenticated")
    print(f"price (投标报价): {summary.price} yuan")
    labels = {"duration_days": "duration (工期, days)", "quality": "quality (质量目标)",
              "manager": "manager (项目经理)", "note": "note (备注)"}
    for name, label in labels.items():
        value = getattr(summary, name)
        if value is not None:
            print(f"{label}: {value}")
    print(f"document:    {document.size} bytes, sha256 {document.sha256.hexdigest()}"
          + (f", written to {out}" if out else ""))
    return 0


# ------------------------------------------------------------------ receipt verify
def _receipt_verify(args: argparse.Namespace) -> int:
    public = receipts.load_platform_key(Path(args.key).read_bytes())
    data = Path(args.receipt).read_bytes()
    receipts.verify(data, public)
    receipt = loads_strict(data)
    assert isinstance(receipt, dict)
    at = datetime.datetime.fromtimestamp(receipt["at"] / 1000, datetime.UTC)
    print("OK: the receipt is signed by the platform key")
    for name in ("tender", "bidder", "upload", "size", "sha256"):
        print(f"{name + ':':<9}{receipt[name]}")
    print(f"at:      {receipt['at']} ({at.isoformat(timespec='milliseconds')})")
    print(f"key:     {receipt['key']}")
    return 0


def add_commands(commands: Any) -> None:
    """Add the sealed-bid commands to ``bidhall``'s subparsers."""
    keygen = commands.add_parser("keygen", help="make a bidder key pair and its backup file")
    keygen.add_argument("--bidder", required=True, help="your bidder id in the tender")
    keygen.add_argument("--out", help="key file to write (default bidhall-key-<bidder>.json)")
    keygen.add_argument("--password-file", help="read the password from this file (scripts)")
    keygen.set_defaults(run=_guarded(_keygen))

    sealing = commands.add_parser("seal", help="seal a bid file for upload")
    sealing.add_argument("file", help="the bid document (PDF or anything else)")
    sealing.add_argument("--tender", required=True, help="tender id")
    sealing.add_argument("--bidder", required=True, help="your bidder id in the tender")
    key = sealing.add_mutually_exclusive_group(required=True)
    key.add_argument("--public-key", help="your registered public key (base64url)")
    key.add_argument("--key-file", help="your bidkey/v1 file (only its public key is used)")
    sealing.add_argument("--price", required=True, help="bid price in yuan, e.g. 1234.50")
    sealing.add_argument("--duration-days", help="duration in days (工期)")
    sealing.add_argument("--quality", help="quality target (质量目标)")
    sealing.add_argument("--manager", help="project manager (项目经理)")
    sealing.add_argument("--note", help="anything else to read out at the opening")
    sealing.add_argument("--out", help="envelope to write (default FILE.bidenv)")
    sealing.set_defaults(run=_guarded(_seal))

    opening = commands.add_parser("open", help="check that your sealed bid opens with your key")
    opening.add_argument("envelope", help="the .bidenv file")
    opening.add_argument("--key-file", required=True, help="your bidkey/v1 file")
    opening.add_argument("--out", help="write the document here")
    opening.add_argument("--password-file", help="read the password from this file (scripts)")
    opening.set_defaults(run=_guarded(_open))

    receipt = commands.add_parser("receipt", help="upload receipts")
    actions = receipt.add_subparsers(dest="receipt_command", required=True)
    verify = actions.add_parser("verify", help="check a receipt's signature offline")
    verify.add_argument("receipt", help="the receipt (JSON)")
    verify.add_argument("--key", required=True,
                        help="file with the platform public key (base64url of 32 bytes, or PEM)")
    verify.set_defaults(run=_guarded(_receipt_verify))
