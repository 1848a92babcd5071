"""The shortest path through the product: create, qualify, bid, watch."""

from __future__ import annotations

from tests.conftest import Running, lot_fields


async def test_a_bid_reaches_a_public_watcher(server: Running, staff) -> None:
    lot = await staff.create_lot(**lot_fields())
    bidder = await staff.qualify(lot["lot_id"], "公司A", "REF-1")
    async with server.live() as watcher, server.live(bidder["token"]) as me:
        await watcher.subscribe(lot["lot_id"])
        snapshot = await watcher.next()
        assert snapshot["type"] == "snapshot" and snapshot["state"]["price"] is None
        answer = await me.bid(lot["lot_id"], 1_000_000)
        assert answer["type"] == "ack", answer
        event = await watcher.next()
        assert event["kind"] == "bid" and event["amount"] == 1_000_000
        assert event["paddle"] == bidder["paddle"] and event["seq"] == answer["seq"]
        assert "bidder" not in event
