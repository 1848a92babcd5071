"""A server process killed with SIGKILL in the middle of a bidding storm loses no acked bid.

The server runs as its own process (``bidhall serve``). Bidders pipeline bids with their own
``bid_id``s from a shared, rising price counter, a public watcher follows along, and the
process is killed three times without warning and restarted on the same port. Afterwards:
- every acked bid is in the store exactly once, at the seq its ack named, same amount;
- no bid_id was placed twice; the accepted amounts rise strictly with seq;
- every client resumed by itself and every bid it sent got exactly one answer;
- the watcher saw a gapless sequence with no duplicate across the restarts;
- each restart is a ``taken_over`` event in the lot's history;
- a clean restart replays the same order.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from clients.python import LiveClient, StaffClient
from tests.conftest import lot_fields

pytestmark = pytest.mark.slow

BIDDERS = 24
START = 1_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/ws"

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "server.cli", *args, "--data-dir", str(self.data_dir)]

    def env(self) -> dict[str, str]:
        return {**os.environ, "BIDHALL_RATE": "100000", "BIDHALL_BURST": "100000"}

    def staff_token(self) -> str:
        return subprocess.run(self.command("staff-token"), check=True, capture_output=True,
                              text=True, env=self.env()).stdout.strip()

    async def start(self) -> None:
        self.proc = subprocess.Popen(self.command("serve", "--port", str(self.port)),
                                     env=self.env(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}")
                try:
                    if (await http.get(self.base_url + "/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError("server did not come up")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest_asyncio.fixture
async def process(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    server = ServerProcess(tmp_path / "data", free_port())
    try:
        yield server
    finally:
        server.stop()


async def whole_record(staff: StaffClient, lot_id: str) -> list[dict[str, Any]]:
    """Every stored event of the lot, page by page."""
    events: list[dict[str, Any]] = []
    while True:
        page = await staff.events(lot_id, since=events[-1]["seq"] if events else 0,
                                  limit=5000)
        if not page["events"]:
            return events
        events.extend(page["events"])


class Bidder:
    """Keeps a few bids in flight; records what it sent and every answer it got."""

    def __init__(self, client: LiveClient, lot_id: str, prices: itertools.count[int]) -> None:
        self.client, self.lot_id, self.prices = client, lot_id, prices
        self.sent: dict[str, int] = {}
        self.answers: dict[str, dict[str, Any]] = {}
        self.duplicates = 0

    async def run(self, stop: asyncio.Event) -> None:
        counter = itertools.count()
        in_flight: set[asyncio.Future[dict[str, Any]]] = set()
        while not stop.is_set():
            while len(in_flight) < 3:
                bid_id = f"{id(self)}-{next(counter)}"
                amount = START + next(self.prices)
                self.sent[bid_id] = amount
                future = self.client.bid_nowait(self.lot_id, amount, bid_id)
                future.add_done_callback(lambda f, b=bid_id: self._answered(b, f))
                in_flight.add(future)
            _, in_flight = await asyncio.wait(in_flight, timeout=0.2,
                                                 return_when=asyncio.FIRST_COMPLETED)
        await asyncio.wait_for(asyncio.gather(*in_flight), 30)

    def _answered(self, bid_id: str, future: asyncio.Future[dict[str, Any]]) -> None:
        if bid_id in self.answers:
            self.duplicates += 1
        self.answers[bid_id] = future.result()


async def test_sigkill_mid_storm_loses_no_acked_bid(process: ServerProcess) -> None:
    token = process.staff_token()
    await process.start()
    async with StaffClient(process.base_url, token) as staff:
        lot = await staff.create_lot(**lot_fields(start_price=START, listing_increment=1))
        lot_id = lot["lot_id"]
        tokens = [(await staff.qualify(lot_id, f"竞买人{i}", f"REF-{i}"))["token"]
                  for i in range(BIDDERS)]

    prices = itertools.count(0, 1)
    clients = [LiveClient(process.ws_url, t, max_backoff=0.3) for t in tokens]
    watcher = LiveClient(process.ws_url, max_backoff=0.3)
    for c in [*clients, watcher]:
        await c.start()
    await watcher.subscribe(lot_id)
    seen: list[dict[str, Any]] = []

    async def watch() -> None:
        async for message in watcher.messages():
            seen.append(message)

    watching = asyncio.create_task(watch())
    bidders = [Bidder(c, lot_id, prices) for c in clients]
    stop = asyncio.Event()
    storm = [asyncio.create_task(b.run(stop)) for b in bidders]

    acked_before_kill: list[set[str]] = []
    for _ in range(3):
        await asyncio.sleep(1.0)
        acked_before_kill.append({b for bd in bidders for b, a in bd.answers.items()
                                  if a["type"] == "ack"})
        process.kill()
        await asyncio.sleep(0.3)
        await process.start()
    await asyncio.sleep(1.5)
    stop.set()
    await asyncio.gather(*storm)
    await asyncio.sleep(0.5)  # let the watcher drain

    async with StaffClient(process.base_url, token) as staff:
        stored = await whole_record(staff, lot_id)
    watching.cancel()
    for c in [*clients, watcher]:
        await c.close()

    bids = [e for e in stored if e["kind"] == "bid"]
    by_bid_id: dict[str, dict[str, Any]] = {}
    for event in bids:
        assert event["bid_id"] not in by_bid_id, f"bid {event['bid_id']} placed twice"
        by_bid_id[event["bid_id"]] = event
    amounts = [e["amount"] for e in bids]
    assert amounts == sorted(amounts) and len(set(amounts)) == len(amounts)

    acks = {b: a for bd in bidders for b, a in bd.answers.items() if a["type"] == "ack"}
    assert len(acks) > 100, f"the storm placed too few bids to mean anything ({len(acks)})"
    for round_acks in acked_before_kill:
        assert round_acks and round_acks <= set(by_bid_id), "an acked bid was lost"
    public_seq = {e["seq"]: e for e in stored}
    for bid_id, ack in acks.items():
        event = by_bid_id.get(bid_id)
        assert event is not None, f"acked bid {bid_id} is not in the store"
        assert event["amount"] == ack["amount"]
        assert ack["seq"] == event["pseq"], "the ack's seq is the stored event's public seq"
        assert public_seq[event["seq"]]["bid_id"] == bid_id
    assert set(by_bid_id) == set(acks), "every stored bid was acked to its bidder"

    for bidder in bidders:
        assert bidder.duplicates == 0
        assert set(bidder.answers) == set(bidder.sent), "every bid sent got its answer"
        assert bidder.client.reconnects >= 3, "clients resumed by themselves"
        for answer in bidder.answers.values():
            assert answer["type"] == "ack" or answer["code"] in ("too_low", "already_leading"), \
                answer

    events = [m for m in seen if m["type"] == "event"]
    seqs = [m["seq"] for m in seen if m["type"] in ("event", "snapshot")]
    assert seqs == sorted(seqs) and len(events) == len({e["seq"] for e in events})
    if not any(m["type"] == "snapshot" and m is not seen[0] for m in seen):
        first = seen[0]["seq"]
        assert [e["seq"] for e in events] == list(range(first + 1, first + 1 + len(events)))
    watched_bids = [e for e in events if e["kind"] == "bid"]
    assert watched_bids[-1]["amount"] == bids[-1]["amount"]

    # Each restart is an outage in the lot's history; the listing was extended by it.
    takeovers = [e for e in stored if e["kind"] == "taken_over"]
    assert len(takeovers) == 3, [e["down_for"] for e in takeovers]
    assert all(e["phase"] == "listing" and e["down_for"] >= 0 for e in takeovers)

    process.stop()
    await process.start()
    async with StaffClient(process.base_url, token) as staff:
        again = await whole_record(staff, lot_id)
    assert again[:len(stored)] == stored, "a clean restart replays the same order"
    assert [e["kind"] for e in again[len(stored):]] == ["taken_over"]
