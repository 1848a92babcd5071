"""WHIP (RFC 9725) and WHEP over HTTP, one publisher and many viewers per lot or tender.

    {S} = /api/streams/{kind}/{session_id}          kind: lot | tender

    POST    {S}/whip            application/sdp offer, Bearer publisher token → 201 + answer
    PATCH   {S}/whip/{res}      application/trickle-ice-sdpfrag → 204
    DELETE  {S}/whip/{res}      → 200
    POST    {S}/whep            application/sdp recvonly offer, no login → 201 + answer
    PATCH   {S}/whep/{res}      → 204;  DELETE → 200;  HEAD → 200 while the viewer is relayed
    OPTIONS on each             → 204 with CORS and Accept-Post / Accept-Patch
    GET     {S}                 the session's state (JSON, public)
    POST    {S}/token           staff: a publisher token for this session (JSON)
    POST    {S}/recording       staff: record to <data dir>/recordings/*.ts; DELETE stops

Refusals are the platform's JSON error body with a stable code. A full relay answers
WHEP with 503 and ``Retry-After``, or 307 to another relay worker when some are
configured; with ``BIDHALL_STREAM_REDIRECT`` every WHIP and WHEP request is sent (307) to
an external SFU. Trickle ICE is supported; ICE restarts are refused (422, as RFC 9725
allows), the client starts a new session instead.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server import codec
from server.api import Ctx, Op
from server.auth import bearer
from server.clock import now_ms
from server.config import Settings
from server.errors import ServerError, describe, http_status

from .relay import Relay, StreamError
from .sdp import SDP, SDPFRAG, SdpError, parse_fragment, parse_offer

S = "/api/streams/{kind}/{session_id}"
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, PATCH, DELETE, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Expose-Headers": "Location, ETag, Accept-Patch, Retry-After, Link",
    "Access-Control-Max-Age": "86400",
}
_rotation = itertools.count()


def _error(exc: ServerError | StreamError, **headers: str) -> Response:
    err = exc if isinstance(exc, ServerError) else ServerError(exc.code, exc.message)
    if isinstance(exc, StreamError) and exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    return Response(codec.encode({"error": describe(err)}), http_status(err.code),
                     {**CORS, **headers}, media_type="application/json")


def session_key(request: Request) -> str:
    """``lot:<id>`` or ``tender:<id>`` of a session that exists; ``unknown_session`` if not."""
    kind, sid = request.path_params["kind"], request.path_params["session_id"]
    state = request.scope["state"]
    try:
        if kind == "lot":
            state["lots"].view(sid)
        elif kind == "tender":
            state["tenders"].get(sid)
        else:
            raise ServerError("unknown_session", "streams belong to a lot or a tender")
    except ServerError as exc:
        raise ServerError("unknown_session", f"no {kind} {sid!r} to stream") from exc
    return f"{kind}:{sid}"


def _publisher(request: Request, key: str) -> None:
    token = bearer(request.headers.get("authorization"))
    if token is None:
        raise ServerError("unauthorized", "send 'Authorization: Bearer <publisher token>' "
                          "(staff issue it: POST .../token)")
    cred = request.scope["state"]["tokens"].verify(token, now_ms())
    if not (cred.role == "staff" or (cred.role == "publisher" and cred.lot == key)):
        raise ServerError("forbidden", "this token may not publish to this session")


async def _body(request: Request, media: str) -> str:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != media:
        raise ServerError("unsupported_media_type", f"send Content-Type: {media}")
    raw = await request.body()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ServerError("bad_sdp", "the body is not UTF-8 text") from None


def _external(request: Request, protocol: str) -> str | None:
    """The external SFU's URL for this session, when BIDHALL_STREAM_REDIRECT is set."""
    settings: Settings = request.scope["state"]["settings"]
    if not settings.stream_redirect:
        return None
    return settings.stream_redirect.format(kind=request.path_params["kind"],
                                           id=request.path_params["session_id"],
                                           protocol=protocol)


def _redirect(request: Request, protocol: str) -> Response | None:
    url = _external(request, protocol)
    if url is None:
        return None
    return Response(status_code=307, headers={**CORS, "Location": url})


def _created(request: Request, protocol: str, resource: str, answer: str) -> Response:
    location = request.url.path.rstrip("/") + "/" + resource
    return Response(answer, 201, {**CORS, "Location": location, "ETag": f'"{resource}"',
                                  "Accept-Patch": SDPFRAG}, media_type=SDP)


async def options(request: Request) -> Response:
    headers = dict(CORS)
    if "resource" in request.path_params:
        headers["Accept-Patch"] = SDPFRAG
    else:
        headers["Accept-Post"] = SDP
    return Response(status_code=204, headers=headers)


async def whip(request: Request) -> Response:
    relay: Relay = request.scope["state"]["relay"]
    try:
        if (moved := _redirect(request, "whip")) is not None:
            return moved
        key = session_key(request)
        _publisher(request, key)
        offer = parse_offer(await _body(request, SDP), sending=True)
        resource, answer = await relay.publish(key, offer)
    except SdpError as exc:
        return _error(ServerError(exc.code, exc.message))
    except (ServerError, StreamError) as exc:
        return _error(exc)
    return _created(request, "whip", resource, answer)


async def whep(request: Request) -> Response:
    state = request.scope["state"]
    relay: Relay = state["relay"]
    settings: Settings = state["settings"]
    try:
        if (moved := _redirect(request, "whep")) is not None:
            return moved
        key = session_key(request)
        offer = parse_offer(await _body(request, SDP), sending=False)
        resource, answer = await relay.watch(key, offer)
    except SdpError as exc:
        return _error(ServerError(exc.code, exc.message))
    except StreamError as exc:
        if exc.code == "relay_full" and settings.relay_peers:
            peer = settings.relay_peers[next(_rotation) % len(settings.relay_peers)]
            return Response(status_code=307, headers={**CORS, "Location": peer + request.url.path})
        return _error(exc)
    except ServerError as exc:
        return _error(exc)
    return _created(request, "whep", resource, answer)


async def resource(request: Request) -> Response:
    """PATCH (trickle), DELETE and HEAD on a WHIP or WHEP resource."""
    relay: Relay = request.scope["state"]["relay"]
    rid = request.path_params["resource"]
    publishing = request.url.path.rstrip("/").rsplit("/", 2)[-2] == "whip"
    try:
        key = f"{request.path_params['kind']}:{request.path_params['session_id']}"
        peer = relay.peer(rid)
        if peer.session.key != key or peer.publisher != publishing:
            raise StreamError("unknown_resource", "no such resource in this session")
        if publishing and request.method != "HEAD":
            _publisher(request, key)
        if request.method == "HEAD":
            return Response(status_code=200, headers=CORS)
        if request.method == "DELETE":
            await relay.stop(rid)
            return Response(status_code=200, headers=CORS)
        match = request.headers.get("if-match")
        if match == "*":
            raise StreamError("ice_restart_unsupported", "ICE restarts are not supported; "
                              "DELETE this resource and POST a new offer")
        if match is not None and match != f'"{rid}"':
            raise StreamError("precondition_failed", "If-Match does not match the ETag")
        fragment = parse_fragment(await _body(request, SDPFRAG))
        await relay.trickle(rid, fragment)
    except SdpError as exc:
        return _error(ServerError(exc.code, exc.message))
    except (ServerError, StreamError) as exc:
        return _error(exc)
    return Response(status_code=204, headers=CORS)


# ---------------------------------------------------------------------- JSON operations
class TokenBody(msgspec.Struct, forbid_unknown_fields=True):
    ttl: int | None = None  # seconds; default one day


async def stream_state(ctx: Ctx) -> Any:
    key = session_key(ctx.request)
    external = _external(ctx.request, "whep")
    if external is not None:
        # The SFU holds the stream: whether it is live is for the player to find out there.
        return {"session": key, "live": None, "viewers": None, "recording": False,
                "external": True, "whep_url": external}
    relay: Relay = ctx.state["relay"]
    session = relay.sessions.get(key)
    return {"session": key, "live": relay.live(key),
            "viewers": len(session.viewers) if session else 0,
            "recording": session is not None and session.recorder is not None,
            "external": False, "whep_url": ctx.request.url.path + "/whep"}


async def publisher_token(ctx: Ctx) -> Any:
    key = session_key(ctx.request)
    body: TokenBody = ctx.body
    ttl = body.ttl if body.ttl is not None else 86400
    if not 60 <= ttl <= 30 * 86400:
        raise ServerError("bad_message", "ttl must be 60 s to 30 days")
    expires = now_ms() + ttl * 1000
    token = ctx.tokens.issue("publisher", key, lot=key, expires=expires)
    return {"session": key, "token": token, "expires": expires,
            "whip_url": ctx.request.url.path.rsplit("/", 1)[0] + "/whip"}


async def start_recording(ctx: Ctx) -> Any:
    key = session_key(ctx.request)
    settings: Settings = ctx.state["settings"]
    relay: Relay = ctx.state["relay"]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = settings.data_dir / "recordings" / f"{key.replace(':', '-')}-{stamp}.ts"
    try:
        relay.record(key, path)
    except StreamError as exc:
        raise ServerError(exc.code, exc.message) from None
    return {"session": key, "recording": True, "file": str(path)}


async def stop_recording(ctx: Ctx) -> Any:
    key = session_key(ctx.request)
    relay: Relay = ctx.state["relay"]
    recorder = relay.stop_recording(key)
    if recorder is None:
        raise ServerError("not_recording")
    return {"session": key, "recording": False, "file": str(recorder.path),
            "frames": recorder.frames}


OPS: tuple[Op, ...] = (
    Op("GET", S, stream_state, "A session's stream: live or not, viewers, the WHEP URL",
       "public", dict[str, Any]),
    Op("POST", S + "/token", publisher_token, "A publisher (WHIP) token for this session",
       "staff", dict[str, Any], TokenBody, 201),
    Op("POST", S + "/recording", start_recording, "Record the session to an MPEG-TS file in "
       "the data directory, as received (no re-encoding)", "staff", dict[str, Any]),
    Op("DELETE", S + "/recording", stop_recording, "Stop recording the session", "staff",
       dict[str, Any]),
)


def routes() -> list[Route]:
    return [
        Route(S + "/whip", whip, methods=["POST"]),
        Route(S + "/whep", whep, methods=["POST"]),
        Route(S + "/whip", options, methods=["OPTIONS"]),
        Route(S + "/whep", options, methods=["OPTIONS"]),
        Route(S + "/whip/{resource}", resource, methods=["PATCH", "DELETE"]),
        Route(S + "/whep/{resource}", resource, methods=["PATCH", "DELETE", "HEAD"]),
        Route(S + "/whip/{resource}", options, methods=["OPTIONS"]),
        Route(S + "/whep/{resource}", options, methods=["OPTIONS"]),
    ]
