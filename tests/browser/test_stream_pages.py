"""Live video in Chromium against a real server: the host page publishes Chromium's fake
camera by WHIP, the public board plays it by WHEP (frames counted in the page), the host
stops and the board waits again. The tender pages carry the same panels. Screenshots go to
test-artifacts/.
"""
# The pages speak Chinese, whose punctuation is full-width.

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from clients.python import StaffClient
from server.clock import now_ms
from server.config import Settings
from tests.conftest import Running, lot_fields, start_server, stop_server

from .conftest import PHONE, Pages, snap

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]
expect.set_options(timeout=8000)
LIVE_WAIT = 20_000  # ms: camera, ICE and DTLS on a busy two-core box

# Every peer connection a page makes, for its statistics.
KEEP_PEERS = """(() => {
  const Native = window.RTCPeerConnection;
  window.__peers = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); window.__peers.push(this); }
  };
})()"""

# The codec of the last connection's video RTP, as "video/H264 <fmtp>".
VIDEO_CODEC = """async (direction) => {
  const stats = await window.__peers.at(-1).getStats();
  let rtp = null;
  stats.forEach((s) => { if (s.type === direction && s.kind === 'video') rtp = s; });
  const codec = rtp && stats.get(rtp.codecId);
  return codec ? `${codec.mimeType} ${codec.sdpFmtpLine ?? ''}` : null;
}"""

# Resolves with the number of frames shown once 30 were, rejects after 15 s.
FRAMES = """(video) => new Promise((resolve, reject) => {
  let shown = 0;
  const timer = setTimeout(() => reject(new Error(`only ${shown} frames`)), 15000);
  const tick = () => {
    shown += 1;
    if (shown >= 30) { clearTimeout(timer); resolve(shown); }
    else video.requestVideoFrameCallback(tick);
  };
  video.requestVideoFrameCallback(tick);
})"""

WIDE = "document.documentElement.scrollWidth"


async def stream_state(staff: StaffClient, kind: str, session: str) -> dict[str, Any]:
    state: dict[str, Any] = await staff.call("GET", f"/api/streams/{kind}/{session}")
    return state


async def test_the_host_goes_live_and_the_board_plays_it(server: Running, staff: StaffClient,
                                                        pages: Pages) -> None:
    title = "苏地2026-WG-18号 工业园区湖东地块"
    await staff.create_lot(**lot_fields(lot_id="L-LIVE", title=title))
    ctx = await pages.context()
    await ctx.add_init_script(KEEP_PEERS)
    board = await pages.open(f"{server.base_url}/board/L-LIVE", ctx=ctx)
    b = board.page
    await expect(b.locator("#stream-state")).to_have_text("直播未开始")
    await expect(b.locator("#stream-idle-text")).to_have_text(
        "主持人开始直播后，现场画面将在此播放。")

    host = await pages.open(
        f"{server.base_url}/stream/lot/L-LIVE/host#token={server.staff_token}", ctx=ctx)
    h = host.page
    assert "token" not in h.url
    await expect(h.locator("#session-title")).to_have_text(title)
    await expect(h.locator("#public-link")).to_have_attribute("href", "/board/L-LIVE")
    await expect(h.locator("#stream-stop")).to_be_disabled()
    await h.locator("#stream-start").click()
    await expect(h.locator("#stream-state")).to_have_text("直播中", timeout=LIVE_WAIT)
    await expect(h.locator("#stream-start")).to_be_disabled()
    assert (await stream_state(staff, "lot", "L-LIVE"))["live"] is True
    # The publisher sends H.264: constrained baseline, the first of its offer.
    sent = await h.evaluate(VIDEO_CODEC, "outbound-rtp")
    assert sent is not None and sent.startswith("video/H264"), sent
    assert "profile-level-id=42e01f" in sent and "packetization-mode=1" in sent, sent

    # The board plays it: frames arrive and have a size.
    await expect(b.locator("#stream-state")).to_have_text("直播中", timeout=LIVE_WAIT)
    video = b.locator("#stream-video")
    assert await video.evaluate(FRAMES) >= 30
    assert await video.evaluate("(v) => v.videoWidth") > 0
    decoded = await video.evaluate("(v) => v.getVideoPlaybackQuality().totalVideoFrames")
    assert decoded >= 30
    assert await video.evaluate("(v) => v.muted && !v.paused && v.controls")
    received = await b.evaluate(VIDEO_CODEC, "inbound-rtp")
    assert received is not None and received.startswith("video/H264"), received
    await expect(b.locator("#stream-idle")).to_be_hidden()
    await expect(b.locator("#stream-viewers")).to_have_text("1 人观看")
    assert (await stream_state(staff, "lot", "L-LIVE"))["viewers"] == 1
    await snap(b, "stream-board-live")
    await snap(h, "stream-host-live")

    await b.locator("#lang-switch").click()
    await expect(b.locator("#stream-state")).to_have_text("Live")
    await expect(b.locator("#stream-viewers")).to_have_text("1 watching")
    await b.locator("#lang-switch").click()

    # watch() on its own, against a session whose state and WHEP answers the test makes up:
    # first a full relay (503, Retry-After), then a 307 to the live lot's WHEP endpoint.
    probe = await pages.open(f"{server.base_url}/", ctx=ctx, allow=[r"status of 503 "])
    q = probe.page
    live = [True]
    posts: list[str] = []
    await q.route("**/api/streams/lot/L-ELSEWHERE", lambda route: route.fulfill(json={
        "session": "lot:L-ELSEWHERE", "live": live[0], "viewers": 0, "recording": False,
        "whep_url": "/api/streams/lot/L-ELSEWHERE/whep"}))

    async def whep(route: Any) -> None:
        posts.append(route.request.method)
        if len(posts) == 1:
            await route.fulfill(status=503, headers={"Retry-After": "1"}, json={"error": {
                "code": "relay_full", "message": "full"}})
        else:
            await route.fulfill(status=307,
                                headers={"Location": "/api/streams/lot/L-LIVE/whep"})

    await q.route("**/api/streams/lot/L-ELSEWHERE/whep", whep)
    await q.evaluate("""async () => {
      const { watch } = await import('/static/stream.js');
      const video = document.createElement('video');
      document.body.append(video);
      window.__states = [];
      watch(video, '/api/streams/lot/L-ELSEWHERE/whep', { poll: 1000,
        onState: (state, detail) => window.__states.push([state, detail.seconds ?? null]) });
    }""")
    await q.wait_for_function("window.__states.some(([s]) => s === 'live')", timeout=LIVE_WAIT)
    states = await q.evaluate("window.__states")
    assert ["busy", 1] in states, states
    assert posts == ["POST", "POST"]
    assert await q.locator("video").evaluate(FRAMES) >= 30
    assert (await stream_state(staff, "lot", "L-LIVE"))["viewers"] == 2
    live[0] = False  # its session ends: the resource (on the lot it was sent to) is DELETEd
    await q.wait_for_function("window.__states.at(-1)[0] === 'offline'", timeout=LIVE_WAIT)
    assert (await stream_state(staff, "lot", "L-LIVE"))["viewers"] == 1

    # The host stops: the WHIP resource ends, the board waits for the next broadcast.
    await h.locator("#stream-stop").click()
    await expect(h.locator("#stream-state")).to_have_text("直播未开始")
    await expect(h.locator("#stream-feedback")).to_have_text("直播已结束。")
    await expect(h.locator("#stream-start")).to_be_enabled()
    await expect(b.locator("#stream-state")).to_have_text("直播未开始", timeout=LIVE_WAIT)
    await expect(b.locator("#stream-idle")).to_be_visible()
    state = await stream_state(staff, "lot", "L-LIVE")
    assert state["live"] is False and state["viewers"] == 0  # the board ended its resource
    await snap(b, "stream-board-ended")


async def test_with_an_external_sfu_the_board_plays_from_it(settings: Settings,
                                                           tmp_path: Path,
                                                           pages: Pages) -> None:
    # The "SFU" is a second bidhall: the first one sends its WHIP and WHEP there, and its
    # board finds the stream there (GET {S} says external, with the SFU's WHEP URL).
    sfu = await start_server(replace(settings, data_dir=tmp_path / "sfu"))
    hall = await start_server(replace(settings, data_dir=tmp_path / "hall", stream_redirect=(
        sfu.base_url + "/api/streams/{kind}/{id}/{protocol}")))
    ctx = await pages.context()
    try:
        for s in (sfu, hall):
            async with s.staff() as staff:
                await staff.create_lot(**lot_fields(lot_id="L-EXT"))
        async with hall.staff() as staff:
            state = await stream_state(staff, "lot", "L-EXT")
        assert state["external"] is True
        assert state["whep_url"] == sfu.base_url + "/api/streams/lot/L-EXT/whep"

        board = await pages.open(f"{hall.base_url}/board/L-EXT", ctx=ctx,
                                 allow=[r"status of 404 "])
        b = board.page
        # Nobody publishes at the SFU yet: its 404 means "not live yet", polled again.
        await expect(b.locator("#stream-state")).to_have_text("直播未开始", timeout=LIVE_WAIT)
        host = await pages.open(
            f"{sfu.base_url}/stream/lot/L-EXT/host#token={sfu.staff_token}", ctx=ctx)
        await host.page.locator("#stream-start").click()
        await expect(host.page.locator("#stream-state")).to_have_text(
            "直播中", timeout=LIVE_WAIT)
        await expect(b.locator("#stream-state")).to_have_text("直播中", timeout=LIVE_WAIT)
        assert await b.locator("#stream-video").evaluate(FRAMES) >= 30
        async with sfu.staff() as staff:
            assert (await stream_state(staff, "lot", "L-EXT"))["viewers"] == 1
        await host.page.locator("#stream-stop").click()
        await expect(host.page.locator("#stream-state")).to_have_text("直播未开始")
    finally:
        await ctx.close()  # before the servers go: no page tries to reconnect
        await stop_server(hall)
        await stop_server(sfu)


async def test_the_tender_pages_carry_the_video_panels(server: Running, staff: StaffClient,
                                                      pages: Pages) -> None:
    await staff.call("POST", "/api/tenders", {
        "tender_id": "T-LIVE-1", "title": "市政道路改造工程施工",
        "deadline": now_ms() + 3_600_000})
    await staff.call("POST", "/api/tenders/T-LIVE-1/publish")
    public = await pages.open(f"{server.base_url}/tender/T-LIVE-1")
    p = public.page
    await expect(p.locator("#stream-card")).to_be_visible()
    await expect(p.locator("#stream-card h2")).to_have_text("现场直播")
    await expect(p.locator("#stream-state")).to_have_text("直播未开始")
    await snap(p, "stream-tender-public")

    host = await pages.open(
        f"{server.base_url}/tender/T-LIVE-1/host#token={server.staff_token}")
    h = host.page
    await expect(h.locator("#stream-start")).to_have_text("开始直播")
    await expect(h.locator("#stream-start")).to_be_enabled()
    await expect(h.locator("#stream-stop")).to_be_disabled()
    await expect(h.locator("#stream-state")).to_have_text("直播未开始")
    await h.locator("#stream-host").scroll_into_view_if_needed()
    await snap(h, "stream-tender-host")

    # A phone in English: the panels fit without sideways scrolling.
    phone = await pages.context(viewport=PHONE, lang="en", scale=2)
    for name, url in (("stream-tender-public-phone", "/tender/T-LIVE-1"),
                      ("stream-tender-host-phone",
                       f"/tender/T-LIVE-1/host#token={server.staff_token}"),
                      ("stream-host-phone",
                       f"/stream/tender/T-LIVE-1/host#token={server.staff_token}")):
        shot = await pages.open(server.base_url + url, ctx=phone)
        await expect(shot.page.locator("#stream-state")).to_have_text(
            "Not live" if "host" in name else "Not live yet")
        assert await shot.page.evaluate(WIDE) <= PHONE["width"], name
        await snap(shot.page, name, full_page=True)
