"""Configuration from ``BIDHALL_*`` environment variables (see the README's table)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit


class ConfigError(ValueError):
    """A setting has a value bidhall cannot use; the message names the variable."""


def _number(env: dict[str, str], name: str, default: float, low: float, high: float,
            kind: type[int] | type[float]) -> Any:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{name}={raw!r} is not {what}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is outside {low}..{high}")
    return value


def _int(env: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    value: int = _number(env, name, default, low, high, int)
    return value


def _float(env: dict[str, str], name: str, default: float, low: float, high: float) -> float:
    value: float = _number(env, name, default, low, high, float)
    return value


def _urls(env: dict[str, str], name: str, schemes: tuple[str, ...]) -> tuple[str, ...]:
    urls = tuple(u.strip().rstrip("/") for u in env.get(name, "").split(",") if u.strip())
    for url in urls:
        if not url.startswith(schemes):
            raise ConfigError(f"{name}: {url!r} must start with {' or '.join(schemes)}")
    return urls


def _template(url: str) -> str:
    if url and (not url.startswith(("http://", "https://")) or "{protocol}" not in url):
        raise ConfigError("BIDHALL_STREAM_REDIRECT must be an http(s) URL template with "
                          f"{{protocol}} (and usually {{kind}} and {{id}}); got {url!r}")
    return url


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("bidhall-data")
    database_url: str = ""
    redis_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    #: Bid and other frames a connection may send per second (token bucket), and the burst.
    rate: float = 20.0
    burst: int = 40
    #: Frames buffered for one slow connection before it is sent a fresh snapshot instead.
    send_queue: int = 256
    #: Commands one lot writes in one transaction at most (group commit).
    batch_max: int = 512
    #: How long a bidder token stays valid, in seconds.
    token_ttl: int = 30 * 86400
    #: Kernel send buffer per connection, bytes (0: the OS default, which auto-tunes to MiBs).
    sndbuf: int = 128 * 1024
    #: Tune the process's garbage collector for a long-lived server (see server.app).
    gc_tuning: bool = True
    #: PostgreSQL connections per process for reads (the writer has one more).
    db_pool: int = 4
    #: Largest bid file (sealed envelope) an upload may have, bytes.
    max_upload: int = 1 << 30
    #: PEM file of the platform's Ed25519 signing key (default: a key kept in the database).
    signing_key: Path | None = None
    #: WHEP viewers this process relays at most (all sessions together).
    max_viewers: int = 120
    #: Other relay workers' base URLs; a full relay sends new viewers there (307).
    relay_peers: tuple[str, ...] = ()
    #: An external SFU for every WHIP and WHEP request (307): a URL template with
    #: ``{kind}``, ``{id}`` and ``{protocol}`` (whip or whep). Empty: the built-in relay.
    stream_redirect: str = ""
    #: STUN/TURN URLs for the relay's ICE (comma-separated); none by default.
    ice_servers: tuple[str, ...] = ()

    @property
    def database(self) -> str:
        """Where the data lives, for messages: the URL without a password, or the SQLite file."""
        url = self.database_url
        if not url.startswith(("postgresql://", "postgres://")):
            return str(self.sqlite_path)
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def sqlite_path(self) -> Path:
        url = self.database_url
        if url.startswith("sqlite:///"):
            return Path(url.removeprefix("sqlite:///"))
        return self.data_dir / "bidhall.sqlite3"

    def environment(self) -> dict[str, str]:
        """These settings as ``BIDHALL_*`` variables (for worker processes)."""
        env = {
            "BIDHALL_DATA_DIR": str(self.data_dir), "BIDHALL_HOST": self.host,
            "BIDHALL_PORT": str(self.port), "BIDHALL_RATE": str(self.rate),
            "BIDHALL_BURST": str(self.burst), "BIDHALL_SEND_QUEUE": str(self.send_queue),
            "BIDHALL_BATCH_MAX": str(self.batch_max), "BIDHALL_TOKEN_TTL": str(self.token_ttl),
            "BIDHALL_SNDBUF": str(self.sndbuf), "BIDHALL_GC_TUNING": str(int(self.gc_tuning)),
            "BIDHALL_DB_POOL": str(self.db_pool), "BIDHALL_MAX_UPLOAD": str(self.max_upload),
            "BIDHALL_MAX_VIEWERS": str(self.max_viewers),
            "BIDHALL_RELAY_PEERS": ",".join(self.relay_peers),
            "BIDHALL_STREAM_REDIRECT": self.stream_redirect,
            "BIDHALL_ICE_SERVERS": ",".join(self.ice_servers),
        }
        if self.signing_key is not None:
            env["BIDHALL_SIGNING_KEY"] = str(self.signing_key)
        if self.database_url:
            env["BIDHALL_DATABASE_URL"] = self.database_url
        if self.redis_url:
            env["BIDHALL_REDIS_URL"] = self.redis_url
        return env

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Read ``BIDHALL_*`` variables from ``env`` (default: the process environment)."""
        e = dict(os.environ if env is None else env)
        url = e.get("BIDHALL_DATABASE_URL", "")
        if url and not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ConfigError(
                "BIDHALL_DATABASE_URL must start with sqlite:/// or postgresql:// "
                f"(got {url.split(':', 1)[0]!r})")
        values: dict[str, object] = {
            "data_dir": Path(e.get("BIDHALL_DATA_DIR") or "bidhall-data"),
            "database_url": url,
            "redis_url": e.get("BIDHALL_REDIS_URL", ""),
            "host": e.get("BIDHALL_HOST") or "127.0.0.1",
            "port": _int(e, "BIDHALL_PORT", 8000, 0, 65535),
            "rate": _float(e, "BIDHALL_RATE", 20.0, 0.1, 1e6),
            "burst": _int(e, "BIDHALL_BURST", 40, 1, 10**6),
            "send_queue": _int(e, "BIDHALL_SEND_QUEUE", 256, 8, 10**6),
            "batch_max": _int(e, "BIDHALL_BATCH_MAX", 512, 1, 100_000),
            "token_ttl": _int(e, "BIDHALL_TOKEN_TTL", 30 * 86400, 1, 10 * 365 * 86400),
            "sndbuf": _int(e, "BIDHALL_SNDBUF", 128 * 1024, 0, 64 * 1024 * 1024),
            "gc_tuning": _int(e, "BIDHALL_GC_TUNING", 1, 0, 1) == 1,
            "db_pool": _int(e, "BIDHALL_DB_POOL", 4, 1, 100),
            "max_upload": _int(e, "BIDHALL_MAX_UPLOAD", 1 << 30, 1024, 1 << 40),
            "signing_key": Path(e["BIDHALL_SIGNING_KEY"]) if e.get("BIDHALL_SIGNING_KEY")
            else None,
            "max_viewers": _int(e, "BIDHALL_MAX_VIEWERS", 120, 0, 100_000),
            "relay_peers": _urls(e, "BIDHALL_RELAY_PEERS", ("http://", "https://")),
            "stream_redirect": _template(e.get("BIDHALL_STREAM_REDIRECT", "")),
            "ice_servers": _urls(e, "BIDHALL_ICE_SERVERS", ("stun:", "turn:", "turns:")),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
