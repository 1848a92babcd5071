"""The ``bidhall`` command.

    bidhall serve [--host H] [--port P] [--data-dir D]   run the server
    bidhall demo  [--host H] [--port P] [--data-dir D]   run the server with a live demo lot
    bidhall staff-token [--data-dir D]                   print the staff token again
    bidhall migrate [--check]                            apply PostgreSQL migrations
    bidhall version
    bidhall keygen | seal | open | receipt verify       sealed bids (see bidhall keygen --help)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from pathlib import Path
from typing import Any

from .config import ConfigError, Settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    return Settings.from_env(**overrides)


def _serve(args: argparse.Namespace) -> int:
    from .app import create_app
    from .net import build, listen, port_of, serve_workers

    settings = _settings(args)
    if args.workers > 1 and not settings.redis_url:
        print("bidhall: --workers needs BIDHALL_REDIS_URL (the processes share lots through "
              "Redis) and, for more than a few lots, BIDHALL_DATABASE_URL=postgresql://...",
              file=sys.stderr)
        return 2
    try:
        sock = listen(settings)
    except OSError as exc:
        print(f"bidhall: cannot listen on {settings.host}:{settings.port}: {exc}",
              file=sys.stderr)
        return 1
    print(f"bidhall serving on http://{settings.host}:{port_of(sock)} with {args.workers} "
          f"process{'es' if args.workers > 1 else ''} (data: {settings.database})",
          file=sys.stderr, flush=True)
    if args.workers > 1:
        serve_workers(settings, args.workers, sock)
    else:
        server, _ = build(create_app(settings), settings, sock=sock)
        # uvicorn shuts down gracefully on Ctrl+C, then re-raises it: nothing left to report.
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_demo(_settings(args), bots=args.bots))
    return 0


def _staff_token(args: argparse.Namespace) -> int:
    from .app import staff_token

    print(asyncio.run(staff_token(_settings(args))))
    return 0


def _migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not settings.database_url.startswith(("postgresql://", "postgres://")):
        print("bidhall: nothing to migrate: SQLite creates its schema when it opens "
              f"({settings.database})")
        return 0
    from .store.migrate import migrate, pending

    async def run() -> list[str]:
        if args.check:
            return await pending(settings.database_url)
        return await migrate(settings.database_url)

    try:
        versions = asyncio.run(run())
    except Exception as exc:  # OSError, or asyncpg's own tree: report any of them
        print(f"bidhall: cannot migrate {settings.database}: {exc}", file=sys.stderr)
        return 1
    if args.check:
        print("pending: " + (", ".join(versions) or "none"))
        return 1 if versions else 0
    print(f"applied: {', '.join(versions) or 'none (up to date)'}")
    return 0


def _version(args: argparse.Namespace) -> int:
    from .app import version

    print(f"bidhall {version()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bidhall", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def server_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", help="address to listen on (BIDHALL_HOST, default 127.0.0.1)")
        p.add_argument("--port", type=int, help="port (BIDHALL_PORT, default 8000)")
        p.add_argument("--data-dir",
                       help="data directory (BIDHALL_DATA_DIR, default ./bidhall-data)")

    serve = commands.add_parser("serve", help="run the server")
    server_options(serve)
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="processes sharing the port (needs BIDHALL_REDIS_URL; default 1)")
    serve.set_defaults(run=_serve)
    demo = commands.add_parser("demo", help="run the server with a live demo lot and bots")
    server_options(demo)
    demo.add_argument("--bots", type=int, default=4, help="simulated bidders (default 4)")
    demo.set_defaults(run=_demo)
    token = commands.add_parser("staff-token", help="print the staff token")
    token.add_argument("--data-dir", help="data directory (default ./bidhall-data)")
    token.set_defaults(run=_staff_token)
    migrate = commands.add_parser("migrate", help="apply PostgreSQL schema migrations")
    migrate.add_argument("--check", action="store_true",
                         help="only list pending migrations (exit 1 if any)")
    migrate.set_defaults(run=_migrate)
    commands.add_parser("version", help="print the version").set_defaults(run=_version)
    from .cli_sealing import add_commands

    add_commands(commands)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the demo's own API calls
    try:
        code: int = args.run(args)
    except ConfigError as exc:
        print(f"bidhall: configuration error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
