"""The benchmark's surroundings: server subprocesses, setup HTTP, the box and its limits.

Also the SQLite commit floor (the cost of durability on this filesystem) and the
environment recorded in the report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any

import msgspec

# Sibling modules: bid_latency.py is run as a script, so this directory is on sys.path.
from _common import REPO, perf
from _stats import T0, CpuMeter, log, summary_ms


# ====================================================================== subprocesses
class Servers:
    """Subprocesses started by the benchmark; all of them are ended on the way out."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        logf = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=str(REPO),
                                start_new_session=True)
        logf.close()
        self.procs.append(proc)
        log(f"started {name} (pid {proc.pid}): {' '.join(cmd)}")
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(5)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.procs):
            try:
                self.stop(proc, timeout=5)
            except Exception as exc:  # keep going: end every process
                log(f"could not stop pid {proc.pid}: {exc}")

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.tmp / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def run_bench(go: Callable[[], Coroutine[Any, Any, dict[str, Any]]], servers: Servers,
              tmp: Path, *, keep_tmp: bool, logs: Iterable[str],
              cleanup: Callable[[], None] | None = None) -> int:
    """Run a benchmark's coroutine (on uvloop when installed) and print its JSON report.

    SIGTERM and Ctrl+C end it cleanly (exit 130); on an error the named server logs' tails
    are shown. The servers are stopped, ``cleanup`` run and ``tmp`` removed in any case.
    """
    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started ignoring it
    runner: Callable[[Coroutine[Any, Any, dict[str, Any]]], dict[str, Any]] = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop
        runner = uvloop.run
    try:
        report = runner(go())
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    except Exception:
        for name in logs:
            tail = servers.tail(name)
            if tail:
                log(f"--- {name} log tail ---\n{tail}")
        raise
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the cleanup finish
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        servers.stop_all()
        if cleanup is not None:
            cleanup()
        if keep_tmp:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    json.dump(report, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    done = f"done in {perf() - T0:.0f}s"
    if "all_targets_pass" in report:
        done += f"; all targets pass: {report['all_targets_pass']}"
    log(done)
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = perf() + timeout
    while perf() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server pid {proc.pid} exited with {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"nothing listening on port {port} after {timeout}s")


def bin_command(name: str, module: str) -> list[str]:
    script = Path(sys.executable).parent / name
    return [str(script)] if script.exists() else [sys.executable, "-m", module]


# ====================================================================== lean HTTP for setup
class RawHttp:
    """A pool of HTTP/1.1 keep-alive connections for the staff API during setup.

    ``clients.python.StaffClient`` (httpx) costs ~1.5 ms of client CPU per request,
    which made qualifying 4,000 bidders take ~10 s; this costs a fraction of that.
    """

    def __init__(self, port: int, token: str, size: int) -> None:
        self.port, self.size = port, size
        self.auth = token.encode()
        self.pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue())
        self.conns: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> RawHttp:
        for _ in range(self.size):
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.conns.append(writer)
            self.pool.put_nowait((reader, writer))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in self.conns:
            writer.close()

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        reader, writer = await self.pool.get()
        try:
            data = msgspec.json.encode(body)
            writer.write(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s"
                         % (path.encode(), self.auth, len(data), data))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            payload = await reader.readexactly(length)
        finally:
            self.pool.put_nowait((reader, writer))
        answer = msgspec.json.decode(payload) if payload else None
        if status >= 400:
            raise RuntimeError(f"POST {path} -> {status}: {answer}")
        return answer


# ====================================================================== SQLite floor
def sqlite_commit_floor(directory: Path, commits: int = 300) -> dict[str, Any]:
    """One small row per transaction in WAL + synchronous=FULL: the cost of durability."""
    path = directory / "floor.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        body = "x" * 200
        times = []
        for _ in range(commits):
            t = perf()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (body) VALUES (?)", (body,))
            conn.execute("COMMIT")
            times.append(perf() - t)
    finally:
        conn.close()
    return {"commits": commits, "commit_ms": summary_ms(times),
            "what": "one 200-byte row per transaction, WAL, synchronous=FULL, same filesystem"}


# ====================================================================== py-spy
def make_pyspy(args: argparse.Namespace, pid: int, tag: str
               ) -> Callable[[str, float], Any] | None:
    """With ``--py-spy DIR``: a flame graph of the server during each saturation run."""
    if not args.py_spy:
        return None
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        log("--py-spy given but py-spy is not installed; no profiles")
        return None
    outdir = Path(args.py_spy)
    outdir.mkdir(parents=True, exist_ok=True)

    def start(label: str, seconds: float) -> Any:
        name = label.replace(" ", "_").replace("=", "")
        ext = {"flamegraph": "svg", "raw": "txt", "speedscope": "json"}[args.py_spy_format]
        cmd = [exe, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
               "--rate", "200", "--nonblocking", "--threads", "--format", args.py_spy_format,
               "-o", str(outdir / f"{name}.{ext}")]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        async def wait() -> None:
            await asyncio.to_thread(proc.wait, 30)

        return wait()

    return start


# ====================================================================== the box
def raise_fd_limit(wanted: int = 65536) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def wait_for_quiet(limit_s: float, threshold: float = 0.3) -> float:
    """Wait (at most ``limit_s``) until other processes use < ``threshold`` cores; returns
    the last reading. The box may be shared; each run reports what others used anyway."""
    meter = CpuMeter(None)
    deadline = perf() + limit_s
    while True:
        a = meter.sample()
        await asyncio.sleep(1.0)
        other = CpuMeter.cores(a, meter.sample()).get("other_processes_cores", 0.0)
        if other < threshold or perf() >= deadline:
            return other
        log(f"other processes use {other} cores; waiting for a quieter box "
            f"(up to {deadline - perf():.0f}s more)")


# ====================================================================== environment
SERVER_PACKAGES = ("uvicorn", "starlette", "websockets", "msgspec", "uvloop", "httptools")


def environment(packages: tuple[str, ...] = SERVER_PACKAGES) -> dict[str, Any]:
    """The box, the commit and the versions of ``packages``, for a report."""
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True,
                                  timeout=10).stdout.rstrip("\n")
        except Exception:
            return ""

    versions = {}
    for mod in packages:
        with contextlib.suppress(Exception):
            from importlib.metadata import version
            versions[mod] = version(mod)
    return {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": git("rev-parse", "HEAD"),
        "worktree_changes": git("status", "--porcelain", "--untracked-files=no",
                                "--", "server", "auction", "pyproject.toml").splitlines(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "packages": versions,
        "client_event_loop": type(asyncio.get_running_loop()).__module__,
        "tmpdir": tempfile.gettempdir(),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()
