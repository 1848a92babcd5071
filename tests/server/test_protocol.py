"""Wire protocol v1 over a real websocket: answers, resume, and every refusal changing nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect

from clients.python import StaffClient
from server.config import Settings
from tests.conftest import Running, lot_fields, start_server, stop_server


async def record(staff: StaffClient, lot_id: str) -> tuple[int, dict[str, Any]]:
    """What must not change: the number of stored events and the public view."""
    events = await staff.events(lot_id)
    return len(events["events"]), await staff.lot(lot_id)


async def open_lot(staff: StaffClient, bidders: int = 2, **fields: Any
                   ) -> tuple[str, list[dict[str, Any]]]:
    lot = await staff.create_lot(**lot_fields(**fields))
    qualified = [await staff.qualify(lot["lot_id"], f"公司{i}", f"REF-{i}")
                 for i in range(bidders)]
    return lot["lot_id"], qualified


async def test_welcome_carries_server_time_and_paddle(server: Running, staff) -> None:
    lot_id, (a, _) = await open_lot(staff)
    async with server.live(a["token"]) as client:
        welcome = client.welcome
        assert welcome is not None
        assert welcome["role"] == "bidder" and welcome["paddle"] == a["paddle"]
        assert welcome["lot"] == lot_id and abs(welcome["server_time"] - client_now()) < 5000
        rtt = await client.ping()
        assert rtt >= 0 and abs(client.offset_ms) < 5000


def client_now() -> int:
    import time

    return int(time.time() * 1000)


async def test_bid_id_retry_gets_the_original_answer_and_a_changed_amount_is_refused(
        server: Running, staff) -> None:
    lot_id, (a, b) = await open_lot(staff)
    async with server.live(a["token"]) as client, server.live(b["token"]) as other:
        first = await client.bid(lot_id, 1_000_000, bid_id="same-id")
        assert first["type"] == "ack"
        await other.bid(lot_id, 1_010_000)
        before = await record(staff, lot_id)
        again = await client.bid(lot_id, 1_000_000, bid_id="same-id")
        assert again["type"] == "ack" and again["seq"] == first["seq"]
        changed = await client.bid(lot_id, 1_500_000, bid_id="same-id")
        assert changed["type"] == "reject" and changed["code"] == "duplicate_bid_id"
        assert await record(staff, lot_id) == before
        # A refused bid_id answers the same refusal when retried.
        low = await client.bid(lot_id, 5, bid_id="low")
        assert low["code"] == "too_low"
        assert (await client.bid(lot_id, 5, bid_id="low"))["code"] == "too_low"


async def test_subscribe_since_replays_exactly_the_missed_events(server: Running, staff) -> None:
    lot_id, (a, b) = await open_lot(staff)
    async with server.live() as watcher, server.live(a["token"]) as x, \
            server.live(b["token"]) as y:
        await watcher.subscribe(lot_id)
        snapshot = await watcher.next()
        head = snapshot["seq"]
        for i in range(6):
            await (x if i % 2 == 0 else y).bid(lot_id, 1_000_000 + i * 10_000)
        seen = [await watcher.next() for _ in range(6)]
        assert [e["seq"] for e in seen] == list(range(head + 1, head + 7))
    async with server.live(reconnect=False) as late:
        await late.subscribe(lot_id, since=seen[2]["seq"])
        replay = [await late.next() for _ in range(3)]
        assert [e["seq"] for e in replay] == [e["seq"] for e in seen[3:]]
        assert [e["amount"] for e in replay] == [e["amount"] for e in seen[3:]]
        with pytest.raises(asyncio.TimeoutError):
            await late.next(timeout=0.3)  # nothing twice


async def test_a_since_from_the_future_gets_a_snapshot(server: Running, staff) -> None:
    lot_id, _ = await open_lot(staff)
    async with server.live() as watcher:
        await watcher.subscribe(lot_id, since=999)
        assert (await watcher.next())["type"] == "snapshot"


async def test_public_watchers_never_see_identities_or_registrations(server: Running,
                                                                     staff) -> None:
    lot_id, bidders = await open_lot(staff, bidders=3, listing_end=client_now() + 3 * 3600_000)
    await staff.set_reserve(lot_id, 1_200_000)
    async with server.live(bidders[0]["token"]) as me:
        await me.bid(lot_id, 1_000_000)
    events = (await staff.call("GET", f"/api/lots/{lot_id}/events"))  # staff: everything
    async with StaffClient(server.base_url) as anyone:
        public = await anyone.events(lot_id)
        view = await anyone.lot(lot_id)
    assert len(public["events"]) < len(events["events"])
    text = json.dumps(public, ensure_ascii=False)
    for secret in ("公司0", "公司1", "REF-0", "1200000", "paddle_seed", "bidder_qualified"):
        assert secret not in text
    assert "reserve" not in view
    assert (await staff.lot(lot_id))["reserve"] == 1_200_000


# ---------------------------------------------------------------------- refusals
BAD_FRAMES = [
    ("{not json", "bad_json"),
    ("[1, 2]", "bad_message"),
    ('{"type": "bid", "lot": 5, "amount": 1, "bid_id": "x"}', "bad_message"),
    ('{"type": "teleport"}', "unknown_type"),
    ('{"lot": "x"}', "bad_message"),
    ('{"type": "bid", "lot": "x", "amount": 0, "bid_id": "x"}', "invalid_amount"),
    ('{"type": "bid", "lot": "x", "amount": -100, "bid_id": "x"}', "invalid_amount"),
    ('{"type": "bid", "lot": "x", "amount": 1000000.5, "bid_id": "x"}', "invalid_amount"),
    ('{"type": "bid", "lot": "x", "amount": 1e6, "bid_id": "x"}', "invalid_amount"),
    ('{"type": "bid", "lot": "x", "amount": "1000000", "bid_id": "x"}', "invalid_amount"),
    ('{"type": "bid", "lot": "x", "amount": 100000000000000000000000, "bid_id": "x"}',
     "invalid_amount"),
    ('{"type": "bid", "lot": "x", "amount": 1000000, "bid_id": ""}', "bad_message"),
    ('{"type": "subscribe", "lot": "../../etc"}', "bad_message"),
    ('{"type": "subscribe", "lot": "x", "since": -1}', "bad_message"),
    ("x" * 5000, "frame_too_large"),
]


@pytest.mark.parametrize(("frame", "code"), BAD_FRAMES)
async def test_malformed_frames_are_refused_with_a_code_and_change_nothing(
        server: Running, staff, frame: str, code: str) -> None:
    lot_id, (a, _) = await open_lot(staff)
    frame = frame.replace('"lot": "x"', f'"lot": "{lot_id}"')
    before = await record(staff, lot_id)
    async with server.live(a["token"], reconnect=False) as client:
        await client.send_raw(frame)
        error = await client.next()
        assert error["type"] == "error" and error["code"] == code, error
        assert error["message"]
        # The connection still works afterwards.
        assert (await client.bid(lot_id, 1_000_000))["type"] == "ack"
    after_count, _ = await record(staff, lot_id)
    assert after_count == before[0] + 1


async def test_binary_frames_are_refused(server: Running, staff) -> None:
    async with server.live(reconnect=False) as client:
        await client.send_raw(b'{"type": "ping"}')
        assert (await client.next())["code"] == "bad_message"


async def test_bids_without_a_valid_credential_are_refused(server: Running, staff) -> None:
    lot_id, (a, _) = await open_lot(staff)
    _, (c, _) = await open_lot(staff)
    before = await record(staff, lot_id)
    async with server.live(reconnect=False) as anonymous:
        answer = await anonymous.bid(lot_id, 1_000_000)
        assert answer["code"] == "unauthorized"
    async with server.live(server.staff_token, reconnect=False) as staff_ws:
        assert (await staff_ws.bid(lot_id, 1_000_000))["code"] == "forbidden"
    async with server.live(c["token"], reconnect=False) as wrong_lot:
        assert (await wrong_lot.bid(lot_id, 1_000_000))["code"] == "not_qualified"
    forged = a["token"][:-4] + ("AAAA" if not a["token"].endswith("AAAA") else "BBBB")
    for token, code in ((forged, "bad_token"), ("bh1.e30.sig", "bad_token"),
                        ("garbage", "bad_token")):
        async with connect(server.ws_url) as raw:
            await raw.send(json.dumps({"type": "hello", "token": token}))
            assert json.loads(await raw.recv())["code"] == code
            await raw.send(json.dumps({"type": "bid", "lot": lot_id, "amount": 1_000_000,
                                       "bid_id": "x"}))
            assert json.loads(await raw.recv())["code"] == "unauthorized"
    assert await record(staff, lot_id) == before


async def test_expired_tokens_are_refused_at_hello_and_at_bid(server: Running, staff) -> None:
    lot_id, _ = await open_lot(staff, bidders=0)
    short = await staff.qualify(lot_id, "短期公司", "REF-X", token_ttl=1)
    async with server.live(short["token"], reconnect=False) as client:
        await asyncio.sleep(1.1)
        assert (await client.bid(lot_id, 1_000_000))["code"] == "token_expired"
    async with connect(server.ws_url) as raw:
        await raw.send(json.dumps({"type": "hello", "token": short["token"]}))
        assert json.loads(await raw.recv())["code"] == "token_expired"
    assert (await staff.lot(lot_id))["bid_count"] == 0


async def test_unknown_lots_and_second_hello(server: Running, staff) -> None:
    _lot_id, (a, _) = await open_lot(staff)
    async with server.live(a["token"], reconnect=False) as client:
        await client.subscribe("no-such-lot")
        assert (await client.next())["code"] == "unknown_lot"
        answer = await client.bid("no-such-lot", 1_000_000)
        assert answer["type"] == "reject" and answer["code"] == "unknown_lot"
        await client.send_raw(json.dumps({"type": "hello", "token": a["token"]}))
        assert (await client.next())["code"] == "already_greeted"


async def test_a_second_sign_in_takes_over_and_tells_the_first(server: Running, staff) -> None:
    lot_id, (a, _) = await open_lot(staff)
    async with server.live(a["token"], reconnect=False) as first:
        async with server.live(a["token"], reconnect=False) as second:
            message = await first.next()
            assert message["code"] == "session_replaced"
            assert (await first.next())["type"] == "closed"
            assert (await second.bid(lot_id, 1_000_000))["type"] == "ack"


async def test_a_flood_is_rate_limited_then_cut_off(tmp_path) -> None:
    running = await start_server(Settings(data_dir=tmp_path / "d", rate=5, burst=5,
                                          gc_tuning=False))
    try:
        async with running.staff() as staff:
            lot_id, (a, _) = await open_lot(staff)
            before = await record(staff, lot_id)
            async with connect(running.ws_url) as raw:
                codes = []
                for i in range(40):
                    await raw.send(json.dumps({"type": "ping", "t": i}))
                try:
                    while True:
                        message = json.loads(await asyncio.wait_for(raw.recv(), 5))
                        codes.append(message.get("code", message["type"]))
                except Exception as exc:  # closed by the server
                    close_code = getattr(exc, "rcvd", None)
                assert codes[:5] == ["pong"] * 5
                assert "rate_limited" in codes
                assert close_code is not None and close_code.code == 1008
            assert await record(staff, lot_id) == before
            # Bids over the rate are refused with their bid_id, so a client can retry them.
            async with connect(running.ws_url) as raw:
                await raw.send(json.dumps({"type": "hello", "token": a["token"]}))
                assert json.loads(await raw.recv())["type"] == "welcome"
                for i in range(8):
                    await raw.send(json.dumps({"type": "bid", "lot": lot_id,
                                               "amount": 1_000_000 + i * 10_000,
                                               "bid_id": f"b{i}"}))
                answers = [json.loads(await raw.recv()) for _ in range(8)]
                limited = [m for m in answers if m.get("code") == "rate_limited"]
                assert limited and all(m["type"] == "reject" for m in limited)
                assert {m["bid_id"] for m in limited} <= {f"b{i}" for i in range(8)}
                assert all(m["retry_after_ms"] > 0 for m in limited)
    finally:
        await stop_server(running)


class StalledWatcher:
    """A real websocket client (websockets' sans-I/O protocol on a blocking socket) that
    subscribes and then reads nothing until told to, like a watcher on a frozen tab."""

    def __init__(self, ws_url: str) -> None:
        import socket

        from websockets.client import ClientProtocol
        from websockets.uri import parse_uri

        uri = parse_uri(ws_url)
        self.protocol = ClientProtocol(uri, max_size=2**24)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        self.sock.connect((uri.host, uri.port))
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        from websockets.protocol import State

        while self.protocol.state is State.CONNECTING:
            self.protocol.receive_data(self.sock.recv(4096))
        assert self.protocol.state is State.OPEN, self.protocol.handshake_exc

    def _flush(self) -> None:
        for chunk in self.protocol.data_to_send():
            self.sock.sendall(chunk)

    def send(self, message: dict[str, Any]) -> None:
        self.protocol.send_text(json.dumps(message).encode())
        self._flush()

    def read_all(self, quiet: float = 1.0) -> list[dict[str, Any]]:
        from websockets.frames import Opcode

        self.sock.settimeout(quiet)
        frames: list[dict[str, Any]] = []
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except TimeoutError:
                return frames
            if not data:
                return frames
            self.protocol.receive_data(data)
            for frame in self.protocol.events_received():
                if getattr(frame, "opcode", None) is Opcode.TEXT:
                    frames.append(json.loads(frame.data))

    def close(self) -> None:
        self.sock.close()


async def test_slow_watcher_gets_a_snapshot_instead_of_the_backlog(tmp_path) -> None:
    running = await start_server(Settings(data_dir=tmp_path / "d", rate=1e6, burst=10**6,
                                          send_queue=8, gc_tuning=False))
    # Blocking socket calls run in a thread: the server shares this event loop.
    slow = await asyncio.to_thread(StalledWatcher, running.ws_url)
    try:
        async with running.staff() as staff:
            lot_id, (a, b) = await open_lot(staff)
            await asyncio.to_thread(slow.send, {"type": "subscribe", "lot": lot_id})
            async with running.live(a["token"]) as x, running.live(b["token"]) as y, \
                    running.live() as healthy:
                await healthy.subscribe(lot_id)
                await healthy.next()
                price = 1_000_000
                for i in range(3000):
                    await (x if i % 2 == 0 else y).bid(lot_id, price)
                    price += 10_000
                top = price - 10_000
                # A watcher that keeps up gets every event, in order, none twice.
                seen = [await healthy.next() for _ in range(3000)]
                assert [e["amount"] for e in seen] == list(range(1_000_000, price, 10_000))
            frames = await asyncio.to_thread(slow.read_all)
            snapshots = [f for f in frames if f["type"] == "snapshot"]
            events = [f for f in frames if f["type"] == "event"]
            assert len(snapshots) >= 2, "the stalled watcher was resynced by snapshot"
            assert len(events) < 3000, "and was not sent the whole backlog"
            final = frames[-1]
            assert (final["amount"] if final["type"] == "event" else final["state"]["price"]) \
                == top, "it still ends on the current price"
            seqs = [f["seq"] for f in frames]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "in order, no repeats"
    finally:
        slow.close()
        await stop_server(running)
