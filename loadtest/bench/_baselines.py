"""Bare websocket servers on bidhall's stack, the baselines of ``bid_latency.py``.

    python loadtest/bench/_baselines.py echo --port 9001
    python loadtest/bench/_baselines.py broadcast --port 9002

Both are a Starlette ``WebSocketRoute`` at ``/ws`` served by uvicorn exactly as
``bidhall serve`` serves (:func:`server.net.build`: same listening socket and send
buffer, same uvicorn options: websockets-sansio, no per-message deflate, same max
frame size, same event loop and HTTP parser choice).
They do the least a server can do, so the gap to bidhall is bidhall's own work:

- ``echo``: every text frame is sent straight back on the same connection.
- ``broadcast``: every text frame is sent to every other connected client, one awaited
  send after another from the receiving connection's task (no per-connection queue).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

SUBPROTOCOL = "bidhall.v1"


async def _accept(websocket: WebSocket) -> None:
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)


def echo_app() -> Starlette:
    async def echo(websocket: WebSocket) -> None:
        await _accept(websocket)
        receive, send = websocket.receive, websocket.send
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text")
                if text is not None:
                    await send({"type": "websocket.send", "text": text})
        except (WebSocketDisconnect, OSError):
            return

    return Starlette(routes=[WebSocketRoute("/ws", echo)])


def broadcast_app() -> Starlette:
    clients: set[WebSocket] = set()

    async def broadcast(websocket: WebSocket) -> None:
        await _accept(websocket)
        clients.add(websocket)
        receive = websocket.receive
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text")
                if text is None:
                    continue
                out = {"type": "websocket.send", "text": text}
                for other in list(clients):
                    if other is websocket:
                        continue
                    try:
                        await other.send(out)
                    except Exception:  # a receiver went away meanwhile
                        clients.discard(other)
        except (WebSocketDisconnect, OSError):
            return
        finally:
            clients.discard(websocket)

    return Starlette(routes=[WebSocketRoute("/ws", broadcast)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=("echo", "broadcast"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)

    import importlib

    import uvicorn

    from server.config import Settings

    app = echo_app() if args.kind == "echo" else broadcast_app()
    settings = Settings.from_env(host=args.host, port=args.port)
    try:  # bidhall's own listener (bounded SO_SNDBUF) and uvicorn options, as `bidhall serve`
        net = importlib.import_module("server.net")
    except ImportError:  # older layout: options in server.cli, uvicorn binds the socket
        options: dict[str, Any] = importlib.import_module("server.cli").uvicorn_options(settings)
        print(f"baseline {args.kind} on {args.host}:{args.port} with {options}",
              file=sys.stderr, flush=True)
        uvicorn.run(app, **options)
        return 0
    server, sock = net.build(app, settings)
    print(f"baseline {args.kind} on {args.host}:{args.port} with "
          f"{net.uvicorn_options(settings)}, sndbuf {settings.sndbuf}",
          file=sys.stderr, flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
