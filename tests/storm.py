"""A bidding storm over running ``bidhall serve`` processes, and its verification.

    lot_id, tokens = await open_lot(cluster, node, bidders=9)
    storm = Storm(lot_id, tokens, nodes=cluster.nodes, watched=cluster.nodes)
    await storm.start(); ...; await storm.stop()
    report, stored = await verify(cluster, storm, what="three processes")

Bidders keep bids in flight from one rising price counter (so they contend) and record
every request and answer; :func:`verify` runs the history checker over them against the
store, checks every watcher's stream and every live process's replica.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Sequence
from typing import Any

from tests.cluster import (
    Bidder,
    Cluster,
    Node,
    Watcher,
    all_ops,
    close_all,
    public_record,
    staff_record,
    wait_until,
)
from tests.conftest import lot_fields
from tests.history import Report, assert_valid, check, check_stream

START = 1_000_000


async def open_lot(cluster: Cluster, node: Node, bidders: int, **fields: Any
                   ) -> tuple[str, list[str]]:
    """A lot created through ``node`` (which then owns it) with ``bidders`` qualified
    bidders that every process knows; its id and the bidders' tokens."""
    async with cluster.staff(node) as staff:
        lot = await staff.create_lot(**lot_fields(start_price=START, listing_increment=1,
                                                  **fields))
        lot_id = lot["lot_id"]
        tokens = [(await staff.qualify(lot_id, f"竞买人{i}", f"REF-{i}"))["token"]
                  for i in range(bidders)]
    await cluster.wait_for_bidders(lot_id, bidders)
    return lot_id, tokens


class Storm:
    """Bidders spread over ``nodes`` (round robin) and one watcher per watched node."""

    def __init__(self, lot_id: str, tokens: Sequence[str], nodes: Sequence[Node],
                 watched: Sequence[Node], **bidder_options: Any) -> None:
        prices: Iterator[int] = (START + n for n in itertools.count(1))
        self.lot_id = lot_id
        self.bidders = [Bidder(f"b{i}", nodes[i % len(nodes)], token, lot_id, prices,
                               **bidder_options) for i, token in enumerate(tokens)]
        self.watchers = [Watcher(f"w-{node.name}", node, lot_id) for node in watched]
        self.stop_event = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await asyncio.gather(*(w.start() for w in self.watchers))
        await asyncio.gather(*(b.start() for b in self.bidders))
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(b.run(self.stop_event)) for b in self.bidders]

    async def stop(self, timeout: float = 60.0) -> None:
        """Stop placing new bids; wait until every bid placed has its final answer."""
        self.stop_event.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks), timeout)

    async def close(self) -> None:
        self.stop_event.set()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await close_all(*self.bidders, *self.watchers)

    def acks_after(self, t: float, node: Node | None = None) -> list[float]:
        """Arrival times of the acks that arrived after ``t`` (at bidders on ``node``)."""
        return sorted(a.answered for b in self.bidders if node is None or b.node is node
                      for op in b.ops for a in op.attempts
                      if a.answered is not None and a.answered > t and a.answer is not None
                      and a.answer.get("type") == "ack")

    def answers_between(self, t0: float, t1: float) -> list[dict[str, Any]]:
        """Answers to the attempts sent between ``t0`` and ``t1``."""
        return [dict(a.answer) for b in self.bidders for op in b.ops for a in op.attempts
                if a.answer is not None and a.answered is not None and t0 <= a.sent <= t1]


async def verify(cluster: Cluster, storm: Storm, *, what: str, retry_hint: bool = True
                 ) -> tuple[Report, list[dict[str, Any]]]:
    """After :meth:`Storm.stop`: the history checker over every bid and the store, every
    watcher's stream against the store, and every live process's replica against the store.
    The report and the staff record."""
    lot_id = storm.lot_id
    reader = next(n for n in cluster.nodes if n.alive)
    stored = await staff_record(reader.base_url, cluster.token, lot_id)
    public = await public_record(reader.base_url, lot_id)
    head = public[-1]["seq"]

    report = check(all_ops(storm.bidders), stored, increment=1, retry_hint=retry_hint)
    slowest = max((a.answered - a.sent for op in all_ops(storm.bidders) for a in op.attempts
                   if a.answered is not None), default=0.0)
    print(f"{what}: {report.summary()}; slowest answer {slowest / 1000:.2f} s")
    assert_valid(report, what)
    assert report.acked >= 20, f"{what}: too few acks to mean anything ({report.summary()})"

    for watcher in storm.watchers:
        await watcher.wait_for(head, 15)
        problems = check_stream(watcher.messages, public, lot=lot_id, head=head)
        assert not problems, f"{what}: watcher on {watcher.node.name}: {problems[:10]}"

    bids = [{"at": e["at"], "paddle": e["paddle"], "amount": e["amount"]}
            for e in stored if e["kind"] == "bid"]
    for node in cluster.nodes:
        if not node.alive:
            continue
        async with cluster.staff(node) as staff:
            seen: list[Any] = []

            async def same(staff: Any = staff, seen: list[Any] = seen) -> bool:
                found = (await staff.call("GET", f"/api/lots/{lot_id}/bids"))["bids"]
                seen[:] = found
                return bool(found == bids)

            try:
                await wait_until(same, 10, f"{what}: {node.name}'s replica")
            except AssertionError:
                diff = next((i for i, (a, b) in enumerate(zip(seen, bids, strict=False))
                             if a != b), min(len(seen), len(bids)))
                raise AssertionError(
                    f"{what}: {node.name}'s replica holds {len(seen)} bids, the store "
                    f"{len(bids)}; first difference at bid {diff}: "
                    f"{seen[diff:diff + 3]} != {bids[diff:diff + 3]}") from None
    return report, stored


def first_ack_after(storm: Storm, t: float, nodes: Sequence[Node]) -> list[float]:
    """Per node, seconds from ``t`` to the first ack given to a bid sent after ``t``."""
    out = []
    for node in nodes:
        times = [a.answered for b in storm.bidders if b.node is node for op in b.ops
                 for a in op.attempts if a.sent >= t and a.answered is not None
                 and a.answer is not None and a.answer.get("type") == "ack"]
        out.append(round((min(times) - t) / 1000, 2) if times else float("inf"))
    return out


