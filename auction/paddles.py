"""Paddle numbers: four digits, unpredictable without the lot's seed, reproducible with it.

Sequential paddles would tell the public how many bidders registered (a fact kept
secret during a sale), so the n-th qualified bidder gets a number drawn from a
hash of the seed instead. The same seed and order always give the same paddles,
which keeps replay exact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Container
from typing import Final

LOWEST: Final = 1000
HIGHEST: Final = 9999
SPACE: Final = HIGHEST - LOWEST + 1


def paddle_for(seed: str, index: int, taken: Container[int]) -> int:
    """The paddle of the ``index``-th bidder (0-based) given the paddles already ``taken``.

    Raises ``ValueError`` when every number is taken.
    """
    for attempt in range(64):
        digest = hashlib.sha256(f"{seed}:{index}:{attempt}".encode()).digest()
        paddle = LOWEST + int.from_bytes(digest[:8], "big") % SPACE
        if paddle not in taken:
            return paddle
    # Dense tables: walk on from the last draw so a free number is always found.
    for step in range(SPACE):
        candidate = LOWEST + (paddle - LOWEST + step) % SPACE
        if candidate not in taken:
            return candidate
    raise ValueError("all paddle numbers are taken")
