"""Tender test helpers that speak the domain: a tender with bidders who seal and upload.

Bidders make their keys, seal with ``opening.envelope`` and upload with the third-party
tus client ``tuspy`` (sync, so it runs in a thread: the server shares the event loop).
"""

from __future__ import annotations

import asyncio
import io
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tusclient import client as tus

from opening.crypto_errors import b64u, unb64u
from opening.envelope import seal, unwrap
from opening.keys import generate, public_bytes
from server.clock import now_ms

SECOND = 1000


@dataclass
class Bidder:
    bidder: str
    token: str
    key: Any = field(default_factory=generate)
    plaintext: bytes = b""
    envelope: bytes = b""
    price: str = ""
    upload_url: str | None = None
    receipt: dict[str, Any] | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


class TenderRun:
    """A tender on a running server, driven over HTTP like its users would."""

    def __init__(self, base_url: str, staff_token: str, tender_id: str | None = None) -> None:
        self.base_url = base_url
        self.staff = {"authorization": f"Bearer {staff_token}"}
        self.tender_id = tender_id or f"t-{secrets.token_hex(3)}"
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30)
        self.bidders: dict[str, Bidder] = {}

    async def close(self) -> None:
        await self.http.aclose()

    @property
    def path(self) -> str:
        return f"/api/tenders/{self.tender_id}"

    async def create(self, deadline_in: int = 4 * SECOND, **terms: Any) -> dict[str, Any]:
        body = {"tender_id": self.tender_id, "title": "测试标段 test section",
                "deadline": now_ms() + deadline_in, **terms}
        r = await self.http.post("/api/tenders", json=body, headers=self.staff)
        assert r.status_code == 201, r.text
        r = await self.http.post(self.path + "/publish", headers=self.staff)
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def invite(self, bidder: str, register: bool = True) -> Bidder:
        r = await self.http.post(self.path + "/bidders", json={"bidder": bidder},
                                 headers=self.staff)
        assert r.status_code == 201, r.text
        b = Bidder(bidder, r.json()["token"])
        self.bidders[bidder] = b
        if register:
            r = await self.http.put(self.path + "/key", headers=b.auth, json={
                "name": f"{bidder} 建设有限公司", "public_key": b64u(public_bytes(b.key))})
            assert r.status_code == 200, r.text
        return b

    def sealed(self, b: Bidder, price: str, document: bytes) -> bytes:
        out = io.BytesIO()
        seal(io.BytesIO(document), out, public_key=public_bytes(b.key), tender=self.tender_id,
             bidder=b.bidder, summary={"price": price, "duration_days": 180,
                                       "quality": "合格", "manager": "张工"})
        b.plaintext, b.price, b.envelope = document, price, out.getvalue()
        return b.envelope

    def _uploader(self, b: Bidder, data: bytes, chunk_size: int) -> Any:
        c = tus.TusClient(f"{self.base_url}{self.path}/uploads/", headers=b.auth)
        return c.uploader(file_stream=io.BytesIO(data), chunk_size=chunk_size,
                          metadata={"filename": f"{b.bidder}.bidenv"}, retries=0)

    async def upload(self, b: Bidder, data: bytes | None = None, chunk_size: int = 1 << 20
                     ) -> dict[str, Any]:
        """Upload ``data`` (default: the bidder's envelope) with tuspy; return the receipt."""
        payload = b.envelope if data is None else data

        def run() -> Any:
            up = self._uploader(b, payload, chunk_size)
            up.upload()
            return up

        up = await asyncio.to_thread(run)
        b.upload_url = up.url
        receipt = up.request.response_headers.get("upload-receipt") if up.request else None
        b.receipt = json.loads(unb64u(receipt)) if receipt else None
        return b.receipt or {}

    async def wait_deadline(self) -> None:
        view = (await self.http.get(self.path)).json()
        deadline = view["terms"]["deadline"]
        while now_ms() < deadline + 50:
            await asyncio.sleep(min(0.2, max(0.01, (deadline + 50 - now_ms()) / 1000)))

    async def staff_post(self, action: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.post(f"{self.path}/{action}", json=body or {}, headers=self.staff)

    async def post(self, b: Bidder, action: str, body: dict[str, Any] | None = None
                   ) -> httpx.Response:
        return await self.http.post(f"{self.path}/{action}", json=body or {}, headers=b.auth)

    async def release(self, b: Bidder, file_key: bytes | None = None) -> httpx.Response:
        """What the bidder's page does: fetch the header, unwrap locally, post the file key."""
        if file_key is None:
            from opening.envelope import parse_header

            r = await self.http.get(self.path + "/header", headers=b.auth)
            assert r.status_code == 200, r.text
            file_key = unwrap(parse_header(r.content), b.key)
        return await self.post(b, "release", {"file_key": b64u(file_key)})

    async def view(self, b: Bidder | None = None, staff: bool = False) -> dict[str, Any]:
        headers = self.staff if staff else (b.auth if b else {})
        r = await self.http.get(self.path, headers=headers)
        assert r.status_code == 200, r.text
        return dict(r.json())


def data_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def find_plaintext(haystack: bytes, needles: dict[bytes, str], width: int) -> list[str]:
    """Names of the plaintexts any ``width``-byte window of which appears in ``haystack``."""
    found = []
    for start in range(0, max(0, len(haystack) - width + 1)):
        name = needles.get(haystack[start:start + width])
        if name is not None:
            found.append(name)
    return found
