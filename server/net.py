"""The listening socket and uvicorn settings shared by ``serve``, ``demo`` and the tests.

bidhall binds its socket itself to bound each connection's kernel send buffer
(``BIDHALL_SNDBUF``): left to auto-tuning, Linux grows it to 4 MiB for a watcher
that stops reading, so thousands of stalled tabs could pin gigabytes and the
per-connection event queue (the part that swaps a backlog for a snapshot) would
never notice them. Accepted connections inherit the listener's buffer size.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import uvicorn
from starlette.applications import Starlette
from uvicorn.supervisors import Multiprocess

from .config import Settings


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "host": settings.host,
        "port": settings.port,
        "ws": "websockets-sansio",
        # Frames are small JSON; compressing each one per connection costs more than it saves.
        "ws_per_message_deflate": False,
        "ws_max_size": 64 * 1024,
        "lifespan": "on",
        "log_level": "warning",
        "access_log": False,
    }


def listen(settings: Settings) -> socket.socket:
    """A listening TCP socket on ``settings.host:port`` (port 0: any free port)."""
    infos = socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if settings.sndbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings.sndbuf)
        sock.bind(address)
        sock.listen(4096)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def build(app: Starlette, settings: Settings, sock: socket.socket | None = None
          ) -> tuple[uvicorn.Server, socket.socket]:
    """A uvicorn server for ``app`` and the socket to pass to ``serve(sockets=[...])``."""
    sock = sock or listen(settings)
    return uvicorn.Server(uvicorn.Config(app, **uvicorn_options(settings))), sock


def serve_workers(settings: Settings, workers: int, sock: socket.socket) -> None:
    """Run ``workers`` processes accepting on ``sock``; a worker that dies is replaced.

    Each worker builds its own app from the ``BIDHALL_*`` environment, so the settings
    are exported first; the processes coordinate through Redis like separate machines.
    """
    os.environ.update(settings.environment())
    config = uvicorn.Config("server.app:create_app", factory=True, workers=workers,
                            **uvicorn_options(settings))
    Multiprocess(config, sockets=[sock]).run()


def port_of(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port
