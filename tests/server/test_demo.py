"""``bidhall demo``: a lot in its timed phase with bots bidding; a restart keeps the data."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


async def start_demo(data: Path) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "demo", "--port", "0",
                             "--data-dir", str(data)], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stderr is not None
    lines: list[str] = []
    loop = asyncio.get_running_loop()
    while not any("Public board" in line for line in lines):
        line = await asyncio.wait_for(loop.run_in_executor(None, proc.stderr.readline), 30)
        assert line, "demo exited: " + "".join(lines)
        lines.append(line)
    text = "".join(lines)
    hall = re.search(r"(http://\S+/hall/\S+)", text)
    board = re.search(r"(http://\S+/board/\S+)", text)
    assert hall and board, text
    return proc, hall.group(1), board.group(1)


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


async def test_demo_runs_a_timed_lot_with_bots_and_keeps_its_data(tmp_path: Path) -> None:
    data = tmp_path / "demo-data"
    proc, hall, board = await start_demo(data)
    try:
        base = board.split("/board/")[0]
        lot_id = board.rsplit("/", 1)[1]
        assert "#token=bh1." in hall
        async with httpx.AsyncClient(base_url=base) as http:
            assert (await http.get(f"/board/{lot_id}")).status_code == 200
            assert (await http.get(hall.split("#")[0].replace(base, ""))).status_code == 200
            lot = (await http.get(f"/api/lots/{lot_id}")).json()
            for _ in range(100):
                if lot["phase"] == "timed" and lot["bid_count"] >= 2:
                    break
                await asyncio.sleep(0.2)
                lot = (await http.get(f"/api/lots/{lot_id}")).json()
            assert lot["phase"] == "timed" and lot["bid_count"] >= 2, lot
            seen = lot["bid_count"]
    finally:
        stop(proc)
    assert (data / "bidhall.sqlite3").exists()

    proc, hall_again, board_again = await start_demo(data)
    try:
        assert board_again.rsplit("/", 1)[1] == lot_id, "the running demo lot is picked up"
        assert "#token=bh1." in hall_again, "with a fresh token for the demo bidder"
        base = board_again.split("/board/")[0]
        async with httpx.AsyncClient(base_url=base) as http:
            lot = (await http.get(f"/api/lots/{lot_id}")).json()
            assert lot["bid_count"] >= seen, "bids placed before the restart are still there"
    finally:
        stop(proc)
