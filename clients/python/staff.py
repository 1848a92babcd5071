"""A small client of the HTTP API, for staff tools, the demo, tests and load tests.

    async with StaffClient("http://127.0.0.1:8000", staff_token) as staff:
        lot = await staff.create_lot(title="...", preset="suzhou", start_price=..., ...)
        bidder = await staff.qualify(lot["lot_id"], "公司A", "BANK-REF-1")

Refusals raise :class:`ApiError` with the server's ``code``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.body = status, code, message, body


class StaffClient:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout)

    async def __aenter__(self) -> StaffClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.http.request(method, path, json=body)
        data = response.json()
        if response.status_code >= 400:
            error = data.get("error", {})
            raise ApiError(response.status_code, error.get("code", "?"),
                           error.get("message", ""), data)
        return data

    async def create_lot(self, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("POST", "/api/lots", fields)
        return result

    async def qualify(self, lot_id: str, bidder: str, deposit_ref: str,
                      token_ttl: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"bidder": bidder, "deposit_ref": deposit_ref}
        if token_ttl is not None:
            body["token_ttl"] = token_ttl
        result: dict[str, Any] = await self.call("POST", f"/api/lots/{quote(lot_id)}/bidders",
                                                 body)
        return result

    async def token(self, lot_id: str, bidder: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "POST", f"/api/lots/{quote(lot_id)}/bidders/{quote(bidder, safe='')}/token", {})
        return result

    async def lot(self, lot_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("GET", f"/api/lots/{quote(lot_id)}")
        return result

    async def lots(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self.call("GET", "/api/lots"))["lots"]
        return result

    async def events(self, lot_id: str, since: int = 0, limit: int = 10_000) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "GET", f"/api/lots/{quote(lot_id)}/events?since={since}&limit={limit}")
        return result

    async def result(self, lot_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("GET", f"/api/lots/{quote(lot_id)}/result")
        return result

    async def set_reserve(self, lot_id: str, amount: int) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("PUT", f"/api/lots/{quote(lot_id)}/reserve",
                                                 {"amount": amount})
        return result

    async def freeze(self, lot_id: str, reason: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("POST", f"/api/lots/{quote(lot_id)}/freeze",
                                                 {"reason": reason})
        return result

    async def resume(self, lot_id: str, reason: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("POST", f"/api/lots/{quote(lot_id)}/resume",
                                                 {"reason": reason})
        return result

    async def change_increment(self, lot_id: str, amount: int, reason: str,
                               final: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "POST", f"/api/lots/{quote(lot_id)}/increment",
            {"amount": amount, "reason": reason, "final": final})
        return result
