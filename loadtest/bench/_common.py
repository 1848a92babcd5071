"""Constants shared by ``bid_latency.py`` and its modules: paths, lots, amounts, targets.

The benchmark is run as a script (``python loadtest/bench/bid_latency.py``), so its
directory is on ``sys.path`` and these sibling modules are imported by their bare names.
"""

from __future__ import annotations

import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SUBPROTOCOL = "bidhall.v1"
perf = time.perf_counter

START_PRICE = 1_000_000
HOT_LOT = "bench-hot"
SPREAD_LOTS = [f"bench-s{i:03d}" for i in range(100)]
FAN_LOT = "bench-fan"

TARGETS = {
    "ack_100_bidders_one_lot_p50_ms": 2.0,
    "ack_100_bidders_one_lot_p99_ms": 10.0,
    "one_hot_lot_bids_per_s": 5000.0,
    "fanout_1000_watchers_p99_ms": 50.0,
}
