"""Progress log, percentiles and CPU accounting of the benchmark (see ``bid_latency.py``)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable
from typing import Any

# Sibling module: bid_latency.py is run as a script, so this directory is on sys.path.
from _common import perf

T0 = perf()


def log(text: str) -> None:
    print(f"[{perf() - T0:7.1f}s] {text}", file=sys.stderr, flush=True)


# ====================================================================== statistics
def pct(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def summary_ms(values_s: Iterable[float]) -> dict[str, Any]:
    v = sorted(values_s)
    if not v:
        return {"n": 0}
    return {"n": len(v), "p50": r3(pct(v, 50) * 1e3), "p90": r3(pct(v, 90) * 1e3),
            "p99": r3(pct(v, 99) * 1e3), "p999": r3(pct(v, 99.9) * 1e3),
            "max": r3(v[-1] * 1e3), "mean": r3(sum(v) / len(v) * 1e3)}


def r3(x: float) -> float:
    return round(x, 3)


def ratio(a: Any, b: Any) -> float | None:
    if not isinstance(a, int | float) or not isinstance(b, int | float) or not b:
        return None
    return round(a / b, 2)


# ====================================================================== CPU accounting
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _ticks(stat_path: str) -> int:
    with open(stat_path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


class CpuMeter:
    """CPU seconds of the client (this process) and of a server process, per thread kind."""

    def __init__(self, server_pid: int | None) -> None:
        self.pid = server_pid

    def sample(self) -> dict[str, float]:
        out = {"wall": perf(), "client": _ticks("/proc/self/stat") / CLK_TCK}
        with contextlib.suppress(OSError), open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
            # user nice system idle iowait irq softirq steal
            out["box_busy"] = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK_TCK
            out["box_steal"] = v[7] / CLK_TCK
        if self.pid is not None:
            with contextlib.suppress(OSError):
                total = _ticks(f"/proc/{self.pid}/stat")
                main = _ticks(f"/proc/{self.pid}/task/{self.pid}/stat")
                out["server"] = total / CLK_TCK
                out["server_loop"] = main / CLK_TCK
        return out

    @staticmethod
    def cores(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
        wall = max(b["wall"] - a["wall"], 1e-9)
        out = {"client_cores": r3((b["client"] - a["client"]) / wall)}
        if "server" in a and "server" in b:
            out["server_cores"] = r3((b["server"] - a["server"]) / wall)
            out["server_event_loop_thread_cores"] = r3((b["server_loop"] - a["server_loop"])
                                                       / wall)
            out["server_other_threads_cores"] = r3(out["server_cores"]
                                                   - out["server_event_loop_thread_cores"])
        if "box_busy" in a and "box_busy" in b:
            busy = (b["box_busy"] - a["box_busy"]) / wall
            out["box_busy_cores"] = r3(busy)
            out["other_processes_cores"] = r3(max(0.0, busy - out["client_cores"]
                                                  - out.get("server_cores", 0.0)))
            out["steal_cores"] = r3((b["box_steal"] - a["box_steal"]) / wall)
        return out


def target_row(name: str, measured: Any, limit: float, higher_is_better: bool, source: str,
               informational: bool = False) -> dict[str, Any]:
    """One row of a report's ``targets``: the figure, its bound and whether it passes
    (``None`` when the figure is missing)."""
    ok = None
    if isinstance(measured, int | float):
        ok = measured >= limit if higher_is_better else measured <= limit
    return {"name": name, "target": (">= " if higher_is_better else "<= ") + str(limit),
            "measured": measured, "pass": ok, "source": source,
            **({"informational": True} if informational else {})}
