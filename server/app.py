"""The ASGI application: ``uvicorn server.app:create_app --factory`` or ``bidhall serve``.

Everything with a lifetime (store, tokens, hub, lots) is made in the lifespan and
handed to requests as lifespan state; there are no module globals.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from aiortc import RTCIceServer
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from auction import Refused
from opening import Refused as TenderRefused
from streaming import http as stream_http
from streaming.relay import Relay

from . import api, codec, openapi, tender_api, tender_bids, ws
from .auth import Tokens, new_secret
from .bus import InProcessBus
from .cluster import LocalCluster, RedisCluster
from .config import Settings
from .errors import ServerError, describe, http_status
from .hub import Hub
from .lots import Lots
from .pages import Page
from .redis_bus import RedisBus
from .signing import load_signing_key
from .store import StoreError, StoreUnavailable, open_store
from .tender_bids import BidFiles, UploadHooks
from .tenders import Tenders
from .tus import TusServer

log = logging.getLogger("bidhall")

#: Collection thresholds (young, middle, old) once the server runs; CPython's are (700, 10, 10).
GC_THRESHOLDS = (10_000, 10, 10)


def web_dir() -> Path:
    """The browser pages shipped with the package."""
    return Path(str(resources.files("clients") / "web"))


def version() -> str:
    try:
        return metadata.version("bidhall")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def tune_gc() -> None:
    """Fewer, cheaper collections for a server holding thousands of connections.

    With CPython's defaults a full collection walks every live object (about 150 per
    connection) every few seconds under load and pauses the event loop for hundreds of
    milliseconds: the bid ack p99. Objects alive after start-up are frozen out of
    collection, and the young generation is collected less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLDS[0], GC_THRESHOLDS[1], GC_THRESHOLDS[2])


async def load_tokens(store: Any) -> tuple[Tokens, bool]:
    """The platform's token signer, and whether its secret was made just now (first start)."""
    candidate = new_secret()
    secret = await store.setting("token_secret", lambda: candidate)
    return Tokens(secret), secret == candidate


def redis_prefix(tokens: Tokens) -> str:
    """Keys and channels of this deployment in Redis: ``bidhall:<id>``, the id derived from the
    platform secret. Every process on the same database shares it; two deployments sharing
    one Redis (staging and production, two test runs) never see each other's leases or events.
    """
    return f"bidhall:{tokens.fingerprint('redis')}"


async def staff_token(settings: Settings) -> str:
    """The staff token of the platform in ``settings``' store (its secret is made at first use)."""
    store = open_store(settings)
    await store.start()
    try:
        tokens, _ = await load_tokens(store)
        return tokens.staff()
    finally:
        await store.close()


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        store = open_store(settings)
        await store.start()
        tokens, first = await load_tokens(store)
        if first:
            print("bidhall: first start. Staff token (print it again with `bidhall staff-token`):\n"
                  f"  {tokens.staff()}", file=sys.stderr, flush=True)
        hub = Hub(store)
        cluster: LocalCluster | RedisCluster
        bus: InProcessBus | RedisBus
        if settings.redis_url:
            prefix = redis_prefix(tokens)
            cluster = RedisCluster(settings.redis_url, prefix=prefix)
            bus = RedisBus(settings.redis_url, cluster.node, channel=f"{prefix}:events",
                           on_reconnect=hub.catch_up_all, on_session=hub.end_session)
        else:
            cluster, bus = LocalCluster(), InProcessBus()
        bus.subscribe(hub.dispatch)
        hub.on_claim = bus.announce_session
        book = Tenders(store, notify=getattr(bus, "announce_tender", None))
        if isinstance(bus, RedisBus):
            bus.on_tender = book.notice
        await bus.start()
        lots = Lots(store, hub, bus, cluster=cluster, batch_max=settings.batch_max)
        await lots.start()
        await book.start()
        signing_key = await load_signing_key(store, settings.signing_key)
        bid_files = BidFiles(settings.data_dir / "tenders")
        upload_hooks.target = UploadHooks(book, bid_files, signing_key)
        book.on_events.append(tender_bids.archiver(book, bid_files, signing_key))
        await tender_bids.settle_released(book, bid_files)
        relay = Relay(max_viewers=settings.max_viewers,
                      ice_servers=[RTCIceServer(url) for url in settings.ice_servers])
        if settings.gc_tuning:
            tune_gc()
        try:
            yield {"settings": settings, "store": store, "tokens": tokens, "hub": hub,
                   "lots": lots, "tenders": book, "signing_key": signing_key,
                   "bid_files": bid_files, "relay": relay}
        finally:
            await relay.close()
            await uploads.close()
            await book.stop()
            await lots.stop()
            await bus.close()
            await store.close()

    upload_hooks = _Hooks()
    uploads = TusServer(settings.data_dir / "uploads", upload_hooks,
                        max_size=settings.max_upload)

    web = web_dir()

    def page(name: str) -> Any:
        return Page(web, name).serve

    async def openapi_json(request: Request) -> Response:
        return Response(codec.encode(openapi.document(version())), media_type="application/json")

    async def healthz(request: Request) -> Response:
        state = request.scope["state"]
        hub: Hub = state["hub"]
        lots: Lots = state["lots"]
        cluster = lots.cluster
        prefix = cluster.prefix if isinstance(cluster, RedisCluster) else None
        return Response(codec.encode({"ok": True, "node": cluster.node, "redis_prefix": prefix,
                                      "serving": len(lots.ids()), **hub.stats()}),
                        media_type="application/json")

    routes = [
        WebSocketRoute("/ws", ws.endpoint),
        *api.routes(),
        *tender_api.routes(),
        *api.routes(tender_bids.OPS),
        Route(tender_api.T + "/header", tender_bids.header),
        Route(tender_api.T + "/record.{kind}", tender_bids.record_file),
        *uploads.routes(tender_api.T + "/uploads"),
        *stream_http.routes(),
        *api.routes(stream_http.OPS),
        Route("/openapi.json", openapi_json),
        Route("/healthz", healthz),
        Route("/", page("index.html")),
        Route("/hall/{lot_id}", page("hall.html")),
        Route("/board/{lot_id}", page("board.html")),
        Route("/tender/{tender_id}", page("tender.html")),
        Route("/tender/{tender_id}/seal", page("tender-seal.html")),
        Route("/tender/{tender_id}/open", page("tender-open.html")),
        Route("/tender/{tender_id}/host", page("tender-host.html")),
        Route("/stream/{kind}/{session_id}/host", page("stream-host.html")),
        Mount("/static", StaticFiles(directory=web), name="static"),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={
        ServerError: _refusal, Refused: _refusal, TenderRefused: _refusal,
        StoreError: _store_error,
        HTTPException: _http_error,
    })


class _Hooks:
    """The upload hooks, filled in by the lifespan (the routes exist before it runs)."""

    target: UploadHooks | None = None

    def __getattr__(self, name: str) -> Any:
        if self.target is None:
            raise RuntimeError("uploads are not served before the application started")
        return getattr(self.target, name)


async def _refusal(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServerError | Refused | TenderRefused)
    return JSONResponse({"error": describe(exc)}, http_status(exc.code))


async def _store_error(request: Request, exc: Exception) -> Response:
    log.warning("store error on %s: %s", request.url.path, exc)
    error = ServerError("unavailable")
    if not isinstance(exc, StoreUnavailable):
        error = ServerError("unavailable", "the lot changed meanwhile; retry")
    return JSONResponse({"error": describe(error)}, 503, headers={"retry-after": "1"})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "bad_message"}.get(exc.status_code, "bad_message")
    return JSONResponse({"error": {"code": code, "message": str(exc.detail)}}, exc.status_code)
