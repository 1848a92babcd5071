"""Sealed bids on the server: uploads become bids, released keys open them.

Files, under ``DATA_DIR/tenders/<tender>/``::

    uploads/                     tus uploads in progress (server.tus)
    bids/<bidder>/<upload>.bidenv      a completed, checked envelope (ciphertext only)
    bids/<bidder>/<upload>.receipt.json  its signed receipt
    keys/<bidder>.key            the file key, once released at the opening
    record/record.{json,html,pdf}      the opening record, archived at the close

Before the opening the server holds ciphertext and public keys only: it cannot read a
bid. A completed upload is checked without a key (magic, canonical header, exact
length, tender, bidder and the bidder's registered key) before it becomes the bid.
At the opening, the bidder's page unwraps the file key and posts it; the server checks
it against the envelope's commitment, records the release, then decrypts and
authenticates every chunk in a worker thread and records the outcome.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from opening import RecordDecryption, ReleaseKey, SubmitBid
from opening.envelope import EnvelopeError, check_key, check_structure, open_envelope, read_header
from opening.receipts import issue

from . import record
from .api import Ctx, Op
from .clock import now_ms
from .errors import ServerError
from .tender_api import T, bidder_of, done, tenders
from .tenders import Tenders
from .tus import TusRefused, Upload

Json = dict[str, Any]
log = logging.getLogger("bidhall.tenders")


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class BidFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def tender(self, tender_id: str) -> Path:
        return self.root / tender_id

    def bid(self, tender_id: str, bidder: str, upload: str) -> Path:
        return self.root / tender_id / "bids" / bidder / f"{upload}.bidenv"

    def receipt(self, tender_id: str, bidder: str, upload: str) -> Path:
        return self.root / tender_id / "bids" / bidder / f"{upload}.receipt.json"

    def key(self, tender_id: str, bidder: str) -> Path:
        return self.root / tender_id / "keys" / f"{bidder}.key"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _write_durably(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _link_durably(src: Path, dst: Path) -> None:
    """``dst`` becomes a second name of ``src`` (a copy across file systems), durably. The
    upload keeps its own name, so a completion interrupted after this step can run again."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.copyfile(src, dst)
        with dst.open("rb+") as f:
            os.fsync(f.fileno())
    fd = os.open(dst.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _refused(exc: Exception) -> TusRefused:
    code = getattr(exc, "code", "bad_request")
    message = getattr(exc, "message", str(exc))
    status = {"unauthorized": 401, "bad_token": 401, "token_expired": 401, "forbidden": 403,
              "unknown_tender": 404}.get(code, 422 if isinstance(exc, EnvelopeError) else 403)
    return TusRefused(status, code, message)


class UploadHooks:
    """What the tus server asks the tenders: who may upload, and what a finished upload is."""

    def __init__(self, book: Tenders, files: BidFiles, signing_key: Any) -> None:
        self.book, self.files, self.signing_key = book, files, signing_key

    def _probe(self, tender_id: str, bidder: str, size: int) -> None:
        decision = self.book.dry_run(tender_id, SubmitBid(
            at=now_ms(), bidder=bidder, upload="probe", sha256="0" * 64, size=size))
        if decision.refusal is not None:
            raise _refused(decision.refusal)

    async def authorize(self, request: Request, scope: str) -> str:
        try:
            bidder = bidder_of(request, scope)
            self.book.get(scope)
        except ServerError as exc:
            raise _refused(exc) from None
        assert bidder is not None
        return bidder

    async def on_create(self, scope: str, owner: str, length: int,
                        metadata: dict[str, str]) -> None:
        self._probe(scope, owner, length)

    async def on_patch(self, upload: Upload) -> None:
        self._probe(upload.scope, upload.owner, upload.length)

    async def on_complete(self, upload: Upload) -> dict[str, str]:
        tender_id, bidder = upload.scope, upload.owner
        me = self.book.get(tender_id).bidder_view(bidder)
        if me is None:
            raise TusRefused(403, "not_registered", "register your public key first")
        bid = me["bid"]
        if bid is not None and bid["upload"] == upload.id:
            # Already this bidder's bid: the server stopped before it answered. Same receipt.
            return await self._receipt(tender_id, bidder, upload.id, bid["sha256"], bid["size"],
                                       bid["submitted_at"])
        try:
            await asyncio.to_thread(check_structure, upload.path, tender=tender_id,
                                    bidder=bidder, recipient=me["fingerprint"],
                                    size=upload.length)
        except EnvelopeError as exc:
            raise _refused(exc) from None
        sha256 = await asyncio.to_thread(_sha256, upload.path)
        final = self.files.bid(tender_id, bidder, upload.id)
        await asyncio.to_thread(_link_durably, upload.path, final)
        decision = await self.book.submit(tender_id, SubmitBid(
            at=now_ms(), bidder=bidder, upload=upload.id, sha256=sha256, size=upload.length))
        if decision.refusal is not None:
            final.unlink(missing_ok=True)
            raise _refused(decision.refusal)
        primary = decision.primary
        assert primary is not None
        return await self._receipt(tender_id, bidder, upload.id, sha256, upload.length,
                                   primary.at)

    async def _receipt(self, tender_id: str, bidder: str, upload_id: str, sha256: str,
                       size: int, at: int) -> dict[str, str]:
        receipt = issue(self.signing_key, tender=tender_id, bidder=bidder, sha256=sha256,
                        size=size, at=at, upload=upload_id)
        body = json.dumps(receipt, ensure_ascii=False, sort_keys=True).encode()
        await asyncio.to_thread(_write_durably, self.files.receipt(tender_id, bidder, upload_id),
                                body)
        return {"Upload-Receipt": b64u(body)}


# ---------------------------------------------------------------------- bidder endpoints
class ReleaseBody(msgspec.Struct, forbid_unknown_fields=True):
    file_key: str


def _files(ctx: Ctx | Request) -> BidFiles:
    state = ctx.state if isinstance(ctx, Ctx) else ctx.scope["state"]
    files: BidFiles = state["bid_files"]
    return files


def _current(ctx: Ctx) -> tuple[str, str, Json | None]:
    tender_id = ctx.param("tender_id")
    bidder = bidder_of(ctx.request, tender_id)
    assert bidder is not None
    me = tenders(ctx).get(tender_id).bidder_view(bidder)
    return tender_id, bidder, me


def _upload(me: Json | None) -> str | None:
    bid = (me or {}).get("bid") or {}
    upload: str | None = bid.get("upload")
    return upload


def _bid_path(ctx: Ctx, tender_id: str, bidder: str, me: Json | None) -> Path:
    upload = _upload(me)
    if not upload:
        raise ServerError("not_found", "you have no bid in this tender")
    return _files(ctx).bid(tender_id, bidder, upload)


async def receipt(ctx: Ctx) -> Any:
    tender_id, bidder, me = _current(ctx)
    upload = _upload(me)
    if not upload:
        raise ServerError("not_found", "you have no bid in this tender")
    path = _files(ctx).receipt(tender_id, bidder, upload)
    return json.loads(await asyncio.to_thread(path.read_bytes))


async def header(request: Request) -> Response:
    """The first bytes of the bidder's own envelope: what its page needs to unwrap the key."""
    from .api import _staff

    ctx = Ctx(request, request.scope["state"], None,
              _staff(request, request.scope["state"]["tokens"], False))
    tender_id, bidder, me = _current(ctx)
    path = _bid_path(ctx, tender_id, bidder, me)

    def prefix() -> bytes:
        with path.open("rb") as f:
            head = read_header(f)
            f.seek(0)
            return f.read(head.prefix_length)

    return Response(await asyncio.to_thread(prefix), media_type="application/octet-stream",
                    headers={"cache-control": "no-store"})


def _decrypt(path: Path, file_key: bytes) -> Json:
    with path.open("rb") as f:
        summary = open_envelope(f, file_key)
    out: Json = summary.to_json()
    return out


async def release(ctx: Ctx) -> Any:
    """The bidder's file key: check it, record the release, decrypt, record the outcome."""
    body: ReleaseBody = ctx.body
    tender_id, bidder, me = _current(ctx)
    try:
        file_key = unb64u(body.file_key)
    except ValueError:
        file_key = b""
    if len(file_key) != 32:
        raise ServerError("bad_message", "file_key must be 32 bytes, base64url")
    book = tenders(ctx)
    probe = book.dry_run(tender_id, ReleaseKey(at=now_ms(), bidder=bidder))
    if probe.refusal is not None:
        raise probe.refusal
    path = _bid_path(ctx, tender_id, bidder, me)

    def commitment() -> None:
        with path.open("rb") as f:
            check_key(read_header(f), file_key)

    try:
        await asyncio.to_thread(commitment)
    except EnvelopeError as exc:
        raise ServerError(exc.code, exc.message) from None
    # The key is on disk before the release is recorded: a process stopped in between
    # finishes the decryption at its next start (see settle_released).
    key_path = _files(ctx).key(tender_id, bidder)
    await asyncio.to_thread(_write_durably, key_path, file_key)
    released = await book.submit(tender_id, ReleaseKey(at=now_ms(), bidder=bidder))
    if released.refusal is not None:
        key_path.unlink(missing_ok=True)
        raise released.refusal
    summary, reason = await _settle(book, tender_id, bidder, path, file_key)
    return {"outcome": "decrypted" if summary is not None else "failed", "summary": summary,
            "reason": reason or None}


async def _settle(book: Tenders, tender_id: str, bidder: str, path: Path,
                  file_key: bytes) -> tuple[Json | None, str]:
    """Decrypt a released bid and record the outcome."""
    summary: Json | None = None
    reason = ""
    try:
        summary = await asyncio.to_thread(_decrypt, path, file_key)
    except EnvelopeError as exc:
        reason = exc.code
    done(await book.submit(tender_id, RecordDecryption(
        at=now_ms(), bidder=bidder, ok=summary is not None, summary=summary, reason=reason)))
    return summary, reason


async def settle_released(book: Tenders, files: BidFiles) -> int:
    """At start: decrypt every bid whose key was released but whose outcome was not
    recorded (the process stopped in between). Returns how many were settled."""
    settled = 0
    for tender_id in book.ids():
        tender = book.get(tender_id)
        for bidder in list(tender.bidders):
            me = tender.bidder_view(bidder)
            if me is None or not me["key_released"] or me["outcome"] not in (None, "waiting"):
                continue
            upload, key_path = _upload(me), files.key(tender_id, bidder)
            if upload is None or not key_path.exists():
                continue
            try:
                await _settle(book, tender_id, bidder, files.bid(tender_id, bidder, upload),
                              await asyncio.to_thread(key_path.read_bytes))
            except Exception:  # the window closed meanwhile, or another process did it
                log.warning("tender %s: the released bid of %s was not settled", tender_id,
                            bidder, exc_info=True)
                continue
            settled += 1
    return settled


OPS: tuple[Op, ...] = (
    Op("GET", T + "/receipt", receipt, "Bidder: the signed receipt of its current bid",
       "public", dict[str, Any]),
    Op("POST", T + "/release", release, "Bidder: release the file key at the opening",
       "public", dict[str, Any], ReleaseBody),
)


# ---------------------------------------------------------------------- the record
#: States in which the record is public (the read-out has been announced, or it failed).
PUBLIC_RECORD = {"announced", "objections", "closed", "failed"}
RECORD_TYPES = {"json": "application/json", "html": "text/html; charset=utf-8",
                "pdf": "application/pdf"}


def render(doc: Json, kind: str) -> bytes:
    if kind == "json":
        return json.dumps(doc, ensure_ascii=False, indent=1).encode()
    if kind == "html":
        return record.to_html(doc).encode()
    return record.to_pdf(doc)


async def record_file(request: Request) -> Response:
    """``record.json|html|pdf``: public once announced (or failed); staff at any time."""
    from .api import _staff

    state = request.scope["state"]
    tender_id, kind = request.path_params["tender_id"], request.path_params["kind"]
    if kind not in RECORD_TYPES:
        raise ServerError("not_found", "the record is record.json, record.html or record.pdf")
    book = tenders(request)
    tender = book.get(tender_id)
    if str(tender.state) not in PUBLIC_RECORD and _staff(request, state["tokens"], False) is None:
        raise ServerError("forbidden", "the opening record is published once the bids are read "
                          "out")
    doc = record.build(tender_id, tender, book.events(tender_id), state["signing_key"], now_ms())
    body = await asyncio.to_thread(render, doc, kind)
    return Response(body, media_type=RECORD_TYPES[kind], headers={"cache-control": "no-store"})


def archiver(book: Tenders, files: BidFiles, key: Any) -> Any:
    """An ``on_events`` handler writing the record into the archive when a tender ends."""
    tasks: set[asyncio.Task[None]] = set()

    async def write(tender_id: str) -> None:
        doc = record.build(tender_id, book.get(tender_id), book.events(tender_id), key,
                           now_ms())
        for kind in RECORD_TYPES:
            body = await asyncio.to_thread(render, doc, kind)
            await asyncio.to_thread(_write_durably,
                                    files.tender(tender_id) / "record" / f"record.{kind}", body)

    def on_events(tender_id: str, events: Any) -> None:
        if any(e.KIND in ("closed", "failed") for e in events):
            task = asyncio.get_running_loop().create_task(write(tender_id))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    return on_events
