"""The benchmarks in loadtest/bench/ are scripts: each one starts and describes its options.

Running them is the ops staff's job (they take minutes and load the box); this only catches
a script that no longer imports or parses its arguments.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "loadtest" / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if not p.name.startswith("_"))


def test_every_benchmark_is_listed() -> None:
    assert {"bid_latency.py", "opening.py", "pg_cluster.py", "stream_relay.py",
            "tus_upload.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_starts(script: str) -> None:
    done = subprocess.run([sys.executable, str(BENCH / script), "--help"], cwd=BENCH,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
