"""The tus 1.0 upload server against the real tuspy client, raw sockets and httpx.

A small Starlette app serves :class:`server.tus.TusServer` on a real uvicorn on 127.0.0.1 in
the test's event loop; tuspy (synchronous) runs in a worker thread. Hooks: a Bearer token
names the owner, the scope ``closed`` refuses new uploads and PATCHes, and a finished upload
must start with a magic prefix (else 422, which deletes it). After every refusal the
recorded offset and the bytes on disk are checked unchanged.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from tusclient import client as tus_client
from tusclient.exceptions import TusUploadFailed

from server.tus import TusRefused, TusServer, Upload

pytestmark = pytest.mark.timeout(60)

MAGIC = b"BIDENV\x00\x01"
MiB = 1 << 20
MAX_SIZE = 16 * MiB
TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}
ALICE = {"Authorization": "Bearer tok-alice"}
BOB = {"Authorization": "Bearer tok-bob"}
TUS = {"Tus-Resumable": "1.0.0"}


class Hooks:
    def __init__(self) -> None:
        self.closed = {"closed"}
        self.completed: list[Upload] = []
        self.patches = 0
        self.fail_once = False

    async def authorize(self, request: Request, scope: str) -> str:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in TOKENS:
            raise TusRefused(401, "unauthorized", "a bearer token is required")
        return TOKENS[token]

    async def on_create(self, scope: str, owner: str, length: int,
                        metadata: dict[str, str]) -> None:
        if scope in self.closed:
            raise TusRefused(403, "deadline_passed", "the bid deadline has passed")

    async def on_patch(self, upload: Upload) -> None:
        self.patches += 1
        if upload.scope in self.closed:
            raise TusRefused(403, "deadline_passed", "the bid deadline has passed")

    async def on_complete(self, upload: Upload) -> dict[str, str]:
        if self.fail_once:
            self.fail_once = False
            raise RuntimeError("the completion hook broke")
        data = await asyncio.to_thread(upload.path.read_bytes)
        if not data.startswith(MAGIC):
            raise TusRefused(422, "not_an_envelope", "the file is not a sealed envelope")
        self.completed.append(upload)
        return {"Upload-Receipt": hashlib.sha256(data).hexdigest()}


class Clock:
    def __init__(self) -> None:
        self.now = 1_790_000_000_000

    def __call__(self) -> int:
        return self.now


class Harness:
    """The app on a real uvicorn; ``restart()`` brings up a fresh server on the same port."""

    def __init__(self, root: Path) -> None:
        self.root, self.hooks, self.clock = root, Hooks(), Clock()
        self.sock = self._listen(0)
        self.port = self.sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.endpoint = self.base + "/v1/tenders/t1/uploads/"
        self.http = httpx.AsyncClient(base_url=self.base, timeout=30)

    @staticmethod
    def _listen(port: int) -> socket.socket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
        return sock

    async def start(self) -> None:
        if self.sock.fileno() == -1:  # uvicorn closes the sockets it served
            self.sock = self._listen(self.port)
        self.tus = TusServer(self.root, self.hooks, max_size=MAX_SIZE, clock=self.clock,
                             expire_after_ms=3600_000, body_timeout_s=5)
        app = Starlette(routes=self.tus.routes("/v1/tenders/{tender_id}/uploads"))
        self.server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning",
                                                    access_log=False))
        self.task = asyncio.get_running_loop().create_task(
            self.server.serve(sockets=[self.sock]))
        while not self.server.started:
            assert not self.task.done(), self.task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        await self.tus.close()
        self.server.should_exit = True
        await self.task

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def create(self, length: int, scope: str = "t1", **headers: str) -> str:
        r = await self.http.post(f"/v1/tenders/{scope}/uploads/",
                                 headers={**TUS, **ALICE, "Upload-Length": str(length),
                                          **headers})
        assert r.status_code == 201, r.text
        return self.base + r.headers["location"]

    async def patch(self, url: str, offset: int, body: Any, **headers: str) -> httpx.Response:
        return await self.http.patch(url, content=body, headers={
            **TUS, **ALICE, "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream", **headers})

    async def head(self, url: str, who: dict[str, str] = ALICE) -> httpx.Response:
        return await self.http.head(url, headers={**TUS, **who})

    def stored(self, url: str) -> tuple[int, bytes]:
        """(recorded offset, bytes in the data file) straight from the disk."""
        upload_id = url.rsplit("/", 1)[1]
        record = json.loads((self.root / f"{upload_id}.json").read_bytes())
        return record["offset"], (self.root / f"{upload_id}.bin").read_bytes()


@pytest_asyncio.fixture
async def tus(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(tmp_path / "uploads")
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()
        await harness.http.aclose()
        harness.sock.close()


@pytest.fixture
def bid_file(tmp_path: Path) -> Iterator[tuple[Path, bytes]]:
    data = MAGIC + os.urandom(5 * MiB + 12345)
    path = tmp_path / "bid.bidenv"
    path.write_bytes(data)
    yield path, data


def tuspy_upload(tus: Harness, path: Path, *, url: str | None = None, chunks: int | None = None,
                 chunk_size: int = MiB, **kw: Any) -> tuple[str, int]:
    """Upload with tuspy (all of it, or ``chunks`` chunks); returns (url, offset)."""
    c = tus_client.TusClient(tus.endpoint, headers=dict(ALICE))
    with path.open("rb") as f:
        up = c.uploader(file_stream=f, url=url, chunk_size=chunk_size, **kw)
        if chunks is None:
            up.upload()
        else:
            for _ in range(chunks):
                up.upload_chunk()
        return str(up.url), int(up.offset)


# ---------------------------------------------------------------------- tuspy end to end
async def test_options_lists_version_extensions_and_limits(tus: Harness) -> None:
    r = await tus.http.options("/v1/tenders/t1/uploads/")
    assert r.status_code == 204
    assert r.headers["tus-version"] == "1.0.0" and r.headers["tus-resumable"] == "1.0.0"
    assert {"creation", "termination", "checksum", "expiration"} <= set(
        r.headers["tus-extension"].split(","))
    assert r.headers["tus-max-size"] == str(MAX_SIZE)
    assert {"sha1", "sha256"} <= set(r.headers["tus-checksum-algorithm"].split(","))


async def test_full_upload_with_tuspy(tus: Harness, bid_file: tuple[Path, bytes]) -> None:
    path, data = bid_file
    url, offset = await asyncio.to_thread(tuspy_upload, tus, path,
                                          metadata={"filename": "标书.bidenv"})
    assert offset == len(data) and tus.stored(url) == (len(data), data)
    assert [u.length for u in tus.hooks.completed] == [len(data)]
    assert tus.hooks.patches == 6  # one per 1 MiB chunk
    r = await tus.head(url)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert r.headers["upload-offset"] == r.headers["upload-length"] == str(len(data))
    assert r.headers["upload-receipt"] == hashlib.sha256(data).hexdigest()
    key, value = r.headers["upload-metadata"].split(" ")
    assert key == "filename" and base64.b64decode(value).decode() == "标书.bidenv"


async def test_tuspy_with_sha1_checksums(tus: Harness, bid_file: tuple[Path, bytes]) -> None:
    path, data = bid_file
    url, _ = await asyncio.to_thread(tuspy_upload, tus, path, upload_checksum=True)
    assert tus.stored(url) == (len(data), data)


async def test_client_dropped_then_resumed(tus: Harness, bid_file: tuple[Path, bytes]) -> None:
    path, data = bid_file
    url, offset = await asyncio.to_thread(tuspy_upload, tus, path, chunks=2)
    assert offset == 2 * MiB and tus.stored(url) == (2 * MiB, data[:2 * MiB])
    assert not tus.hooks.completed
    # A new uploader knows only the url: it asks the server for the offset (HEAD).
    url2, offset = await asyncio.to_thread(tuspy_upload, tus, path, url=url)
    assert url2 == url and offset == len(data)
    assert tus.stored(url) == (len(data), data) and len(tus.hooks.completed) == 1


async def _raw_patch(tus: Harness, url: str, offset: int, total: int, body: bytes
                     ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A PATCH announcing ``total`` bytes that sends only ``body`` (connection left open)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", tus.port)
    path = url.removeprefix(tus.base)
    writer.write(f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n"
                 f"Authorization: Bearer tok-alice\r\nUpload-Offset: {offset}\r\n"
                 f"Content-Type: application/offset+octet-stream\r\n"
                 f"Content-Length: {total}\r\n\r\n".encode() + body)
    await writer.drain()
    return reader, writer


async def _settled_offset(tus: Harness, url: str, not_below: int = 1) -> int:
    for _ in range(200):
        offset = int((await tus.head(url)).headers["upload-offset"])
        if offset >= not_below:
            return offset
        await asyncio.sleep(0.02)
    raise AssertionError("the offset never moved")


async def test_raw_patch_cut_mid_body_keeps_what_arrived(
        tus: Harness, bid_file: tuple[Path, bytes]) -> None:
    path, data = bid_file
    url = await tus.create(len(data))
    sent = 3 * MiB + 777
    _, writer = await _raw_patch(tus, url, 0, len(data), data[:sent])
    await asyncio.sleep(0.3)
    writer.close()  # cut off mid-body
    await writer.wait_closed()
    offset = await _settled_offset(tus, url)
    assert sent // 2 <= offset <= sent
    assert tus.stored(url) == (offset, data[:offset])
    _, offset = await asyncio.to_thread(tuspy_upload, tus, path, url=url)
    assert offset == len(data) and tus.stored(url) == (len(data), data)
    assert len(tus.hooks.completed) == 1


async def test_restart_mid_upload_then_resume(tus: Harness,
                                              bid_file: tuple[Path, bytes]) -> None:
    path, data = bid_file
    url, _ = await asyncio.to_thread(tuspy_upload, tus, path, chunks=3)
    # What a crash in the middle of a PATCH leaves: bytes past the recorded offset.
    with (tus.root / (url.rsplit("/", 1)[1] + ".bin")).open("ab") as f:
        f.write(b"unacknowledged tail" * MiB)  # longer than the rest of the file
    await tus.restart()
    assert (await tus.head(url)).headers["upload-offset"] == str(3 * MiB)
    _, offset = await asyncio.to_thread(tuspy_upload, tus, path, url=url)
    assert offset == len(data) and tus.stored(url) == (len(data), data)


async def test_hook_failure_after_last_byte_is_finished_by_head(
        tus: Harness, bid_file: tuple[Path, bytes]) -> None:
    data = bid_file[1]
    url = await tus.create(len(data))
    tus.hooks.fail_once = True
    assert (await tus.patch(url, 0, data)).status_code == 500
    assert tus.stored(url) == (len(data), data) and not tus.hooks.completed
    r = await tus.head(url)
    assert r.headers["upload-receipt"] == hashlib.sha256(data).hexdigest()
    assert len(tus.hooks.completed) == 1
    # Repeating the final PATCH (its answer was lost) is harmless and repeats the receipt.
    r = await tus.patch(url, len(data), b"")
    assert r.status_code == 204 and r.headers["upload-receipt"]
    assert len(tus.hooks.completed) == 1


# ---------------------------------------------------------------------- refusals
async def test_wrong_offset_is_409_and_changes_nothing(tus: Harness) -> None:
    url = await tus.create(100)
    assert (await tus.patch(url, 0, b"a" * 10)).status_code == 204
    for offset in (0, 5, 11, 100):
        r = await tus.patch(url, offset, b"b" * 10)
        assert r.status_code == 409 and r.json()["error"]["code"] == "offset_mismatch"
        assert r.headers["tus-resumable"] == "1.0.0"
        assert tus.stored(url) == (10, b"a" * 10)


async def test_too_large_is_413_and_writes_nothing(tus: Harness) -> None:
    r = await tus.http.post("/v1/tenders/t1/uploads/",
                            headers={**TUS, **ALICE, "Upload-Length": str(MAX_SIZE + 1)})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    assert list(tus.root.iterdir()) == []
    url = await tus.create(100)
    head = MAGIC + b"a" * 52
    assert (await tus.patch(url, 0, head)).status_code == 204
    r = await tus.patch(url, 60, b"b" * 41)
    assert r.status_code == 413 and tus.stored(url) == (60, head)

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: found while streaming
        for _ in range(5):
            yield b"c" * 10

    r = await tus.patch(url, 60, chunked())
    assert r.status_code == 413 and tus.stored(url) == (60, head)
    r = await tus.patch(url, 60, b"d" * 40)
    assert r.status_code == 204 and tus.stored(url) == (100, head + b"d" * 40)


async def test_tus_resumable_is_required(tus: Harness) -> None:
    url = await tus.create(10)
    for request in (tus.http.build_request("POST", "/v1/tenders/t1/uploads/",
                                           headers={**ALICE, "Upload-Length": "10"}),
                    tus.http.build_request("HEAD", url, headers=ALICE),
                    tus.http.build_request("PATCH", url, content=b"x", headers={
                        **ALICE, "Upload-Offset": "0",
                        "Content-Type": "application/offset+octet-stream"}),
                    tus.http.build_request("DELETE", url, headers={**ALICE,
                                                                   "Tus-Resumable": "0.2.2"})):
        r = await tus.http.send(request)
        assert r.status_code == 412, request
        assert r.headers["tus-version"] == "1.0.0" and r.headers["tus-resumable"] == "1.0.0"
    assert tus.stored(url) == (0, b"") and len(list(tus.root.glob("*.json"))) == 1


async def test_other_owner_scope_or_id_gets_404(tus: Harness) -> None:
    url = await tus.create(20)
    assert (await tus.patch(url, 0, b"a" * 5)).status_code == 204
    upload_id = url.rsplit("/", 1)[1]
    other_scope = url.replace("/t1/", "/t2/")
    other_id = url.replace(upload_id, ("B" if upload_id[0] != "B" else "C") + upload_id[1:])
    for who, target in ((BOB, url), (ALICE, other_scope), (ALICE, other_id),
                        (ALICE, url + "x"), (ALICE, url.replace(upload_id, "%2E%2E"))):
        assert (await tus.head(target, who)).status_code == 404
        r = await tus.http.patch(target, content=b"b", headers={
            **TUS, **who, "Upload-Offset": "5",
            "Content-Type": "application/offset+octet-stream"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_upload"
        r = await tus.http.delete(target, headers={**TUS, **who})
        assert r.status_code == 404
    assert (await tus.head(url, {})).status_code == 401
    assert tus.stored(url) == (5, b"a" * 5)


async def test_delete_terminates(tus: Harness) -> None:
    url = await tus.create(20)
    assert (await tus.patch(url, 0, b"a" * 5)).status_code == 204
    r = await tus.http.delete(url, headers={**TUS, **ALICE})
    assert r.status_code == 204 and r.headers["tus-resumable"] == "1.0.0"
    assert (await tus.head(url)).status_code == 404
    assert list(tus.root.iterdir()) == []
    done = await tus.create(len(MAGIC))
    assert (await tus.patch(done, 0, MAGIC)).status_code == 204
    r = await tus.http.delete(done, headers={**TUS, **ALICE})
    assert r.status_code == 409 and r.json()["error"]["code"] == "upload_complete"


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
async def test_checksum_good_and_bad(tus: Harness, algorithm: str) -> None:
    url = await tus.create(100)

    def checksum(body: bytes) -> str:
        return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, body).digest()).decode()}"

    r = await tus.patch(url, 0, b"a" * 40, **{"Upload-Checksum": checksum(b"a" * 40)})
    assert r.status_code == 204 and r.headers["upload-offset"] == "40"
    r = await tus.patch(url, 40, b"b" * 40, **{"Upload-Checksum": checksum(b"x" * 40)})
    assert r.status_code == 460 and r.json()["error"]["code"] == "checksum_mismatch"
    assert tus.stored(url) == (40, b"a" * 40)
    r = await tus.patch(url, 40, b"b" * 40, **{"Upload-Checksum": "crc32 AAAA"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported_checksum"
    r = await tus.patch(url, 40, b"b" * 40, **{"Upload-Checksum": f"{algorithm} !!"})
    assert r.status_code == 400 and tus.stored(url) == (40, b"a" * 40)


async def test_on_complete_refusal_deletes_the_upload(tus: Harness, tmp_path: Path) -> None:
    plain = tmp_path / "plain.pdf"
    plain.write_bytes(b"%PDF-1.7 " + os.urandom(2 * MiB))
    with pytest.raises(TusUploadFailed) as caught:
        await asyncio.to_thread(tuspy_upload, tus, plain)
    assert caught.value.status_code == 422
    assert json.loads(caught.value.response_content)["error"]["code"] == "not_an_envelope"
    assert list(tus.root.iterdir()) == [] and not tus.hooks.completed


async def test_on_create_and_on_patch_refusals(tus: Harness) -> None:
    r = await tus.http.post("/v1/tenders/closed/uploads",
                            headers={**TUS, **ALICE, "Upload-Length": "10"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "deadline_passed"
    assert list(tus.root.iterdir()) == []
    url = await tus.create(20)
    assert (await tus.patch(url, 0, b"a" * 5)).status_code == 204
    tus.hooks.closed.add("t1")
    r = await tus.patch(url, 5, b"b" * 5)
    assert r.status_code == 403 and tus.stored(url) == (5, b"a" * 5)


@pytest.mark.parametrize("headers", [
    {"Upload-Length": "abc"}, {"Upload-Length": "-1"}, {"Upload-Length": "1e3"}, {},
    {"Upload-Length": "10", "Upload-Metadata": "name !!notbase64"},
    {"Upload-Length": "10", "Upload-Metadata": "name YQ==,name Yg=="},
    {"Upload-Length": "10", "Upload-Metadata": "name /w=="},  # not UTF-8
    {"Upload-Defer-Length": "1"},
])
async def test_malformed_creation_is_400(tus: Harness, headers: dict[str, str]) -> None:
    r = await tus.http.post("/v1/tenders/t1/uploads/", headers={**TUS, **ALICE, **headers})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    assert list(tus.root.iterdir()) == []


async def test_malformed_patch_changes_nothing(tus: Harness) -> None:
    url = await tus.create(20)
    r = await tus.http.patch(url, content=b"a", headers={
        **TUS, **ALICE, "Content-Type": "application/offset+octet-stream"})
    assert r.status_code == 400  # no Upload-Offset
    r = await tus.patch(url, 0, b"a", **{"Upload-Offset": "-1"})
    assert r.status_code == 400
    r = await tus.patch(url, 0, b"a", **{"Content-Type": "application/octet-stream"})
    assert r.status_code == 415
    assert tus.stored(url) == (0, b"")


async def test_second_concurrent_patch_is_refused(tus: Harness) -> None:
    url = await tus.create(2 * MiB)
    data = MAGIC + os.urandom(2 * MiB - len(MAGIC))
    reader, writer = await _raw_patch(tus, url, 0, 2 * MiB, data[:MiB])
    try:
        await asyncio.sleep(0.2)
        r = await tus.patch(url, 0, b"b" * 10)
        assert r.status_code == 409 and r.json()["error"]["code"] == "upload_busy"
        writer.write(data[MiB:])
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 204") and b"upload-offset: 2097152" in head.lower()
    finally:
        writer.close()
        await writer.wait_closed()
    assert tus.stored(url) == (2 * MiB, data)


async def test_creation_with_upload(tus: Harness) -> None:
    r = await tus.http.post("/v1/tenders/t1/uploads/", content=MAGIC + b"1234", headers={
        **TUS, **ALICE, "Upload-Length": "20",
        "Content-Type": "application/offset+octet-stream"})
    assert r.status_code == 201 and r.headers["upload-offset"] == "12"
    url = tus.base + r.headers["location"]
    assert tus.stored(url) == (12, MAGIC + b"1234")


async def test_unfinished_uploads_expire(tus: Harness) -> None:
    first, second = await tus.create(20), await tus.create(20)
    r = await tus.head(first)
    assert r.status_code == 200 and r.headers["upload-expires"].endswith(" GMT")
    tus.clock.now += 3000_000
    later = await tus.create(20)
    tus.clock.now += 600_000  # first and second are an hour old: expired
    assert (await tus.head(first)).status_code == 410
    assert (await tus.head(first)).status_code == 404
    assert await tus.tus.purge_expired() == 1  # second
    assert (await tus.head(second)).status_code == 404
    assert (await tus.head(later)).status_code == 200
    assert len(list(tus.root.iterdir())) == 2  # later's record and data
