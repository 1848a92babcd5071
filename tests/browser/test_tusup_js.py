"""The resumable uploader (clients/web/tusup.js) in Chromium against the real tus server.

A small Starlette app serves the pages and a :class:`server.tus.TusServer` whose hooks check
the envelope like the platform does and sign a receipt; the browser reaches it through a
proxy that can cut every connection in the middle of a PATCH.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from opening import envelope, receipts
from opening.crypto_errors import EnvelopeError
from server.app import web_dir
from server.config import Settings
from server.net import build, port_of
from server.tus import TusRefused, TusServer, Upload
from tests.browser.proxy import CuttingProxy
from tests.browser.test_sealing_js import SUMMARY, MiB, b64u, load_pkcs8, run, unb64u

pytestmark = pytest.mark.browser


TOKEN = "tok-b_07"


class Hooks:
    """A tender of one bidder: the token names it; a finished upload must be its envelope."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.metadata: dict[str, str] = {}
        self.received: bytes | None = None

    async def authorize(self, request: Any, scope: str) -> str:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            raise TusRefused(401, "unauthorized", "a token is required")
        return "b_07"

    async def on_create(self, scope: str, owner: str, length: int,
                        metadata: dict[str, str]) -> None:
        self.metadata = metadata

    async def on_patch(self, upload: Upload) -> None:
        return None

    async def on_complete(self, upload: Upload) -> dict[str, str]:
        data = upload.path.read_bytes()
        try:
            envelope.check_structure(io.BytesIO(data), tender=upload.scope, bidder=upload.owner)
        except EnvelopeError as exc:
            raise TusRefused(422, exc.code, exc.message) from None
        self.received = data
        receipt = receipts.issue(self.key, tender=upload.scope, bidder=upload.owner,
                                 sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                                 at=1_790_000_000_000, upload=upload.id)
        return {"Upload-Receipt": b64u(json.dumps(receipt, ensure_ascii=False).encode())}


@dataclass
class TusApp:
    hooks: Hooks
    proxy: CuttingProxy
    page: Any


@pytest_asyncio.fixture
async def tus(tmp_path: Path, pages: Any) -> AsyncIterator[TusApp]:
    hooks = Hooks()
    uploads = TusServer(tmp_path / "uploads", hooks)
    app = Starlette(routes=[*uploads.routes("/t/{tender_id}/uploads"),
                            Route("/favicon.ico", lambda request: Response(status_code=204)),
                            Mount("/static", StaticFiles(directory=web_dir()))])
    server, sock = build(app, Settings(host="127.0.0.1", port=0))
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    proxy = CuttingProxy()
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        await proxy.start(port_of(sock))
        # Refusals the tests provoke: 401 without a token, 409 while the server still holds
        # a PATCH that was cut, 422 for a file that is not an envelope.
        tracked = await pages.open(f"{proxy.base_url}/static/tusup.js",
                                   allow=[r"status of (401|409|422) "])
        yield TusApp(hooks, proxy, tracked.page)
    finally:
        await proxy.close()
        await uploads.close()
        server.should_exit = True
        await task


UPLOAD = """
  const me = await S.generateKey();
  const sealer = await S.createSealer({publicRaw: me.publicRaw, tender: 'T-2025.01',
    bidder: 'b_07', summary: arg.summary, document: new Blob([unb64(arg.doc)])});
  const states = [], progress = [];
  let stopped = false;
  const up = new T.Upload({endpoint: '/t/T-2025.01/uploads', token: arg.token,
    length: sealer.length, metadata: {filename: '投标文件 bid.pdf', tender: 'T-2025.01'},
    bytesAt: sealer.sealedRange, chunkSize: S.CHUNK, retryDelays: [50, 100, 200, 400, 800, 1600],
    onState: (s) => states.push(s),
    onProgress: (sent) => {
      progress.push(sent);
      if (arg.stopAfterFirst && !stopped) { stopped = true; up.abort(); }
    }});
  const first = await code(() => up.start());
  const stoppedAt = up.offset;
  const result = first === 'ok' ? null : await up.resume();
  return {first, stoppedAt, result: result ?? {url: up.url, receipt: up.receipt}, states,
          progress, retries: up.retries, length: sealer.length,
          envelope: b64(await collect(sealer)), sk: await exportPkcs8(me.privateKey)};
"""


def check_upload(tus: TusApp, got: dict[str, Any], document: bytes) -> None:
    """The server holds exactly the envelope the page sealed, and it opens to the bid."""
    data = tus.hooks.received
    assert data is not None and data == unb64u(got["envelope"]) and len(data) == got["length"]
    header = envelope.parse_header(data)
    out = io.BytesIO()
    summary = envelope.open_envelope(io.BytesIO(data), envelope.unwrap(header,
                                     load_pkcs8(got["sk"])), out)
    assert (summary.to_json(), out.getvalue()) == (SUMMARY, document)
    receipt = got["result"]["receipt"]
    receipts.verify(receipt, tus.hooks.key.public_key())
    assert receipt["sha256"] == hashlib.sha256(data).hexdigest()
    assert got["result"]["url"].startswith(f"{tus.proxy.base_url}/t/T-2025.01/uploads/")
    assert tus.hooks.metadata == {"filename": "投标文件 bid.pdf", "tender": "T-2025.01"}
    assert got["progress"] == sorted(got["progress"]) and got["progress"][-1] == got["length"]


async def test_upload_survives_a_cut_mid_patch(tus: TusApp) -> None:
    document = os.urandom(3 * MiB)
    tus.proxy.cut_after(3 * MiB // 2)  # half-way through the second 1 MiB PATCH
    got = await run(tus.page, UPLOAD, {"summary": SUMMARY, "doc": b64u(document),
                                       "token": TOKEN, "stopAfterFirst": False})
    assert tus.proxy.cuts == 1
    assert got["first"] == "ok" and got["retries"] >= 1 and "retrying" in got["states"]
    check_upload(tus, got, document)


async def test_upload_aborts_and_resumes(tus: TusApp) -> None:
    document = os.urandom(3 * MiB)
    got = await run(tus.page, UPLOAD, {"summary": SUMMARY, "doc": b64u(document),
                                       "token": TOKEN, "stopAfterFirst": True})
    assert got["first"] == "aborted" and 0 < got["stoppedAt"] < got["length"]
    assert got["states"].count("aborted") == 1 and got["states"][-1] == "done"
    assert got["retries"] == 0
    check_upload(tus, got, document)


async def test_upload_refusals_are_not_retried(tus: TusApp) -> None:
    got = await run(tus.page, """
      const upload = (token, bytes) => new T.Upload({endpoint: '/t/T1/uploads', token,
        length: bytes.length, bytesAt: async (at, n) => bytes.slice(at, at + n),
        retryDelays: [50, 50]});
      const plain = upload(arg.token, new TextEncoder().encode('%PDF-1.7 not sealed'));
      const anonymous = upload(null, new Uint8Array(10));
      const lying = new T.Upload({endpoint: '/t/T1/uploads', token: arg.token, length: 10,
        bytesAt: async () => new Uint8Array(3)});
      return [await code(() => plain.start()), plain.retries,
              await code(() => anonymous.start()), anonymous.retries,
              await code(() => lying.start())];
    """, {"token": TOKEN})
    assert got == ["not_an_envelope", 0, "unauthorized", 0, "bad_source"]
