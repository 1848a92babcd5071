"""``bidhall demo``: the real server with a demo lot in its timed phase and simulated bidders.

The demo acts like a trading centre's staff and bidders would, through the public
HTTP API and the websocket protocol. A running demo lot is picked up again after a
restart (the data stays in the data directory); once a lot is sold, a new one opens.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
from typing import Any

from auction import MINUTE, Phase
from clients.python import ApiError, LiveClient, StaffClient

from .app import create_app, staff_token
from .clock import now_ms
from .config import Settings
from .net import build, port_of

DEMO_BIDDER = "演示竞买人 Demo Bidder Co."
BOT_NAMES = ("苏州恒远置业有限公司", "江南城建集团", "华东地产开发有限公司", "太湖投资控股",
             "姑苏新城建设", "金鸡湖置业")
START_PRICE = 128_000_000
INCREMENT = 500_000
FINAL = {Phase.SOLD, Phase.UNSOLD, Phase.CAPPED}


async def _open_lot(staff: StaffClient, number: int) -> dict[str, Any]:
    now = now_ms()
    return await staff.create_lot(
        lot_id=f"demo-{number}",
        title=f"苏地2026-WG-{17 + number}号 工业园区湖东地块 (演示 demo)",
        preset="qinzhou",
        start_price=START_PRICE,
        deposit=START_PRICE // 5,
        listing_increment=INCREMENT,
        listing_start=now - 60 * MINUTE,
        listing_end=now + 1000,
        countdown=MINUTE,
    )


async def _current_lot(staff: StaffClient) -> dict[str, Any]:
    demo = [lot for lot in await staff.lots() if lot["lot_id"].startswith("demo-")]
    running = [lot for lot in demo if lot["phase"] not in FINAL]
    if running:
        return running[-1]
    numbers = [int(lot["lot_id"].split("-")[1]) for lot in demo
               if lot["lot_id"].split("-")[1].isdigit()]
    return await _open_lot(staff, max(numbers, default=0) + 1)


async def _bidder_token(staff: StaffClient, lot_id: str, name: str, ref: str) -> dict[str, Any]:
    """A fresh token for a bidder of the demo lot, qualifying it first if it is new."""
    try:
        return await staff.token(lot_id, name)
    except ApiError as exc:
        if exc.code != "not_qualified":
            raise
        return await staff.qualify(lot_id, name, ref)


async def _bot(ws_url: str, lot_id: str, token: str, ceiling: int, rng: random.Random) -> None:
    """Bid one increment over the leader after a human-like pause, up to ``ceiling``."""
    async with LiveClient(ws_url, token) as client:
        assert client.welcome is not None
        paddle = client.welcome["paddle"]
        await client.subscribe(lot_id)
        state: dict[str, Any] = {}
        while True:
            message = await client.next(timeout=3600)
            if message["type"] == "snapshot":
                state = dict(message["state"])
            elif message["type"] == "event":
                _fold(state, message)
            else:
                continue
            if state.get("phase") in FINAL:
                return
            if state.get("phase") not in ("listing", "timed") or state.get("leader") == paddle:
                continue
            amount = state["next_min"]
            if amount > ceiling:
                continue
            await asyncio.sleep(rng.uniform(2.0, 12.0))
            if state.get("leader") != paddle and state.get("next_min") == amount:
                await client.bid(lot_id, amount)


def _fold(state: dict[str, Any], event: dict[str, Any]) -> None:
    kind = event["kind"]
    if kind == "bid":
        state.update(price=event["amount"], leader=event["paddle"],
                     next_min=event["amount"] + state.get("increment", INCREMENT))
    elif kind in ("phase_changed", "resumed"):
        state["phase"] = event["phase"]
    elif kind in ("closed", "capped"):
        state["phase"] = event.get("outcome", "capped")
    elif kind == "increment_changed":
        state["increment"] = event["amount"]


async def run_demo(settings: Settings, bots: int = 4) -> None:
    token = await staff_token(settings)
    server, sock = build(create_app(settings), settings)
    serving = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serving.done():
            serving.result()
            return
        await asyncio.sleep(0.05)
    port = port_of(sock)
    base, ws_url = f"http://{settings.host}:{port}", f"ws://{settings.host}:{port}/ws"
    rng = random.Random()
    try:
        async with StaffClient(base, token) as staff:
            while not serving.done():
                lot = await _current_lot(staff)
                lot_id = lot["lot_id"]
                me = await _bidder_token(staff, lot_id, DEMO_BIDDER, "DEMO-DEPOSIT-0")
                print(f"\nbidhall demo — lot {lot_id}: {lot['title']}\n"
                      f"  Bidder hall 竞买大厅 (paddle {me['paddle']}): {base}{me['hall_url']}\n"
                      f"  Public board 公开看板:  {base}/board/{lot_id}\n"
                      f"  Lots 标的列表:          {base}/\n"
                      f"  Staff token: {token}\n"
                      f"  Data: {settings.sqlite_path}  (Ctrl+C stops; data is kept)\n",
                      file=sys.stderr, flush=True)
                tasks = []
                for i in range(bots):
                    name = BOT_NAMES[i % len(BOT_NAMES)] + (f" {i}" if i >= len(BOT_NAMES) else "")
                    bot = await _bidder_token(staff, lot_id, name, f"DEMO-DEPOSIT-{i + 1}")
                    ceiling = START_PRICE + INCREMENT * rng.randint(8, 40)
                    tasks.append(asyncio.create_task(
                        _bot(ws_url, lot_id, bot["token"], ceiling, random.Random(i))))
                while (await staff.lot(lot_id))["phase"] not in FINAL and not serving.done():
                    await asyncio.sleep(1)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                result = await staff.result(lot_id)
                print(f"bidhall demo — lot {lot_id} ended: {result['outcome']} "
                      f"price={result['price']} paddle={result['paddle']}; next lot in 15 s",
                      file=sys.stderr, flush=True)
                await asyncio.sleep(15)
    finally:
        server.should_exit = True
        with contextlib.suppress(BaseException):
            await serving
