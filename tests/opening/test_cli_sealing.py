"""``bidhall keygen | seal | open | receipt verify``, run in-process as a bidder would."""

from __future__ import annotations

import hashlib
import json
import re
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from opening import keys, receipts
from opening.crypto_errors import b64u
from opening.envelope import check_structure, open_envelope, unwrap
from server.cli import main

PASSWORD = "s3cret-密码-phrase"


class Run:
    """One ``bidhall`` invocation: exit code and output."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def refused(self, code: str) -> None:
        assert self.code == 1, self.out
        lines = self.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"bidhall: {code}: "), self.err
        assert "Traceback" not in self.err


Bidhall = Callable[..., Run]


@pytest.fixture
def bidhall(capsys: pytest.CaptureFixture[str]) -> Bidhall:
    def run(*argv: str | Path) -> Run:
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pw").write_text(PASSWORD + "\n", encoding="utf-8")
    return tmp_path


@pytest.fixture
def key_file(workdir: Path, bidhall: Bidhall) -> Path:
    result = bidhall("keygen", "--bidder", "b-1", "--password-file", "pw")
    assert result.code == 0, result.err
    return workdir / "bidhall-key-b-1.json"


def test_keygen(workdir: Path, bidhall: Bidhall, key_file: Path) -> None:
    key, bidder = keys.restore(key_file.read_bytes(), PASSWORD)
    assert bidder == "b-1"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = bidhall("keygen", "--bidder", "b-1", "--password-file", "pw")
    again.refused("exists")
    assert keys.restore(key_file.read_bytes(), PASSWORD)[0].private_numbers() == \
        key.private_numbers()  # untouched
    out = bidhall("keygen", "--bidder", "b-2", "--out", "k2.json", "--password-file", "pw")
    assert out.code == 0
    public = keys.public_bytes(keys.restore((workdir / "k2.json").read_bytes(), PASSWORD)[0])
    assert b64u(public) in out.out
    grouped = " ".join(re.findall("....", keys.fingerprint(public)))
    assert grouped in out.out


def test_keygen_refusals(workdir: Path, bidhall: Bidhall,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / "short").write_text("1234567\n")
    bidhall("keygen", "--bidder", "b-1", "--password-file", "short").refused("weak_password")
    bidhall("keygen", "--bidder", "投标人", "--password-file", "pw").refused("bad_id")
    bidhall("keygen", "--bidder", "b-1", "--password-file", "missing").refused("io_error")
    typed = iter(["first-password", "other-password"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))
    bidhall("keygen", "--bidder", "b-1").refused("password_mismatch")
    assert not list(workdir.glob("bidhall-key-*"))


def _seal(bidhall: Bidhall, *extra: str) -> Run:
    return bidhall("seal", "bid.pdf", "--tender", "T-1", "--bidder", "b-1", "--price",
                   "1234.50", *extra)


def test_seal_and_open(workdir: Path, bidhall: Bidhall, key_file: Path) -> None:
    document = b"%PDF-1.7\n" + bytes(range(256)) * 5000
    (workdir / "bid.pdf").write_bytes(document)
    sealed = _seal(bidhall, "--key-file", key_file.name, "--duration-days", "120",
                   "--manager", "张三", "--quality", "优良")
    assert sealed.code == 0, sealed.err
    envelope = workdir / "bid.pdf.bidenv"
    data = envelope.read_bytes()
    assert f"sha256:      {hashlib.sha256(data).hexdigest()}" in sealed.out
    assert f"size:        {len(data)} bytes" in sealed.out
    key, _ = keys.restore(key_file.read_bytes(), PASSWORD)
    header = check_structure(envelope, tender="T-1", bidder="b-1",
                             recipient=keys.fingerprint(keys.public_bytes(key)))
    with envelope.open("rb") as f:
        summary = open_envelope(f, unwrap(header, key))
    assert summary.to_json() == {"price": "1234.50", "duration_days": 120, "manager": "张三",
                                 "quality": "优良"}

    opened = bidhall("open", envelope, "--key-file", key_file, "--password-file", "pw",
                     "--out", "back.pdf")
    assert opened.code == 0, opened.err
    assert (workdir / "back.pdf").read_bytes() == document
    assert "1234.50" in opened.out and "张三" in opened.out
    assert hashlib.sha256(document).hexdigest() in opened.out
    _seal(bidhall, "--key-file", key_file.name).refused("exists")


def test_seal_with_the_public_key(workdir: Path, bidhall: Bidhall,
                                  key_file: Path) -> None:
    (workdir / "bid.pdf").write_bytes(b"")
    public = b64u(keys.read_key_file(key_file.read_bytes()).public)
    assert _seal(bidhall, "--public-key", public, "--out", "x.bidenv").code == 0
    opened = bidhall("open", "x.bidenv", "--key-file", key_file, "--password-file", "pw")
    assert opened.code == 0 and "document:    0 bytes" in opened.out


def test_seal_refusals_leave_nothing_behind(workdir: Path, bidhall: Bidhall,
                                            key_file: Path) -> None:
    (workdir / "bid.pdf").write_bytes(b"doc")
    public = b64u(keys.read_key_file(key_file.read_bytes()).public)
    cases = [
        (("--public-key", public, "--note", "x" * 501), "bad_summary"),
        (("--public-key", public, "--duration-days", "ten"), "bad_summary"),
        (("--public-key", public[:-2]), "bad_public_key"),
        (("--public-key", "not base64!"), "bad_public_key"),
        (("--key-file", "missing.json"), "io_error"),
        (("--key-file", "pw"), "bad_key_file"),
    ]
    for extra, code in cases:
        _seal(bidhall, *extra).refused(code)
    bidhall("seal", "bid.pdf", "--tender", "T-1", "--bidder", "b-2", "--price", "1",
            "--key-file", key_file.name).refused("wrong_bidder")
    bidhall("seal", "bid.pdf", "--tender", "标段", "--bidder", "b-1", "--price", "1",
            "--key-file", key_file.name).refused("bad_id")
    bidhall("seal", "nothing.pdf", "--tender", "T-1", "--bidder", "b-1", "--price", "1",
            "--key-file", key_file.name).refused("io_error")
    assert not list(workdir.glob("*.bidenv"))
    _seal(bidhall, "--public-key", public, "--price", "-1").refused("bad_summary")


def test_open_refusals(workdir: Path, bidhall: Bidhall, key_file: Path) -> None:
    (workdir / "bid.pdf").write_bytes(b"document" * 100)
    assert _seal(bidhall, "--key-file", key_file.name).code == 0
    envelope = workdir / "bid.pdf.bidenv"
    (workdir / "wrong").write_text("not the password\n")
    bidhall("open", envelope, "--key-file", key_file, "--password-file",
            "wrong").refused("wrong_password")
    data = bytearray(envelope.read_bytes())
    data[-3] ^= 1
    (workdir / "tampered.bidenv").write_bytes(bytes(data))
    bidhall("open", "tampered.bidenv", "--key-file", key_file, "--password-file", "pw",
            "--out", "doc.out").refused("bad_chunk")
    assert not (workdir / "doc.out").exists()
    bidhall("open", "bid.pdf", "--key-file", key_file, "--password-file",
            "pw").refused("not_an_envelope")
    assert bidhall("keygen", "--bidder", "b-1", "--out", "other.json", "--password-file",
                   "pw").code == 0
    bidhall("open", envelope, "--key-file", "other.json", "--password-file",
            "pw").refused("wrong_key")
    bidhall("open", envelope, "--key-file", "bid.pdf", "--password-file",
            "pw").refused("bad_key_file")


def test_progress_for_big_files(workdir: Path, bidhall: Bidhall,
                                key_file: Path) -> None:
    with (workdir / "bid.pdf").open("wb") as f:
        f.truncate(20 << 20)
    result = _seal(bidhall, "--key-file", key_file.name)
    assert result.code == 0
    assert "sealing: 0%" in result.err and "sealing: 100% (20 of 20 MiB)" in result.err


def test_receipt_verify(workdir: Path, bidhall: Bidhall) -> None:
    platform = Ed25519PrivateKey.generate()
    raw = platform.public_key().public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw)
    (workdir / "platform.key").write_text(b64u(raw) + "\n")
    (workdir / "platform.pem").write_bytes(platform.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    receipt = receipts.issue(platform, tender="T-1", bidder="b-1", sha256="cd" * 32,
                             size=4096, at=1_790_000_000_000, upload="u-1")
    (workdir / "receipt.json").write_text(json.dumps(receipt, ensure_ascii=False))
    for key in ("platform.key", "platform.pem"):
        ok = bidhall("receipt", "verify", "receipt.json", "--key", key)
        assert ok.code == 0, ok.err
        assert ok.out.startswith("OK") and "cd" * 32 in ok.out and "2026-" in ok.out
    (workdir / "forged.json").write_text(json.dumps({**receipt, "size": 4097}))
    bidhall("receipt", "verify", "forged.json", "--key", "platform.key").refused("bad_signature")
    other = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    (workdir / "other.key").write_text(b64u(other))
    bidhall("receipt", "verify", "receipt.json", "--key", "other.key").refused("wrong_key")
    (workdir / "broken.json").write_text("{")
    bidhall("receipt", "verify", "broken.json", "--key", "platform.key").refused("bad_receipt")
    bidhall("receipt", "verify", "receipt.json", "--key", "broken.json").refused(
        "bad_public_key")
    bidhall("receipt", "verify", "none.json", "--key", "platform.key").refused("io_error")


def test_the_installed_command(workdir: Path) -> None:
    bidhall = Path(sys.executable).parent / "bidhall"
    if not bidhall.exists():
        pytest.skip("bidhall is not installed in this environment")
    done = subprocess.run([str(bidhall), "keygen", "--bidder", "b-9", "--password-file", "pw"],
                          cwd=workdir, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert (workdir / "bidhall-key-b-9.json").exists()
    done = subprocess.run([str(bidhall), "open", "pw", "--key-file", "bidhall-key-b-9.json",
                           "--password-file", "pw"], cwd=workdir, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("bidhall: not_an_envelope: ") and "Traceback" not in done.stderr
