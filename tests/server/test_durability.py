"""A server process killed with SIGKILL in the middle of a bidding storm loses no acked bid.

The embedded default (one ``bidhall serve`` process, SQLite): 24 bidders keep bids in flight
from one rising price counter, a public watcher follows along, and the process is killed
three times without warning and restarted on the same port. Afterwards the history checker
(:mod:`tests.history`) holds over every request and answer:
- every acked bid is in the store exactly once, at the seq its ack named, same amount;
- acked bids rise with seq; no ack came before its request; every bid got an answer;
and every client resumed by itself; the watcher saw the stored order with no gap and no
duplicate; each restart is a ``taken_over`` event; a clean restart replays the same order.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.cluster import Cluster, staff_record
from tests.storm import Storm, open_lot, verify

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

BIDDERS = 24
KILLS = 3


async def test_sigkill_mid_storm_loses_no_acked_bid(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 1)  # one process, SQLite, no Redis
    storm: Storm | None = None
    try:
        await cluster.start()
        node = cluster.nodes[0]
        lot_id, tokens = await open_lot(cluster, node, BIDDERS)
        storm = Storm(lot_id, tokens, [node], [node])
        await storm.start()
        for _ in range(KILLS):
            await asyncio.sleep(1.0)
            node.kill()
            await asyncio.sleep(0.3)
            await node.start()  # same port: the clients find it again
        await asyncio.sleep(1.5)
        await storm.stop()

        report, stored = await verify(cluster, storm, what=f"SIGKILL x{KILLS}")
        assert report.acked > 300, report.summary()
        for bidder in storm.bidders:
            assert bidder.client.reconnects >= KILLS, "clients resumed by themselves"

        # Each restart is an outage in the lot's history; the listing was extended by it.
        takeovers = [e for e in stored if e["kind"] == "taken_over"]
        assert len(takeovers) == KILLS, [e["down_for"] for e in takeovers]
        assert all(e["phase"] == "listing" and e["down_for"] >= 0 for e in takeovers)

        await storm.close()
        storm = None
        await node.stop()
        await node.start()
        again = await staff_record(node.base_url, cluster.token, lot_id)
        assert again[:len(stored)] == stored, "a clean restart replays the same order"
        assert [e["kind"] for e in again[len(stored):]] == ["taken_over"]
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        if storm is not None:
            await storm.close()
        await cluster.close()
