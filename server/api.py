"""The HTTP API: staff administration (Bearer staff token) and public read-only views.

Each operation is one :class:`Op` row in :data:`OPS`; the same table builds the
routes and the OpenAPI document, so they cannot disagree.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auction import (
    PRESETS,
    BidderQualified,
    ChangeIncrement,
    Freeze,
    Lot,
    OpenLot,
    QualifyBidder,
    Refused,
    Resume,
    SetReserve,
    preset,
    rules,
)

from . import api_models as m
from . import codec
from .auth import Credential, Tokens, bearer
from .clock import now_ms
from .config import Settings
from .errors import ServerError
from .lots import Lots
from .sequencer import Answer
from .store import Store

MAX_BODY = 64 * 1024
Auth = Literal["public", "staff", "optional"]


@dataclass(slots=True)
class Ctx:
    request: Request
    state: dict[str, Any]
    body: Any
    staff: Credential | None

    @property
    def lots(self) -> Lots:
        lots: Lots = self.state["lots"]
        return lots

    @property
    def tokens(self) -> Tokens:
        tokens: Tokens = self.state["tokens"]
        return tokens

    def param(self, name: str) -> str:
        value: str = self.request.path_params[name]
        return value


Handler = Callable[[Ctx], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Op:
    method: str
    path: str
    handler: Handler
    summary: str
    auth: Auth
    response: Any
    body: type[msgspec.Struct] | None = None
    status: int = 200
    query: tuple[tuple[str, str], ...] = ()


def _json(status: int, content: Any) -> Response:
    return Response(codec.encode(content), status, media_type="application/json")


async def _decode_body(request: Request, body_type: type[msgspec.Struct] | None) -> Any:
    if body_type is None:
        return None
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise ServerError("frame_too_large", f"request bodies are limited to {MAX_BODY} bytes")
    try:
        return msgspec.json.decode(raw or b"{}", type=body_type)
    except msgspec.ValidationError as exc:
        text = str(exc)
        money = any(f"`$.{name}`" in text for name in m.MONEY_FIELDS)
        raise ServerError("invalid_amount" if money else "bad_message", text) from None
    except msgspec.DecodeError as exc:
        raise ServerError("bad_json", str(exc)) from None


def _staff(request: Request, tokens: Tokens, required: bool) -> Credential | None:
    token = bearer(request.headers.get("authorization"))
    if token is None:
        if required:
            raise ServerError("unauthorized", "send 'Authorization: Bearer <staff token>'")
        return None
    cred = tokens.verify(token, now_ms())
    if cred.role != "staff":
        if required:
            raise ServerError("forbidden", "a staff token is required")
        return None
    return cred


def endpoint(op: Op) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        state: dict[str, Any] = request.scope["state"]
        staff = None if op.auth == "public" else _staff(request, state["tokens"],
                                                        op.auth == "staff")
        ctx = Ctx(request, state, await _decode_body(request, op.body), staff)
        result = await op.handler(ctx)
        return _json(op.status, msgspec.convert(result, op.response, from_attributes=True,
                                                strict=False) if op.response else result)

    run.__name__ = op.handler.__name__
    return run


def _done(answer: Answer) -> m.Accepted:
    if answer.refusal is not None:
        raise answer.refusal
    assert answer.event is not None
    return m.Accepted(ok=True, seq=answer.event.seq)


# ---------------------------------------------------------------------- handlers
async def server_time(ctx: Ctx) -> Any:
    return {"server_time": now_ms()}


async def list_presets(ctx: Ctx) -> Any:
    return {"presets": [{"name": n, "rules": rules(n)} for n in PRESETS]}


def _view(ctx: Ctx, lot: Lot) -> dict[str, Any]:
    view = lot.public_view()
    if ctx.staff is not None:
        view["reserve"] = lot.reserve
    return view


async def list_lots(ctx: Ctx) -> Any:
    return {"lots": [_view(ctx, lot) for lot in ctx.lots.views()]}


async def create_lot(ctx: Ctx) -> Any:
    body: m.CreateLot = ctx.body
    now = now_ms()
    fields = {k: v for k, v in msgspec.structs.asdict(body).items()
              if v is not None and k not in ("title", "preset", "lot_id")}
    fields.setdefault("listing_start", now)
    terms = preset(body.preset, **fields)
    lot_id = body.lot_id or f"lot-{secrets.token_hex(4)}"
    answer = await ctx.lots.open(OpenLot(at=now, lot_id=lot_id, title=body.title, terms=terms,
                                         paddle_seed=secrets.token_hex(16)))
    _done(answer)
    return _view(ctx, ctx.lots.view(lot_id))


async def get_lot(ctx: Ctx) -> Any:
    return _view(ctx, ctx.lots.view(ctx.param("lot_id")))


async def bid_history(ctx: Ctx) -> Any:
    lot_id = ctx.param("lot_id")
    lot = ctx.lots.view(lot_id)
    return {"lot_id": lot_id, "bids": [{"at": a, "paddle": p, "amount": x}
                                       for a, p, x in lot.history]}


async def lot_events(ctx: Ctx) -> Any:
    lot_id = ctx.param("lot_id")
    ctx.lots.view(lot_id)
    since = _query_int(ctx.request, "since", 0)
    limit = _query_int(ctx.request, "limit", 1000, high=10_000)
    store: Store = ctx.state["store"]
    out: list[dict[str, Any]] = []
    if ctx.staff is not None:
        for row in (await store.events(lot_id, since))[:limit]:
            full = msgspec.to_builtins(codec.from_row(row))
            out.append({"kind": row.kind, **full})
    else:
        for row in await store.public_events(lot_id, since, limit):
            body = codec.from_row(row).public()
            assert body is not None
            out.append({"seq": row.pseq, **body})
    nxt = out[-1]["seq"] if out else since
    return {"lot_id": lot_id, "events": out, "next": nxt}


async def lot_result(ctx: Ctx) -> Any:
    result = ctx.lots.view(ctx.param("lot_id")).result()
    if ctx.staff is None:
        result.pop("refunds")
        result.pop("deposit_applied")
    return result


async def list_bidders(ctx: Ctx) -> Any:
    lot = ctx.lots.view(ctx.param("lot_id"))
    return [msgspec.structs.asdict(m.Bidder(b.bidder, b.paddle, b.deposit_ref,
                                            b.last_listing_bid_at))
            for b in lot.bidders.values()]


def _bidder_token(ctx: Ctx, lot_id: str, bidder: str, paddle: int, ttl: int | None
                  ) -> dict[str, Any]:
    settings: Settings = ctx.state["settings"]
    expires = now_ms() + 1000 * (ttl or settings.token_ttl)
    token = ctx.tokens.issue("bidder", bidder, lot_id, expires)
    return {"bidder": bidder, "lot_id": lot_id, "paddle": paddle, "token": token,
            "expires": expires, "hall_url": f"/hall/{quote(lot_id)}#token={token}"}


async def qualify(ctx: Ctx) -> Any:
    body: m.QualifyBidder = ctx.body
    lot_id = ctx.param("lot_id")
    answer = await ctx.lots.submit(lot_id, QualifyBidder(at=now_ms(), bidder=body.bidder,
                                                         deposit_ref=body.deposit_ref))
    _done(answer)
    assert isinstance(answer.event, BidderQualified)  # the owner's answer: the replica may lag
    return _bidder_token(ctx, lot_id, body.bidder, answer.event.paddle, body.token_ttl)


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    token_ttl: int | None = None


async def reissue_token(ctx: Ctx) -> Any:
    lot_id, bidder = ctx.param("lot_id"), ctx.param("bidder")
    found = ctx.lots.view(lot_id).bidders.get(bidder)
    if found is None:
        raise Refused("not_qualified")
    body: TokenRequest = ctx.body
    return _bidder_token(ctx, lot_id, bidder, found.paddle, body.token_ttl)


async def set_reserve(ctx: Ctx) -> Any:
    body: m.SetReserve = ctx.body
    return _done(await ctx.lots.submit(ctx.param("lot_id"),
                                       SetReserve(at=now_ms(), amount=body.amount)))


async def change_increment(ctx: Ctx) -> Any:
    body: m.ChangeIncrement = ctx.body
    return _done(await ctx.lots.submit(ctx.param("lot_id"), ChangeIncrement(
        at=now_ms(), final=body.final, amount=body.amount, reason=body.reason)))


async def freeze(ctx: Ctx) -> Any:
    body: m.Reason = ctx.body
    return _done(await ctx.lots.submit(ctx.param("lot_id"),
                                       Freeze(at=now_ms(), reason=body.reason)))


async def resume(ctx: Ctx) -> Any:
    body: m.Reason = ctx.body
    return _done(await ctx.lots.submit(ctx.param("lot_id"),
                                       Resume(at=now_ms(), reason=body.reason)))


def _query_int(request: Request, name: str, default: int, high: int = 2**53) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) > high:
        raise ServerError("bad_message", f"{name} must be a whole number from 0 to {high}")
    return int(raw)


LOT = "/api/lots/{lot_id}"
OPS: tuple[Op, ...] = (
    Op("GET", "/api/time", server_time, "Server time (ms), for clock sync", "public",
       m.ServerTime),
    Op("GET", "/api/presets", list_presets, "Local rule presets", "public", m.PresetList),
    Op("GET", "/api/lots", list_lots, "Every lot, as the public sees it", "optional", m.LotList),
    Op("POST", "/api/lots", create_lot, "Create a lot from a preset plus overrides", "staff",
       m.LotView, m.CreateLot, 201),
    Op("GET", LOT, get_lot, "One lot, as the public sees it (staff also see the reserve)",
       "optional", m.LotView),
    Op("GET", LOT + "/bids", bid_history, "Every accepted bid (paddles only)", "public",
       m.BidHistory),
    Op("GET", LOT + "/events", lot_events,
       "The lot's record: public events (all events for staff) after `since`", "optional",
       m.EventPage, query=(("since", "seq to start after (default 0)"),
                           ("limit", "most events returned (default 1000)"))),
    Op("GET", LOT + "/result", lot_result,
       "Outcome; staff also get the deposit refund list", "optional", m.LotResult),
    Op("GET", LOT + "/bidders", list_bidders, "Qualified bidders with their paddles", "staff",
       list[m.Bidder]),
    Op("POST", LOT + "/bidders", qualify,
       "Deposit confirmed: qualify a bidder; returns its paddle and token", "staff",
       m.BidderToken, m.QualifyBidder, 201),
    Op("POST", LOT + "/bidders/{bidder}/token", reissue_token,
       "Issue a new token to a qualified bidder", "staff", m.BidderToken, TokenRequest),
    Op("PUT", LOT + "/reserve", set_reserve, "Set the secret reserve (before it locks)",
       "staff", m.Accepted, m.SetReserve),
    Op("POST", LOT + "/increment", change_increment, "Change the increment of a phase",
       "staff", m.Accepted, m.ChangeIncrement),
    Op("POST", LOT + "/freeze", freeze, "Freeze a running lot (system failure)", "staff",
       m.Accepted, m.Reason),
    Op("POST", LOT + "/resume", resume, "Resume a frozen lot", "staff", m.Accepted, m.Reason),
)


def routes(ops: tuple[Op, ...] = OPS) -> list[Route]:
    by_path: dict[str, dict[str, Op]] = {}
    for op in ops:
        by_path.setdefault(op.path, {})[op.method] = op
    out = []
    for path, by_method in by_path.items():
        handlers = {method: endpoint(op) for method, op in by_method.items()}

        async def dispatch(request: Request, handlers: dict[str, Any] = handlers) -> Response:
            response: Response = await handlers[request.method](request)
            return response

        out.append(Route(path, dispatch, methods=list(by_method)))
    return out
