"""The sequencer against a real SQLite store that fails: no ack without a commit."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from auction import MINUTE, Event, OpenLot, PlaceBid, QualifyBidder, preset
from server.clock import now_ms
from server.errors import ServerError
from server.sequencer import LotSequencer
from server.store.sqlite import SQLiteStore


async def test_a_failed_commit_acks_nothing_and_the_same_bid_id_retries_safely(
        tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = SQLiteStore(path, busy_timeout=0.2)
    await store.start()
    published: list[Event] = []

    def publish(lot_id: str, events: Sequence[Event]) -> None:
        published.extend(events)

    now = now_ms()
    terms = preset("qinzhou", start_price=100, deposit=1, listing_increment=1,
                   listing_start=now - MINUTE, listing_end=now + 60 * MINUTE)
    sequencer = await LotSequencer.load("L1", store, publish)
    sequencer.start()
    try:
        assert (await sequencer.submit(OpenLot(at=now, lot_id="L1", title="t", terms=terms,
                                               paddle_seed="s"))).refusal is None
        await sequencer.submit(QualifyBidder(at=now, bidder="a", deposit_ref="r"))
        await sequencer.submit(QualifyBidder(at=now, bidder="b", deposit_ref="r"))
        head = sequencer.lot.seq

        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the database
        bids = [sequencer.submit(PlaceBid(at=now_ms(), bidder=who, amount=amount,
                                          bid_id=f"{who}-1"))
                for who, amount in (("a", 100), ("b", 101))]
        for outcome in await asyncio.gather(*bids, return_exceptions=True):
            assert isinstance(outcome, ServerError) and outcome.code == "unavailable"
        assert len(published) == head, "nothing uncommitted was published"
        blocker.execute("ROLLBACK")
        blocker.close()
        await asyncio.sleep(0.8)  # the sequencer retries by itself, without new traffic
        assert not sequencer._stale

        # The lot was rebuilt from the store: the failed batch left no trace in memory.
        retry = await sequencer.submit(PlaceBid(at=now_ms(), bidder="a", amount=100,
                                                bid_id="a-1"))
        assert retry.refusal is None and retry.event is not None and retry.ack is not None
        assert retry.event.seq == head + 1
        again = await sequencer.submit(PlaceBid(at=now_ms(), bidder="a", amount=100,
                                                bid_id="a-1"))
        assert again.ack == retry.ack  # the original answer, not a second bid
        stored = await store.events("L1")
        assert [r.seq for r in stored] == list(range(1, head + 2))
    finally:
        await sequencer.stop()
        await store.close()


async def test_a_lot_restarts_from_its_events_with_its_answers(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "r.sqlite3")
    await store.start()
    now = now_ms()
    terms = preset("fujian", start_price=100, deposit=1, listing_increment=5,
                   listing_start=now - MINUTE, listing_end=now + 60 * MINUTE)
    first = await LotSequencer.load("L1", store, lambda *_: None)
    first.start()
    await first.submit(OpenLot(at=now, lot_id="L1", title="t", terms=terms, paddle_seed="s"))
    await first.submit(QualifyBidder(at=now, bidder="a", deposit_ref="r"))
    ack = await first.submit(PlaceBid(at=now_ms(), bidder="a", amount=100, bid_id="x"))
    low = await first.submit(PlaceBid(at=now_ms(), bidder="a", amount=1, bid_id="y"))
    assert low.refusal is not None and low.refusal.code == "already_leading"
    await first.submit(QualifyBidder(at=now, bidder="b", deposit_ref="r"))
    too_low = await first.submit(PlaceBid(at=now_ms(), bidder="b", amount=101, bid_id="z"))
    assert too_low.refusal is not None and too_low.refusal.details == {"minimum": 105}
    await first.stop()

    second = await LotSequencer.load("L1", store, lambda *_: None)
    second.start()
    try:
        assert second.lot.public_view() == first.lot.public_view()
        assert ack.ack is not None
        assert (await second.submit(PlaceBid(at=now_ms(), bidder="a", amount=100,
                                             bid_id="x"))).ack == ack.ack
        refused = await second.submit(PlaceBid(at=now_ms(), bidder="a", amount=1, bid_id="y"))
        assert refused.refusal is not None and refused.refusal.code == "already_leading"
        assert refused.refusal.message == low.refusal.message
        again = await second.submit(PlaceBid(at=now_ms(), bidder="b", amount=101, bid_id="z"))
        assert again.refusal is not None and again.refusal.details == {"minimum": 105}
        assert again.refusal.message == too_low.refusal.message
        dup = await second.submit(PlaceBid(at=now_ms(), bidder="a", amount=2, bid_id="y"))
        assert isinstance(dup.refusal, ServerError) and dup.refusal.code == "duplicate_bid_id"
    finally:
        await second.stop()
        await store.close()


async def test_countdown_end_arrives_as_a_tick(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.sqlite3")
    await store.start()
    seen: list[Event] = []
    now = now_ms()
    terms = preset("qinzhou", start_price=100, deposit=1, listing_increment=5,
                   listing_start=now - MINUTE, listing_end=now + 300, countdown=1000)
    sequencer = await LotSequencer.load("L1", store, lambda _, events: seen.extend(events))
    sequencer.start()
    try:
        await sequencer.submit(OpenLot(at=now, lot_id="L1", title="t", terms=terms,
                                       paddle_seed="s"))
        for _ in range(40):
            if any(e.KIND == "closed" for e in seen):
                break
            await asyncio.sleep(0.1)
        kinds = [e.KIND for e in seen]
        assert kinds == ["lot_opened", "phase_changed", "phase_changed", "closed"], kinds
        closed = seen[-1]
        assert closed.at == now + 300 + 1000  # at the deadline itself
    finally:
        await sequencer.stop()
        await store.close()


@pytest.mark.parametrize("batch_max", [1, 512])
async def test_many_concurrent_bids_get_one_strict_order(tmp_path: Path, batch_max: int) -> None:
    store = SQLiteStore(tmp_path / "c.sqlite3")
    await store.start()
    now = now_ms()
    terms = preset("fujian", start_price=1, deposit=1, listing_increment=1,
                   listing_start=now - MINUTE, listing_end=now + 60 * MINUTE)
    sequencer = await LotSequencer.load("L1", store, lambda *_: None, batch_max=batch_max)
    sequencer.start()
    try:
        await sequencer.submit(OpenLot(at=now, lot_id="L1", title="t", terms=terms,
                                       paddle_seed="s"))
        for i in range(20):
            await sequencer.submit(QualifyBidder(at=now, bidder=f"b{i}", deposit_ref="r"))
        answers = await asyncio.gather(*(
            sequencer.submit(PlaceBid(at=now_ms(), bidder=f"b{i % 20}", amount=1 + i,
                                      bid_id=str(i)))
            for i in range(400)))
        accepted = [a.event for a in answers if a.event is not None]
        assert len(accepted) > 300
        assert [e.amount for e in accepted] == sorted(e.amount for e in accepted)
        stored = [r.seq for r in await store.events("L1")]
        assert stored == list(range(1, len(stored) + 1))
    finally:
        await sequencer.stop()
        await store.close()
