"""The HTTP API of sealed-bid tenders (``/api/tenders``): staff, bidders and the public.

Handlers hold no rules: each turns a request into an ``opening`` command, submits it to
:class:`~server.tenders.Tenders` and answers with the decision, or with the refusal
and its stable code. Uploads (tus), receipts, the key release and decryption live in
:mod:`server.tender_bids`, the record in :mod:`server.record`.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from opening import Answer as AnswerObjection
from opening import (
    CheckIn,
    Close,
    Confirm,
    CreateTender,
    Decision,
    DeclareFailed,
    Object,
    OpenObjections,
    Pause,
    Publish,
    RegisterBidder,
    Resume,
    Start,
    TenderTerms,
    WithdrawBid,
)
from opening.keys import fingerprint, load_public

from .api import Ctx, Op
from .api import routes as api_routes
from .auth import Credential, bearer
from .clock import now_ms
from .config import Settings
from .errors import ServerError
from .tenders import Tenders

T = "/api/tenders/{tender_id}"
#: Seconds between SSE keep-alive comments (proxies close idle streams).
KEEPALIVE = 15.0
Json = dict[str, Any]


# ---------------------------------------------------------------------- bodies
class CreateTenderBody(msgspec.Struct, forbid_unknown_fields=True):
    tender_id: str
    title: str
    deadline: int
    check_in_from: int | None = None
    decrypt_window: int | None = None
    objection_window: int | None = None
    min_bids: int | None = None
    ceiling: str | None = None
    budget: str | None = None
    warn_over_budget_pct: int | None = None


class InviteBody(msgspec.Struct, forbid_unknown_fields=True):
    bidder: str
    token_ttl: int | None = None


class KeyBody(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    public_key: str


class ReasonBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: str = ""


class TextBody(msgspec.Struct, forbid_unknown_fields=True):
    text: str


# ---------------------------------------------------------------------- helpers
def tenders(ctx: Ctx | Request) -> Tenders:
    state = ctx.state if isinstance(ctx, Ctx) else ctx.scope["state"]
    found: Tenders = state["tenders"]
    return found


def bidder_of(request: Request, tender_id: str, *, required: bool = True) -> str | None:
    """The bidder a tender token names, checked against this tender."""
    token = bearer(request.headers.get("authorization"))
    if token is None:
        if required:
            raise ServerError("unauthorized", "send 'Authorization: Bearer <bidder token>'")
        return None
    cred: Credential = request.scope["state"]["tokens"].verify(token, now_ms())
    if cred.role != "bidder" or cred.lot != f"tender:{tender_id}":
        if required:
            raise ServerError("forbidden", "this token is not a bidder token of this tender")
        return None
    return cred.subject


def done(answer: Decision) -> Json:
    """The command's answer, or its refusal raised (the app turns it into an error body)."""
    if answer.refusal is not None:
        raise answer.refusal
    primary = answer.primary
    return {"ok": True, "seq": primary.seq if primary is not None else None,
            "kind": primary.KIND if primary is not None else None}


def view(ctx: Ctx, tender_id: str) -> Json:
    tender = tenders(ctx).get(tender_id)
    out: Json = tender.staff_view() if ctx.staff is not None else tender.public_view()
    me = bidder_of(ctx.request, tender_id, required=False)
    if me is not None:
        out["me"] = tender.bidder_view(me)
    return out


async def run(ctx: Ctx, command: Any) -> Json:
    return done(await tenders(ctx).submit(ctx.param("tender_id"), command))


# ---------------------------------------------------------------------- staff
async def create_tender(ctx: Ctx) -> Any:
    body: CreateTenderBody = ctx.body
    now = now_ms()
    fields = {k: v for k, v in msgspec.structs.asdict(body).items()
              if v is not None and k not in ("tender_id", "title")}
    fields.setdefault("check_in_from", min(now, body.deadline))
    try:
        terms = TenderTerms(**fields)
    except (TypeError, ValueError) as exc:
        raise ServerError("invalid_terms", str(exc)) from None
    done(await tenders(ctx).create(body.tender_id, CreateTender(
        at=now, tender_id=body.tender_id, title=body.title, terms=terms)))
    return view(ctx, body.tender_id)


async def invite(ctx: Ctx) -> Any:
    """A bidder token for this tender; the bidder registers its own key with it."""
    body: InviteBody = ctx.body
    tender_id = ctx.param("tender_id")
    tenders(ctx).get(tender_id)
    if not body.bidder or len(body.bidder) > 64 or not all(
            c.isascii() and (c.isalnum() or c in "_.-") for c in body.bidder):
        raise ServerError("bad_message", "a bidder id is 1 to 64 letters, digits, '_', '.', '-'")
    settings: Settings = ctx.state["settings"]
    expires = now_ms() + 1000 * (body.token_ttl or settings.token_ttl)
    token = ctx.tokens.issue("bidder", body.bidder, f"tender:{tender_id}", expires)
    path = f"/tender/{quote(tender_id)}"
    return {"tender_id": tender_id, "bidder": body.bidder, "token": token, "expires": expires,
            "seal_url": f"{path}/seal#token={token}", "open_url": f"{path}/open#token={token}"}


async def publish(ctx: Ctx) -> Any:
    return await run(ctx, Publish(at=now_ms()))


async def start(ctx: Ctx) -> Any:
    return await run(ctx, Start(at=now_ms()))


async def pause(ctx: Ctx) -> Any:
    body: ReasonBody = ctx.body
    return await run(ctx, Pause(at=now_ms(), reason=body.reason))


async def resume(ctx: Ctx) -> Any:
    return await run(ctx, Resume(at=now_ms()))


async def open_objections(ctx: Ctx) -> Any:
    return await run(ctx, OpenObjections(at=now_ms()))


async def answer_objection(ctx: Ctx) -> Any:
    body: TextBody = ctx.body
    return await run(ctx, AnswerObjection(at=now_ms(), objection_id=ctx.param("objection_id"),
                                          text=body.text))


async def declare_failed(ctx: Ctx) -> Any:
    body: ReasonBody = ctx.body
    return await run(ctx, DeclareFailed(at=now_ms(), reason=body.reason))


async def close(ctx: Ctx) -> Any:
    return await run(ctx, Close(at=now_ms()))


# ---------------------------------------------------------------------- public
async def list_tenders(ctx: Ctx) -> Any:
    return {"tenders": [tenders(ctx).get(t).public_view() for t in tenders(ctx).ids()]}


async def get_tender(ctx: Ctx) -> Any:
    return view(ctx, ctx.param("tender_id"))


async def tender_events(ctx: Ctx) -> Any:
    tender_id = ctx.param("tender_id")
    raw = ctx.request.query_params.get("since", "0")
    if not raw.isdigit():
        raise ServerError("bad_message", "since must be a whole number")
    if ctx.staff is not None:
        return {"tender_id": tender_id, "events": [
            {"kind": e.KIND, **msgspec.to_builtins(e)}
            for e in tenders(ctx).events(tender_id) if e.seq > int(raw)]}
    return {"tender_id": tender_id, "events": tenders(ctx).public_since(tender_id, int(raw))}


async def live(request: Request) -> Response:
    """Server-Sent Events: the tender's public events; resumes after ``Last-Event-ID``."""
    tender_id = request.path_params["tender_id"]
    book = tenders(request)
    queue = book.watch(tender_id)
    raw = request.headers.get("last-event-id") or request.query_params.get("since") or "0"
    after = int(raw) if raw.isdigit() else 0

    async def stream() -> AsyncIterator[bytes]:
        last = after
        try:
            yield b"retry: 1000\n\n"
            for frame in book.public_since(tender_id, after):
                last = frame["seq"]
                yield _sse(frame)
            while True:
                try:
                    frame = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if frame["seq"] > last:
                    last = frame["seq"]
                    yield _sse(frame)
        finally:
            book.unwatch(tender_id, queue)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


def _sse(frame: Json) -> bytes:
    data = json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
    return f"id: {frame['seq']}\nevent: tender\ndata: {data}\n\n".encode()


async def platform_key(ctx: Ctx) -> Any:
    from .signing import describe

    return describe(ctx.state["signing_key"])


# ---------------------------------------------------------------------- bidders
def _me(ctx: Ctx) -> tuple[str, str]:
    tender_id = ctx.param("tender_id")
    bidder = bidder_of(ctx.request, tender_id)
    assert bidder is not None
    return tender_id, bidder


async def register_key(ctx: Ctx) -> Any:
    body: KeyBody = ctx.body
    _, bidder = _me(ctx)
    try:
        raw = base64.urlsafe_b64decode(body.public_key + "=" * (-len(body.public_key) % 4))
        load_public(raw)
    except Exception:
        raise ServerError("bad_public_key", "public_key must be a P-256 point (65 bytes, "
                          "uncompressed, base64url)") from None
    return await run(ctx, RegisterBidder(at=now_ms(), bidder=bidder, name=body.name,
                                         public_key=body.public_key,
                                         fingerprint=fingerprint(raw)))


async def withdraw(ctx: Ctx) -> Any:
    _, bidder = _me(ctx)
    return await run(ctx, WithdrawBid(at=now_ms(), bidder=bidder))


async def check_in(ctx: Ctx) -> Any:
    _, bidder = _me(ctx)
    return await run(ctx, CheckIn(at=now_ms(), bidder=bidder))


async def raise_objection(ctx: Ctx) -> Any:
    body: TextBody = ctx.body
    _, bidder = _me(ctx)
    objection_id = f"o{len(tenders(ctx).events(ctx.param('tender_id'))) + 1}"
    out = await run(ctx, Object(at=now_ms(), bidder=bidder, objection_id=objection_id,
                                text=body.text))
    return {**out, "objection_id": objection_id}


async def confirm(ctx: Ctx) -> Any:
    _, bidder = _me(ctx)
    return await run(ctx, Confirm(at=now_ms(), bidder=bidder))


OPS: tuple[Op, ...] = (
    Op("GET", "/api/tenders", list_tenders, "Every tender, as the public sees it", "public",
       dict[str, Any]),
    Op("POST", "/api/tenders", create_tender, "Create a tender (draft)", "staff",
       dict[str, Any], CreateTenderBody, 201),
    Op("GET", T, get_tender, "One tender: public view; staff see all; a bidder token adds `me`",
       "optional", dict[str, Any]),
    Op("GET", T + "/events", tender_events, "The tender's public events after `since` "
       "(every event for staff)", "optional", dict[str, Any],
       query=(("since", "public seq (staff: seq) to start after"),)),
    Op("POST", T + "/publish", publish, "Open the tender for bids", "staff", dict[str, Any]),
    Op("POST", T + "/bidders", invite, "A bidder token for this tender (the bidder registers "
       "its own key)", "staff", dict[str, Any], InviteBody, 201),
    Op("PUT", T + "/key", register_key, "Bidder: register the public key made on its side",
       "public", dict[str, Any], KeyBody),
    Op("DELETE", T + "/bid", withdraw, "Bidder: withdraw the bid (before the deadline)",
       "public", dict[str, Any]),
    Op("POST", T + "/check-in", check_in, "Bidder: check in for the opening", "public",
       dict[str, Any]),
    Op("POST", T + "/objections", raise_objection, "Bidder: raise an objection", "public",
       dict[str, Any], TextBody),
    Op("POST", T + "/confirm", confirm, "Bidder: confirm the opening record", "public",
       dict[str, Any]),
    Op("POST", T + "/start", start, "Host: start the opening (publishes the received bids)",
       "staff", dict[str, Any]),
    Op("POST", T + "/pause", pause, "Host: pause the decryption countdown", "staff",
       dict[str, Any], ReasonBody),
    Op("POST", T + "/resume", resume, "Host: resume the decryption countdown", "staff",
       dict[str, Any]),
    Op("POST", T + "/open-objections", open_objections, "Host: open the objection window",
       "staff", dict[str, Any]),
    Op("POST", T + "/objections/{objection_id}/answer", answer_objection,
       "Host: answer an objection", "staff", dict[str, Any], TextBody),
    Op("POST", T + "/fail", declare_failed, "Host: declare the tender failed (流标)", "staff",
       dict[str, Any], ReasonBody),
    Op("POST", T + "/close", close, "Host: close the opening", "staff", dict[str, Any]),
    Op("GET", "/api/platform-key", platform_key, "The platform's Ed25519 public key "
       "(receipts and records)", "public", dict[str, Any]),
)


def routes() -> list[Route]:
    return [Route(T + "/live", live), *api_routes(OPS)]
