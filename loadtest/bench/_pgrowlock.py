"""Row-lock baseline of ``pg_cluster.py``: a minimal bidding service that serialises bids on
the lot's row, as the national land-auction systems do.

    python loadtest/bench/_pgrowlock.py --port 9003 --dsn postgresql://.../db [--pool 20]

Same stack and options as bidhall (a Starlette ``WebSocketRoute`` at ``/ws`` served by
uvicorn through :func:`server.net.build`) and the same websocket protocol shape:

- ``{"type":"hello","token":BIDDER}`` -> ``{"type":"welcome","bidder":BIDDER}`` (the token
  is the bidder's name: no signing, which favours the baseline);
- ``{"type":"bid","lot":L,"amount":A,"bid_id":B}`` -> ``{"type":"ack","bid_id":B,...}`` or
  ``{"type":"reject","bid_id":B,"code":...}``.

Each bid is its own transaction on a connection from an asyncpg pool
(``synchronous_commit=on``), answered only after COMMIT returned::

    BEGIN
    SELECT price, leader, start_price, increment FROM bench.lot WHERE id = $1 FOR UPDATE
    -- amount >= (price is null ? start_price : price + increment), leader != bidder
    UPDATE bench.lot SET price = $2, leader = $3 WHERE id = $1
    INSERT INTO bench.bids (...) VALUES (...) RETURNING id
    COMMIT

A refused bid is rolled back and not recorded (bidhall records refusals durably): this
also favours the baseline. The tables are created by ``pg_cluster.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import msgspec

# Sibling module: this file is run as a script, so its directory is on sys.path.
from _baselines import _accept
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

SCHEMA = "bench"
LOCK = (f"SELECT price, leader, start_price, increment FROM {SCHEMA}.lot "
        "WHERE id = $1 FOR UPDATE")
RAISE = f"UPDATE {SCHEMA}.lot SET price = $2, leader = $3 WHERE id = $1"
RECORD = (f"INSERT INTO {SCHEMA}.bids (lot_id, bidder, bid_id, amount, at) "
          "VALUES ($1, $2, $3, $4, $5) RETURNING id")


class Message(msgspec.Struct):
    type: str
    token: str | None = None
    lot: str | None = None
    amount: int | None = None
    bid_id: str | None = None


decode = msgspec.json.Decoder(Message).decode
encode = msgspec.json.Encoder().encode


class Rejected(Exception):
    def __init__(self, code: str) -> None:
        self.code = code


async def place(pool: Any, bidder: str, msg: Message) -> dict[str, Any]:
    """One bid, one transaction: lock the lot's row, check, raise the price, record, commit."""
    at = int(time.time() * 1000)
    async with pool.acquire() as conn:
        tr = conn.transaction()
        await tr.start()
        try:
            row = await conn.fetchrow(LOCK, msg.lot)
            if row is None:
                raise Rejected("unknown_lot")
            price, leader, start_price, increment = row
            lowest = start_price if price is None else price + increment
            if msg.amount is None or msg.amount < lowest:
                raise Rejected("too_low")
            if leader == bidder:
                raise Rejected("already_leading")
            await conn.execute(RAISE, msg.lot, msg.amount, bidder)
            seq = await conn.fetchval(RECORD, msg.lot, bidder, msg.bid_id, msg.amount, at)
        except BaseException:
            await tr.rollback()
            raise
        await tr.commit()
    return {"type": "ack", "bid_id": msg.bid_id, "lot": msg.lot, "seq": seq,
            "amount": msg.amount, "at": at}


def rowlock_app(dsn: str, pool_size: int) -> Starlette:
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        settings = {"synchronous_commit": "on", "application_name": "bench-rowlock"}
        state["pool"] = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size,
                                                  server_settings=settings)
        try:
            yield
        finally:
            await state["pool"].close()

    async def endpoint(websocket: WebSocket) -> None:
        await _accept(websocket)
        receive, send, pool = websocket.receive, websocket.send, state["pool"]
        bidder: str | None = None
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                try:
                    msg = decode(message.get("text") or "")
                except msgspec.DecodeError:
                    reply: dict[str, Any] = {"type": "error", "code": "bad_message"}
                else:
                    if msg.type == "hello" and msg.token:
                        bidder = msg.token
                        reply = {"type": "welcome", "bidder": bidder}
                    elif msg.type == "bid" and bidder is not None:
                        try:
                            reply = await place(pool, bidder, msg)
                        except Rejected as exc:
                            reply = {"type": "reject", "bid_id": msg.bid_id, "lot": msg.lot,
                                     "code": exc.code}
                        except (asyncpg.PostgresError, OSError) as exc:
                            reply = {"type": "reject", "bid_id": msg.bid_id, "lot": msg.lot,
                                     "code": "unavailable", "message": str(exc)}
                    else:
                        reply = {"type": "error", "code": "bad_message"}
                await send({"type": "websocket.send", "text": encode(reply).decode()})
        except (WebSocketDisconnect, OSError):
            return

    return Starlette(routes=[WebSocketRoute("/ws", endpoint)], lifespan=lifespan)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--pool", type=int, default=20)
    args = parser.parse_args(argv)

    from server.config import Settings
    from server.net import build, uvicorn_options

    settings = Settings.from_env(host=args.host, port=args.port)
    server, sock = build(rowlock_app(args.dsn, args.pool), settings)
    print(f"row-lock baseline on {args.host}:{args.port}, pool {args.pool}, with "
          f"{uvicorn_options(settings)}", file=sys.stderr, flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
