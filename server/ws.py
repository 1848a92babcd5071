"""The websocket endpoint ``/ws``: decode, authenticate, stamp the time, hand over.

A connection has two loops: the reader (this module's :meth:`Session.read_loop`)
turns frames into commands for a lot's sequencer, and the writer drains the
connection's :class:`~server.hub.Outbox`. Bids are not awaited in the reader: the
answer is queued when the sequencer's batch is durable, so a client may pipeline.
No business rule lives here; prices and phases are decided in :mod:`auction`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from auction import PlaceBid, Refused

from . import codec
from .auth import Credential, Tokens
from .clock import now_ms
from .config import Settings
from .errors import ServerError, describe
from .hub import Hub, Outbox
from .lots import Lots
from .protocol import PROTOCOL, SUBPROTOCOL, Bid, Hello, Ping, Subscribe, Unsubscribe, decode
from .sequencer import Answer

log = logging.getLogger("bidhall.ws")

CLOSE_RATE_LIMIT = 1008
CLOSE_SESSION_REPLACED = 4001


class TokenBucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.stamp = 0

    def take(self, now: int) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate / 1000)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Session:
    def __init__(self, websocket: WebSocket, state: dict[str, Any]) -> None:
        self.ws = websocket
        self.hub: Hub = state["hub"]
        self.lots: Lots = state["lots"]
        self.tokens: Tokens = state["tokens"]
        settings: Settings = state["settings"]
        self.outbox = Outbox(settings.send_queue)
        self.bucket = TokenBucket(settings.rate, settings.burst)
        self.strikes = 0
        self.strike_limit = settings.burst
        self.credential: Credential | None = None

    # ------------------------------------------------------------------ reading
    async def read_loop(self) -> None:
        receive = self.ws.receive
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            now = now_ms()
            allowed = self.bucket.take(now)
            if allowed:
                self.strikes = 0
            else:
                self.strikes += 1
                if self.strikes > self.strike_limit:
                    self.outbox.close(CLOSE_RATE_LIMIT, "rate limit exceeded")
                    return
            text = message.get("text")
            try:
                if text is None:
                    raise ServerError("bad_message", "send JSON in text frames")
                msg = decode(text)  # frames are at most 4 KiB: cheap even in a flood
                if not allowed:
                    limited = ServerError("rate_limited",
                                          retry_after_ms=int(1000 / self.bucket.rate) + 1)
                    if isinstance(msg, Bid):  # answer with the bid_id, so it can be retried
                        self._reject(msg, limited)
                        continue
                    raise limited
                self._handle(msg, now)
            except ServerError as exc:
                self._error(exc)

    def _handle(self, msg: object, now: int) -> None:
        if isinstance(msg, Bid):
            self._bid(msg, now)
        elif isinstance(msg, Ping):
            self.outbox.push_control(codec.frame({"type": "pong", "t": msg.t, "server_time": now}))
        elif isinstance(msg, Subscribe):
            self.hub.subscribe(self.outbox, msg.lot, msg.since)
        elif isinstance(msg, Unsubscribe):
            self.hub.unsubscribe(self.outbox, msg.lot)
        elif isinstance(msg, Hello):
            self._hello(msg, now)

    def _hello(self, msg: Hello, now: int) -> None:
        if self.credential is not None:
            raise ServerError("already_greeted")
        cred = self.tokens.verify(msg.token, now)
        welcome: dict[str, Any] = {"type": "welcome", "protocol": PROTOCOL, "server_time": now,
                                   "role": cred.role}
        if cred.role == "bidder":
            assert cred.lot is not None
            lot = self.lots.view(cred.lot)
            view = lot.bidder_view(cred.subject)
            if view is None:
                raise ServerError("bad_token", "this bidder is not qualified for the lot")
            welcome.update(lot=cred.lot, bidder=cred.subject, paddle=view["paddle"])
            self.outbox.bidder, self.outbox.lot = cred.subject, cred.lot
            self.hub.claim_bidder(self.outbox, cred.lot, cred.subject)
        elif cred.role == "staff":
            if self.outbox.subs:
                raise ServerError("bad_message", "send hello before subscribing")
            self.outbox.audience = "staff"
            welcome["staff"] = cred.subject
        self.credential = cred
        self.outbox.push_control(codec.frame(welcome))

    def _bid(self, msg: Bid, now: int) -> None:
        cred = self.credential
        try:
            if cred is None:
                raise ServerError("unauthorized", "send hello with your bidder token first")
            if cred.role != "bidder":
                raise ServerError("forbidden", "only bidders place bids")
            if cred.expires is not None and cred.expires <= now:
                raise ServerError("token_expired")
            self.lots.view(msg.lot)
            if msg.lot != cred.lot:
                raise Refused("not_qualified", "this bidder is not qualified for this lot")
            self.lots.submit_nowait(msg.lot, PlaceBid(at=now, bidder=cred.subject,
                                                      amount=msg.amount, bid_id=msg.bid_id),
                                    lambda outcome: self._answer(msg, outcome))
        except (ServerError, Refused) as exc:
            self._reject(msg, exc)

    def _answer(self, msg: Bid, outcome: Answer | ServerError) -> None:
        if isinstance(outcome, ServerError):
            self._reject(msg, outcome)
        elif outcome.refusal is not None:
            self._reject(msg, outcome.refusal)
        else:
            assert outcome.ack is not None
            seq, amount, at, ends_at = outcome.ack
            self.outbox.push_control(codec.frame({
                "type": "ack", "bid_id": msg.bid_id, "lot": msg.lot, "seq": seq,
                "amount": amount, "at": at, "ends_at": ends_at}))

    def _reject(self, msg: Bid, exc: Any) -> None:
        self.outbox.push_control(codec.frame({"type": "reject", "bid_id": msg.bid_id,
                                              "lot": msg.lot, **describe(exc)}))

    def _error(self, exc: ServerError) -> None:
        self.outbox.push_control(codec.frame({"type": "error", **describe(exc)}))

    # ------------------------------------------------------------------ writing
    async def write_loop(self) -> None:
        outbox = self.outbox
        send = self.ws.send
        while True:
            await outbox.wake.wait()
            outbox.wake.clear()
            while True:
                if outbox.control:
                    await send({"type": "websocket.send", "text": outbox.control.popleft()})
                elif outbox.closing is not None:
                    code, reason = outbox.closing
                    await self.ws.close(code, reason)
                    return
                elif outbox.resync:
                    await self._catch_up(*outbox.resync.popitem())
                elif outbox.events:
                    lot_id, seq, frame = outbox.events.popleft()
                    if lot_id in outbox.subs and seq > outbox.last.get(lot_id, -1):
                        outbox.last[lot_id] = seq
                        await send({"type": "websocket.send", "text": frame})
                else:
                    break

    async def _catch_up(self, lot_id: str, since: int | None) -> None:
        outbox = self.outbox
        if lot_id not in outbox.subs:
            return
        frames = None if since is None else await self.hub.backfill(outbox, lot_id, since)
        if frames is None:
            frames = [self.hub.snapshot(outbox, lot_id)]
        for seq, frame in frames:
            if seq > outbox.last.get(lot_id, -1):
                outbox.last[lot_id] = seq
                await self.ws.send({"type": "websocket.send", "text": frame})


async def endpoint(websocket: WebSocket) -> None:
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    session = Session(websocket, websocket.scope["state"])
    writer = asyncio.get_running_loop().create_task(session.write_loop())
    reader = asyncio.get_running_loop().create_task(session.read_loop())
    try:
        done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception()
            if exc is not None and not isinstance(exc, WebSocketDisconnect | OSError):
                log.error("websocket session failed", exc_info=exc)
        if reader in done and writer not in done and session.outbox.closing is not None:
            # The reader asked for a close (rate limit): let the writer send it.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, 2)
    finally:
        session.hub.drop(session.outbox)
        for task in (reader, writer):
            task.cancel()
        await asyncio.gather(reader, writer, return_exceptions=True)
