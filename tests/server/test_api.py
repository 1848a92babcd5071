"""The HTTP API: staff operations, public views, the OpenAPI document and every refusal."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from clients.python import ApiError, StaffClient
from server.clock import now_ms
from server.config import Settings
from server.openapi import OPS
from tests.conftest import Running, lot_fields, start_server, stop_server


async def refused(call: Any, status: int, code: str) -> dict[str, Any]:
    with pytest.raises(ApiError) as info:
        await call
    assert (info.value.status, info.value.code) == (status, code), info.value
    assert info.value.message
    body: dict[str, Any] = info.value.body
    return body


async def test_create_a_lot_from_a_preset_with_overrides(staff: StaffClient) -> None:
    lot = await staff.create_lot(**lot_fields("suzhou", lot_id="SZ-2026-18",
                                              final_increment=50_000, countdown=120_000))
    assert lot["lot_id"] == "SZ-2026-18" and lot["preset"] == "suzhou"
    assert lot["multiple_rule"] is True and lot["final_increment"] == 50_000
    assert lot["countdown"] == 120_000 and lot["phase"] == "listing"
    assert lot["reserve"] is None  # staff see the (unset) reserve
    presets = await staff.call("GET", "/api/presets")
    assert [p["name"] for p in presets["presets"]] == ["suzhou", "fujian", "qinzhou", "mining"]


@pytest.mark.parametrize(("fields", "status", "code"), [
    ({"preset": "atlantis"}, 422, "invalid_terms"),
    ({"listing_end": 1}, 422, "invalid_terms"),
    ({"start_price": 0}, 422, "invalid_amount"),
    ({"start_price": 1.5}, 422, "invalid_amount"),
    ({"deposit": "200000"}, 422, "invalid_amount"),
    ({"countdown": 5}, 422, "invalid_terms"),
    ({"colour": "red"}, 422, "bad_message"),
    ({"lot_id": "../etc"}, 422, "bad_message"),
    ({"price_cap": 2_000_000}, 422, "invalid_terms"),
    ({"final_mode": "sideways"}, 422, "invalid_terms"),
])
async def test_invalid_lots_are_refused_and_nothing_is_created(
        staff: StaffClient, fields: dict[str, Any], status: int, code: str) -> None:
    await refused(staff.create_lot(**lot_fields(**fields)), status, code)
    assert await staff.lots() == []


async def test_a_lot_id_is_taken_once(staff: StaffClient) -> None:
    await staff.create_lot(**lot_fields(lot_id="ONE"))
    await refused(staff.create_lot(**lot_fields(lot_id="ONE", title="again")), 409,
                  "lot_exists")
    assert [lot["title"] for lot in await staff.lots()] == ["测试地块 test parcel"]


async def test_staff_calls_need_the_staff_token(server: Running, staff: StaffClient) -> None:
    lot = await staff.create_lot(**lot_fields())
    bidder = await staff.qualify(lot["lot_id"], "公司A", "R")
    async with StaffClient(server.base_url) as anonymous:
        await refused(anonymous.create_lot(**lot_fields()), 401, "unauthorized")
        await refused(anonymous.qualify(lot["lot_id"], "x", "y"), 401, "unauthorized")
    async with StaffClient(server.base_url, bidder["token"]) as as_bidder:
        await refused(as_bidder.freeze(lot["lot_id"], "x"), 403, "forbidden")
    async with StaffClient(server.base_url, server.staff_token[:-2] + "xx") as forged:
        await refused(forged.set_reserve(lot["lot_id"], 2_000_000), 401, "bad_token")
    assert (await staff.lot(lot["lot_id"]))["frozen"] is False
    assert len(await staff.lots()) == 1


async def test_qualify_returns_a_token_and_paddle_once(staff: StaffClient) -> None:
    lot = await staff.create_lot(**lot_fields())
    first = await staff.qualify(lot["lot_id"], "公司A", "BANK-1")
    assert 1000 <= first["paddle"] <= 9999 and first["token"].startswith("bh1.")
    assert first["hall_url"] == f"/hall/{lot['lot_id']}#token={first['token']}"
    await refused(staff.qualify(lot["lot_id"], "公司A", "BANK-2"), 409, "already_qualified")
    await refused(staff.qualify("no-lot", "公司A", "BANK-2"), 404, "unknown_lot")
    again = await staff.token(lot["lot_id"], "公司A")
    assert again["paddle"] == first["paddle"]
    await refused(staff.token(lot["lot_id"], "nobody"), 409, "not_qualified")
    bidders = await staff.call("GET", f"/api/lots/{lot['lot_id']}/bidders")
    assert [(b["bidder"], b["deposit_ref"]) for b in bidders] == [("公司A", "BANK-1")]


async def test_reserve_increment_freeze_resume(server: Running, staff: StaffClient) -> None:
    lot = await staff.create_lot(**lot_fields(listing_end=now_ms() + 3 * 3600_000))
    lot_id = lot["lot_id"]
    assert (await staff.set_reserve(lot_id, 1_500_000))["ok"]
    await refused(staff.set_reserve(lot_id, 10), 422, "invalid_amount")
    assert (await staff.lot(lot_id))["reserve"] == 1_500_000
    async with StaffClient(server.base_url) as anyone:
        assert "reserve" not in await anyone.lot(lot_id)
    await staff.change_increment(lot_id, 20_000, "报价密集")
    assert (await staff.lot(lot_id))["increment"] == 20_000
    await staff.freeze(lot_id, "系统故障")
    view = await staff.lot(lot_id)
    assert view["frozen"] and view["frozen_reason"] == "系统故障"
    await refused(staff.freeze(lot_id, "again"), 409, "frozen")
    await staff.resume(lot_id, "已修复")
    await refused(staff.resume(lot_id, "again"), 409, "not_frozen")
    await refused(staff.call("POST", f"/api/lots/{lot_id}/freeze", {"reason": ""}), 422,
                  "bad_message")
    kinds = [e["kind"] for e in (await staff.events(lot_id))["events"]]
    assert kinds[-4:] == ["reserve_set", "increment_changed", "frozen", "resumed"]


async def test_result_names_the_winner_and_lists_refunds_for_staff(
        server: Running, staff: StaffClient) -> None:
    now = now_ms()
    lot = await staff.create_lot(**lot_fields(listing_start=now - 1000, listing_end=now + 600,
                                              countdown=1000))
    lot_id = lot["lot_id"]
    a = await staff.qualify(lot_id, "公司A", "BANK-A")
    await staff.qualify(lot_id, "公司B", "BANK-B")
    async with server.live(a["token"]) as client:
        assert (await client.bid(lot_id, 1_000_000))["type"] == "ack"
    for _ in range(50):
        if (await staff.lot(lot_id))["phase"] == "sold":
            break
        await asyncio.sleep(0.1)
    result = await staff.result(lot_id)
    assert result["outcome"] == "sold" and result["winner"] == "公司A"
    assert result["price"] == 1_000_000 and result["paddle"] == a["paddle"]
    assert result["deposit_applied"] == 200_000
    assert [r["bidder"] for r in result["refunds"]] == ["公司B"]
    async with StaffClient(server.base_url) as anyone:
        public = await anyone.result(lot_id)
    assert public["winner"] == "公司A" and "refunds" not in public
    bids = await staff.call("GET", f"/api/lots/{lot_id}/bids")
    assert bids["bids"] == [{"at": bids["bids"][0]["at"], "paddle": a["paddle"],
                             "amount": 1_000_000}]


async def test_malformed_bodies_change_nothing(server: Running, staff: StaffClient) -> None:
    lot = await staff.create_lot(**lot_fields())
    url = f"{server.base_url}/api/lots/{lot['lot_id']}/bidders"
    headers = {"authorization": f"Bearer {server.staff_token}"}
    async with httpx.AsyncClient() as http:
        r = await http.post(url, content=b"{nope", headers=headers)
        assert (r.status_code, r.json()["error"]["code"]) == (400, "bad_json")
        r = await http.post(url, content=b"[]", headers=headers)
        assert (r.status_code, r.json()["error"]["code"]) == (422, "bad_message")
        r = await http.post(url, content=b'{"bidder": "x", "deposit_ref": "' + b"y" * 70_000
                            + b'"}', headers=headers)
        assert (r.status_code, r.json()["error"]["code"]) == (413, "frame_too_large")
        r = await http.get(f"{server.base_url}/api/nothing-here")
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
        r = await http.get(f"{server.base_url}/api/lots/{lot['lot_id']}/events?since=-1")
        assert (r.status_code, r.json()["error"]["code"]) == (422, "bad_message")
    assert await staff.call("GET", f"/api/lots/{lot['lot_id']}/bidders") == []


async def test_openapi_document_covers_every_operation(server: Running) -> None:
    async with httpx.AsyncClient() as http:
        doc = (await http.get(f"{server.base_url}/openapi.json")).json()
        assert doc["openapi"].startswith("3.1")
        for op in OPS:
            item = doc["paths"][op.path][op.method.lower()]
            assert str(op.status) in item["responses"]
            assert ("requestBody" in item) == (op.body is not None)
        refs = set(re.findall(r'"#/components/schemas/([^"]+)"', str(doc).replace("'", '"')))
        assert refs <= set(doc["components"]["schemas"]), refs - set(doc["components"]["schemas"])
        assert doc["x-error-codes"]["too_low"]["status"] == 409
        assert doc["x-error-codes"]["unauthorized"]["status"] == 401
        routes = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
        assert routes == {(op.method, op.path) for op in OPS}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server.cli", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def test_staff_token_is_printed_again_and_matches_the_server(tmp_path: Path) -> None:
    first = cli("staff-token", "--data-dir", str(tmp_path))
    second = cli("staff-token", "--data-dir", str(tmp_path))
    assert first.returncode == 0 and first.stdout == second.stdout
    assert first.stdout.startswith("bh1.")
    assert cli("version").stdout.startswith("bidhall ")


def test_a_bad_setting_is_named(tmp_path: Path) -> None:
    import os

    bad = cli("staff-token", "--data-dir", str(tmp_path),
              env={**os.environ, "BIDHALL_PORT": "eighty"})
    assert bad.returncode == 2 and "BIDHALL_PORT" in bad.stderr
    bad = cli("staff-token", env={**os.environ, "BIDHALL_DATABASE_URL": "mysql://x"})
    assert bad.returncode == 2 and "BIDHALL_DATABASE_URL" in bad.stderr


async def test_a_countdown_that_ran_out_while_the_server_was_down_restarts(
        settings: Settings) -> None:
    running = await start_server(settings)
    now = now_ms()
    async with running.staff() as staff:
        lot = await staff.create_lot(**lot_fields(listing_start=now - 1000,
                                                  listing_end=now + 400, countdown=2000))
        a = await staff.qualify(lot["lot_id"], "公司A", "R")
        async with running.live(a["token"]) as client:
            assert (await client.bid(lot["lot_id"], 1_000_000))["type"] == "ack"
        for _ in range(20):
            if (await staff.lot(lot["lot_id"]))["phase"] == "timed":
                break
            await asyncio.sleep(0.1)
    await stop_server(running)
    await asyncio.sleep(2.5)  # the countdown's end passes while nobody can bid

    running = await start_server(settings)
    try:
        async with running.staff() as staff:
            view = await staff.lot(lot["lot_id"])
            assert view["phase"] == "timed", "not closed at the old deadline"
            assert view["ends_at"] > now_ms() + 1000, "the countdown restarted in full"
            last = (await staff.events(lot["lot_id"]))["events"][-1]
            assert last["kind"] == "taken_over" and last["down_for"] >= 2500
    finally:
        await stop_server(running)
