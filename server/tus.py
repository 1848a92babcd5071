"""A tus 1.0.0 resumable-upload server (https://tus.io/protocols/resumable-upload) as routes.

Extensions: creation, creation-with-upload, termination, checksum (sha1, sha256, sha512),
expiration. It knows nothing of tenders: who may upload, and what a finished upload means,
come from :class:`TusHooks`. Mount it with::

    uploads = TusServer(data_dir / "uploads", hooks)
    app = Starlette(routes=[*uploads.routes("/api/tenders/{tender_id}/uploads")])
    ...
    await uploads.close()            # on shutdown

The prefix's one path parameter (any name) is the upload's *scope*; an upload is found only
under its own scope and only by its owner (anyone else gets 404, so ids cannot be probed).

Refusals carry a stable code; every one is listed in :data:`CODES` with its status. The body
is ``{"error": {"code": ..., "message": ...}}`` (none on HEAD). Every response carries
``Tus-Resumable: 1.0.0``.

Concurrency: one writer per upload. A PATCH (or DELETE) that finds another PATCH in progress
on the same upload is refused at once with 409 ``upload_busy`` rather than queued: after the
first one ends, the second's ``Upload-Offset`` would be stale anyway, and a queued request
would hold a connection open for nothing. The hold is an ``flock`` on the data file
(:class:`server.tus_store.DataWriter`), so it also holds across worker processes.

Durability (details in :mod:`server.tus_store`): a PATCH's bytes are written from a worker
thread in pieces of at most 1 MiB (the body is never held whole) and fsynced before the new
offset is recorded and acknowledged. A client that disconnects keeps what arrived (the tus
spec's SHOULD); a PATCH with a known length and no checksum also records its progress every
32 MiB, so a server crash in the middle of a long PATCH loses at most that much. A PATCH with
``Upload-Checksum`` is all or nothing: a mismatch (460) or a cut-off body discards the chunk.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any, Final, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .clock import now_ms
from .tus_store import (
    Busy,
    DataWriter,
    Hasher,
    Upload,
    UploadStore,
    new_upload_id,
    valid_upload_id,
)

__all__ = ["CODES", "TusHooks", "TusRefused", "TusServer", "Upload"]

log = logging.getLogger(__name__)

TUS_VERSION: Final = "1.0.0"
EXTENSIONS: Final = "creation,creation-with-upload,termination,checksum,expiration"
ALGORITHMS: Final[dict[str, Callable[[], Any]]] = {
    "sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
OCTETS: Final = "application/offset+octet-stream"
FLUSH_BYTES: Final = 1 << 20
CHECKPOINT_BYTES: Final = 32 << 20
MAX_METADATA: Final = 4096

# Every refusal this module sends (hooks may add their own codes).
CODES: Final[dict[str, tuple[int, str]]] = {
    "bad_request": (400, "a header is missing or malformed"),
    "unsupported_checksum": (400, "the checksum algorithm is not supported"),
    "unknown_upload": (404, "no such upload"),
    "method_not_allowed": (405, "this method is not allowed here"),
    "offset_mismatch": (409, "Upload-Offset does not match the upload's current offset"),
    "upload_busy": (409, "another request is writing this upload; retry after it ends"),
    "upload_complete": (409, "the upload is complete and can no longer be changed"),
    "upload_expired": (410, "the upload expired before it was finished"),
    "unsupported_version": (412, "Tus-Resumable 1.0.0 is required"),
    "too_large": (413, "the upload would be larger than allowed"),
    "unsupported_media_type": (415, f"PATCH bodies must be {OCTETS}"),
    "checksum_mismatch": (460, "the chunk does not match Upload-Checksum; it was discarded"),
    "unavailable": (503, "the upload service is shutting down; retry shortly"),
}


class TusRefused(Exception):
    """A request refused with ``status`` and a stable ``code``; nothing was changed."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


def refuse(code: str, message: str | None = None) -> TusRefused:
    status, default = CODES[code]
    return TusRefused(status, code, message or default)


class TusHooks(Protocol):
    """What the application decides. Each may raise :class:`TusRefused`."""

    async def authorize(self, request: Request, scope: str) -> str:
        """The requester's owner id, or raise (401/403). Called on every request but OPTIONS."""
        ...

    async def on_create(self, scope: str, owner: str, length: int,
                        metadata: dict[str, str]) -> None:
        """Before an upload is created (e.g. 403 past the deadline, 413 too large)."""
        ...

    async def on_patch(self, upload: Upload) -> None:
        """Before each PATCH of ``upload`` is accepted (e.g. a deadline check)."""
        ...

    async def on_complete(self, upload: Upload) -> dict[str, str]:
        """Once the last byte is durable. Returns extra headers for the final response; a
        refusal deletes the upload and is sent instead."""
        ...


# ---------------------------------------------------------------------- header parsing
_DIGITS = re.compile(r"[0-9]{1,19}")
_KEY = re.compile(r"[!-+\--~]+")  # printable ASCII without space and comma


def parse_count(value: str | None, name: str) -> int:
    """A non-negative decimal header value, or refuse ``bad_request``."""
    if value is None:
        raise refuse("bad_request", f"{name} is required")
    if not _DIGITS.fullmatch(value.strip()):
        raise refuse("bad_request", f"{name} must be a non-negative integer")
    return int(value)


def parse_metadata(value: str | None) -> dict[str, str]:
    """``Upload-Metadata``: ``key base64value`` pairs separated by commas; values UTF-8."""
    if value is None or not value.strip():
        return {}
    if len(value) > MAX_METADATA:
        raise refuse("bad_request", f"Upload-Metadata is longer than {MAX_METADATA} characters")
    out: dict[str, str] = {}
    for pair in value.split(","):
        parts = pair.strip().split(" ")
        key = parts[0]
        if not _KEY.fullmatch(key) or len(parts) > 2 or key in out:
            raise refuse("bad_request", "Upload-Metadata keys must be unique, non-empty ASCII "
                                        "without spaces or commas")
        try:
            raw = base64.b64decode(parts[1], validate=True) if len(parts) == 2 else b""
            out[key] = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            raise refuse("bad_request", f"Upload-Metadata value of {key!r} is not base64 "
                                        "of UTF-8 text") from None
    return out


def encode_metadata(metadata: dict[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" if v else k
                    for k, v in metadata.items())


def parse_checksum(value: str | None) -> tuple[str, bytes] | None:
    """``Upload-Checksum: <algorithm> <base64 digest>``."""
    if value is None:
        return None
    name, _, digest = value.strip().partition(" ")
    if name.lower() not in ALGORITHMS:
        raise refuse("unsupported_checksum", f"checksum algorithm {name!r} is not supported; "
                                             f"use one of {', '.join(ALGORITHMS)}")
    try:
        return name.lower(), base64.b64decode(digest.strip(), validate=True)
    except binascii.Error:
        raise refuse("bad_request", "Upload-Checksum digest is not base64") from None


def http_date(ms: int) -> str:
    return formatdate(ms / 1000, usegmt=True)


@dataclass
class _Received:
    upload: Upload
    outcome: str  # "end", "disconnect", "timeout", "closing"


# ---------------------------------------------------------------------- the server
class TusServer:
    """tus 1.0.0 over files under ``root``; see the module docstring."""

    def __init__(self, root: Path, hooks: TusHooks, *, max_size: int = 1 << 30,
                 clock: Callable[[], int] = now_ms, expire_after_ms: int = 24 * 3600 * 1000,
                 body_timeout_s: float = 60.0) -> None:
        self.store = UploadStore(root)
        self.hooks = hooks
        self.max_size = max_size
        self.clock = clock
        self.expire_after_ms = expire_after_ms
        self.body_timeout_s = body_timeout_s
        self._busy: set[str] = set()
        self._closed = False

    # ------------------------------------------------------------ public
    def routes(self, prefix: str) -> list[BaseRoute]:
        """Routes for ``prefix`` (the collection, with and without a trailing slash) and
        ``prefix/{id}``. ``prefix`` holds at most one ``{param}``: the scope."""
        prefix = prefix.rstrip("/")
        params = re.findall(r"{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?}", prefix)
        if len(params) > 1:
            raise ValueError(f"prefix {prefix!r} must hold at most one path parameter")
        scope_param = params[0] if params else None

        def scope_of(request: Request) -> str:
            return str(request.path_params[scope_param]) if scope_param else ""

        async def collection(request: Request) -> Response:
            return await self._answer(request, self._collection, scope_of(request))

        async def item(request: Request) -> Response:
            return await self._answer(request, self._item, scope_of(request))

        # Every method reaches the handlers, so even a 405 carries Tus-Resumable.
        methods = ["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"]
        return [Route(prefix, collection, methods=methods, name="tus_collection"),
                Route(prefix + "/", collection, methods=methods, name="tus_collection_slash"),
                Route(prefix + "/{tus_upload_id}", item, methods=methods, name="tus_upload")]

    async def get(self, upload_id: str) -> Upload | None:
        """The recorded upload with this id, if any."""
        return await asyncio.to_thread(self.store.load, upload_id)

    async def purge_expired(self) -> int:
        """Delete unfinished uploads past their expiry (and data files a crash left without
        a record). Returns how many uploads were deleted. Call it now and then."""
        now = self.clock()
        deleted = 0
        for upload_id in await asyncio.to_thread(self.store.ids):
            upload = await self.get(upload_id)
            if upload is not None and self._expired(upload, now) and upload_id not in self._busy:
                await asyncio.to_thread(self.store.delete, upload_id)
                deleted += 1
        orphans = await asyncio.to_thread(self.store.orphans, self.expire_after_ms / 1000,
                                          now / 1000)
        for path in orphans:
            path.unlink(missing_ok=True)
        return deleted

    async def close(self, timeout_s: float = 10.0) -> None:
        """Refuse new writes (503); PATCHes in progress stop at their next piece, keep what
        is durable, and are waited for (at most ``timeout_s``)."""
        self._closed = True
        deadline = time.monotonic() + timeout_s
        while self._busy and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    # ------------------------------------------------------------ dispatch
    async def _answer(self, request: Request, handler: Callable[..., Any], scope: str
                      ) -> Response:
        try:
            response: Response = await handler(request, scope)
        except TusRefused as exc:
            headers = {**exc.headers, "Tus-Resumable": TUS_VERSION}
            if exc.code == "unsupported_version":
                headers["Tus-Version"] = TUS_VERSION
            if request.method == "HEAD":
                response = Response(status_code=exc.status, headers=headers)
            else:
                response = JSONResponse({"error": {"code": exc.code, "message": exc.message}},
                                        exc.status, headers=headers)
        response.headers["Tus-Resumable"] = TUS_VERSION
        return response

    async def _collection(self, request: Request, scope: str) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={
                "Tus-Version": TUS_VERSION, "Tus-Extension": EXTENSIONS,
                "Tus-Max-Size": str(self.max_size),
                "Tus-Checksum-Algorithm": ",".join(ALGORITHMS)})
        _check_version(request)
        if request.method == "POST":
            return await self._create(request, scope)
        raise refuse("method_not_allowed", f"{request.method} is not allowed on the collection")

    async def _item(self, request: Request, scope: str) -> Response:
        method = request.method
        if method == "POST":  # clients behind proxies that only pass GET and POST
            method = request.headers.get("x-http-method-override", "POST").upper()
        if method == "OPTIONS":
            return await self._collection(request, scope)
        _check_version(request)
        upload_id = request.path_params["tus_upload_id"]
        if method == "HEAD":
            return await self._head(request, scope, upload_id)
        if method == "PATCH":
            return await self._patch(request, scope, upload_id)
        if method == "DELETE":
            return await self._delete(request, scope, upload_id)
        raise refuse("method_not_allowed", f"{method} is not allowed on an upload")

    # ------------------------------------------------------------ endpoints
    async def _create(self, request: Request, scope: str) -> Response:
        owner = await self.hooks.authorize(request, scope)
        self._check_open()
        if "upload-defer-length" in request.headers:
            raise refuse("bad_request", "Upload-Defer-Length is not supported; send "
                                        "Upload-Length")
        length = parse_count(request.headers.get("upload-length"), "Upload-Length")
        if length > self.max_size:
            raise refuse("too_large", f"Upload-Length {length} is larger than the maximum "
                                      f"of {self.max_size} bytes")
        metadata = parse_metadata(request.headers.get("upload-metadata"))
        with_body = _media_type(request) == OCTETS
        body_length: int | None = None
        checksum: tuple[str, bytes] | None = None
        if with_body:
            body_length, checksum = self._patch_headers(request)
            if body_length is not None and body_length > length:
                raise refuse("too_large", "the body is longer than Upload-Length")
        await self.hooks.on_create(scope, owner, length, metadata)
        upload_id = new_upload_id()
        upload = Upload(id=upload_id, owner=owner, scope=scope, length=length, offset=0,
                        metadata=metadata, created_at=self.clock(),
                        path=self.store.data_path(upload_id))
        await asyncio.to_thread(self.store.create, upload)
        headers = {"Location": request.url.path.rstrip("/") + "/" + upload_id,
                   "Upload-Expires": http_date(self._expires_at(upload))}
        with self._hold(upload_id):
            if with_body and length:
                await self.hooks.on_patch(upload)
                got = await self._receive(request, upload, body_length, checksum)
                upload = got.upload
                headers["Upload-Offset"] = str(upload.offset)
            if upload.finished:
                headers.update(await self._finish(upload))
        return Response(status_code=201, headers=headers)

    async def _head(self, request: Request, scope: str, upload_id: str) -> Response:
        upload = await self._find(request, scope, upload_id)
        if upload.finished and not upload.complete and upload_id not in self._busy:
            # The server stopped between the last byte and the completion hook.
            with self._hold(upload_id):
                upload = await self._reload(upload)
                if not upload.complete:
                    upload = upload.with_completion(await self._finish(upload))
        headers = {"Upload-Offset": str(upload.offset), "Upload-Length": str(upload.length),
                   "Cache-Control": "no-store"}
        if upload.metadata:
            headers["Upload-Metadata"] = encode_metadata(upload.metadata)
        if upload.completion is not None:
            headers.update(upload.completion)
        else:
            headers["Upload-Expires"] = http_date(self._expires_at(upload))
        return Response(status_code=200, headers=headers)

    async def _patch(self, request: Request, scope: str, upload_id: str) -> Response:
        upload = await self._find(request, scope, upload_id)
        self._check_open()
        if _media_type(request) != OCTETS:
            raise refuse("unsupported_media_type")
        offset = parse_count(request.headers.get("upload-offset"), "Upload-Offset")
        body_length, checksum = self._patch_headers(request)
        with self._hold(upload_id):
            upload = await self._reload(upload)
            if offset != upload.offset:
                raise refuse("offset_mismatch", f"Upload-Offset is {offset} but the upload's "
                                                f"offset is {upload.offset}")
            if body_length is not None and offset + body_length > upload.length:
                raise refuse("too_large", f"{body_length} bytes at offset {offset} would pass "
                                          f"Upload-Length {upload.length}")
            headers: dict[str, str] = {}
            outcome = "end"
            if upload.complete:
                if body_length is None and await _has_body(request):
                    raise refuse("too_large", "the upload already has all its bytes")
            else:
                if not upload.finished:
                    await self.hooks.on_patch(upload)
                    got = await self._receive(request, upload, body_length, checksum)
                    upload, outcome = got.upload, got.outcome
                if upload.finished:
                    upload = upload.with_completion(await self._finish(upload))
            headers["Upload-Offset"] = str(upload.offset)
            if upload.completion is not None:
                headers.update(upload.completion)
            else:
                headers["Upload-Expires"] = http_date(self._expires_at(upload))
        if outcome == "closing":
            error = refuse("unavailable", "the server is shutting down; the bytes received "
                                          "so far are kept, resume from Upload-Offset")
            raise TusRefused(error.status, error.code, error.message, headers)
        return Response(status_code=204, headers=headers)

    async def _delete(self, request: Request, scope: str, upload_id: str) -> Response:
        upload = await self._find(request, scope, upload_id)
        with self._hold(upload_id):
            upload = await self._reload(upload)
            if upload.complete:
                raise refuse("upload_complete", "the upload is complete; it can no longer be "
                                                "terminated")
            await asyncio.to_thread(self.store.delete, upload_id)
        return Response(status_code=204)

    # ------------------------------------------------------------ the body
    def _patch_headers(self, request: Request) -> tuple[int | None, tuple[str, bytes] | None]:
        raw = request.headers.get("content-length")
        body_length = None if raw is None else parse_count(raw, "Content-Length")
        return body_length, parse_checksum(request.headers.get("upload-checksum"))

    async def _receive(self, request: Request, upload: Upload, body_length: int | None,
                       checksum: tuple[str, bytes] | None) -> _Received:
        """Stream the body to disk after ``upload.offset``; record what became durable."""
        hasher: Hasher | None = ALGORITHMS[checksum[0]]() if checksum else None
        # Progress is recorded mid-body only when nothing can still make the chunk invalid.
        checkpoints = body_length is not None and hasher is None
        try:
            writer = await asyncio.to_thread(self.store.writer, upload, hasher)
        except Busy:
            raise refuse("upload_busy") from None
        buffer = bytearray()
        received = upload.offset  # offset just past the last byte taken from the body
        recorded = upload.offset
        outcome = "end"
        # One write in flight while the next MiB is received: reading the socket never
        # waits for the disk, and at most two pieces are in memory.
        pending: asyncio.Future[None] | None = None

        async def drain() -> None:
            nonlocal pending
            if pending is not None:
                waited, pending = pending, None
                await waited

        try:
            while True:
                try:
                    message = await asyncio.wait_for(request.receive(), self.body_timeout_s)
                except TimeoutError:
                    outcome = "timeout"
                    break
                if message["type"] == "http.disconnect":
                    outcome = "disconnect"
                    break
                piece = message.get("body", b"")
                if received + len(piece) > upload.length:
                    await drain()
                    await asyncio.to_thread(writer.rollback)
                    raise refuse("too_large", f"the body would pass Upload-Length "
                                              f"{upload.length}; nothing was written")
                received += len(piece)
                buffer += piece
                if len(buffer) >= FLUSH_BYTES:
                    await drain()
                    data, buffer = bytes(buffer), bytearray()
                    pending = asyncio.ensure_future(asyncio.to_thread(writer.write, data))
                    if checkpoints and received - recorded >= CHECKPOINT_BYTES:
                        await drain()
                        upload = await self._record(writer, upload)
                        recorded = upload.offset
                if not message.get("more_body", False):
                    break
                if self._closed:
                    outcome = "closing"
                    break
            await drain()
            if buffer:
                await asyncio.to_thread(writer.write, bytes(buffer))
            if checksum is not None and hasher is not None:
                if outcome != "end":
                    # A chunk cut short cannot be verified: none of it is kept.
                    await asyncio.to_thread(writer.rollback)
                    return _Received(upload, outcome)
                if hasher.digest() != checksum[1]:
                    await asyncio.to_thread(writer.rollback)
                    raise refuse("checksum_mismatch")
            if writer.end != recorded:
                upload = await self._record(writer, upload)
            if outcome != "end":
                log.info("upload %s: PATCH ended early (%s) at offset %d", upload.id, outcome,
                         upload.offset)
            return _Received(upload, outcome)
        finally:
            with contextlib.suppress(Exception):
                await drain()  # the file stays open until its last write is done
            await asyncio.to_thread(writer.close)

    async def _record(self, writer: DataWriter, upload: Upload) -> Upload:
        def sync_and_save() -> Upload:
            writer.sync()
            done = upload.with_offset(writer.end)
            self.store.save(done)
            return done

        return await asyncio.to_thread(sync_and_save)

    async def _finish(self, upload: Upload) -> dict[str, str]:
        """Run the completion hook; record its headers, or delete the upload if it refuses."""
        try:
            headers = dict(await self.hooks.on_complete(upload))
        except TusRefused:
            await asyncio.to_thread(self.store.delete, upload.id)
            raise
        await asyncio.to_thread(self.store.save, upload.with_completion(headers))
        return headers

    # ------------------------------------------------------------ helpers
    async def _find(self, request: Request, scope: str, upload_id: str) -> Upload:
        owner = await self.hooks.authorize(request, scope)
        upload = await self.get(upload_id) if valid_upload_id(upload_id) else None
        if upload is None or upload.owner != owner or upload.scope != scope:
            raise refuse("unknown_upload")
        if self._expired(upload, self.clock()) and upload_id not in self._busy:
            await asyncio.to_thread(self.store.delete, upload_id)
            raise refuse("upload_expired")
        return upload

    async def _reload(self, upload: Upload) -> Upload:
        """The record again, now that this request holds the upload."""
        fresh = await self.get(upload.id)
        if fresh is None:
            raise refuse("unknown_upload")
        return fresh

    @contextlib.contextmanager
    def _hold(self, upload_id: str) -> Any:
        if upload_id in self._busy:
            raise refuse("upload_busy")
        self._busy.add(upload_id)
        try:
            yield
        finally:
            self._busy.discard(upload_id)

    def _check_open(self) -> None:
        if self._closed:
            raise refuse("unavailable")

    def _expires_at(self, upload: Upload) -> int:
        return upload.created_at + self.expire_after_ms

    def _expired(self, upload: Upload, now: int) -> bool:
        return not upload.complete and now >= self._expires_at(upload)


def _check_version(request: Request) -> None:
    version = request.headers.get("tus-resumable")
    if version != TUS_VERSION:
        raise refuse("unsupported_version", "Tus-Resumable: 1.0.0 is required" if version is None
                     else f"Tus-Resumable {version!r} is not supported; use 1.0.0")


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _has_body(request: Request) -> bool:
    message = await request.receive()
    return bool(message.get("body"))
