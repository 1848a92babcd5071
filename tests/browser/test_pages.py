"""The browser pages, driven in headless Chromium against a real server.

Every page opened here fails its test on a JS error or a console error (see conftest.py).
Screenshots of the states checked go to test-artifacts/ for a human to look at.
"""
# The pages speak Chinese, whose punctuation is full-width (colon, comma, brackets).

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from clients.python import StaffClient
from server.clock import now_ms
from server.config import Settings
from tests.conftest import Running, lot_fields, start_server, stop_server

from .conftest import ARTIFACTS, DESKTOP, PHONE, Pages, snap
from .proxy import Proxy

pytestmark = pytest.mark.browser
expect.set_options(timeout=8000)

README = Path(__file__).resolve().parents[2] / "README.md"


async def open_lot(staff: StaffClient, *bidders: str, **overrides: Any
                   ) -> tuple[str, list[dict[str, Any]]]:
    """A lot in its listing with ``bidders`` qualified: (lot_id, their paddles and tokens)."""
    lot = await staff.create_lot(**lot_fields(**overrides))
    qualified = [await staff.qualify(lot["lot_id"], name, f"REF-{i}")
                 for i, name in enumerate(bidders)]
    return lot["lot_id"], qualified


async def bids_of(staff: StaffClient, lot_id: str) -> list[dict[str, Any]]:
    body: dict[str, Any] = await staff.call("GET", f"/api/lots/{lot_id}/bids")
    return list(body["bids"])


async def test_a_click_in_the_hall_shows_on_the_board(server: Running, staff: StaffClient,
                                                      pages: Pages) -> None:
    lot_id, (me, other) = await open_lot(staff, "竞买人甲", "竞买人乙")
    async with server.live(other["token"]) as rival:
        assert (await rival.bid(lot_id, 1_000_000))["type"] == "ack"

    ctx = await pages.context()
    board = await pages.open(f"{server.base_url}/board/{lot_id}", ctx=ctx)
    hall = await pages.open(server.base_url + me["hall_url"], ctx=ctx)
    h, b = hall.page, board.page

    # The token leaves the address bar at once; the hall shows who I am and the lot.
    assert "token" not in h.url
    await expect(h.locator("#my-paddle")).to_have_text(str(me["paddle"]))
    await expect(h.locator("#conn")).to_have_attribute("data-state", "connected")
    await expect(h.locator("#phase")).to_have_text("挂牌")
    await expect(h.locator("#price")).to_have_text("1,000,000")
    await expect(h.locator("#price-wan")).to_have_text("100 万元")
    await expect(h.locator("#standing")).to_have_text("尚未报价")
    await expect(h.locator("#bid-one-main")).to_have_text("加价一次 +10,000")
    await expect(h.locator("#bid-one-sub")).to_have_text("报价 1,010,000 元")
    await expect(h.locator("#countdown")).to_have_text(re.compile(r"^(59:\d\d|01:00:00)$"))
    await expect(b.locator("#chart circle")).to_have_count(1)

    await h.locator("#bid-one").click()

    await expect(h.locator("#feedback")).to_contain_text("报价成功：1,010,000 元")
    await expect(h.locator("#standing")).to_have_text("当前最高报价")
    await expect(h.locator("#bid-one")).to_be_disabled()
    await expect(h.locator("#bid-disabled")).to_have_text("您是当前最高报价人，无需加价")
    # The board: price, leader, a new history row on top and a new point on the chart.
    await expect(b.locator("#price")).to_have_text("1,010,000")
    await expect(b.locator("#leader")).to_have_text(str(me["paddle"]))
    await expect(b.locator("#bid-count")).to_have_text("2")
    top = b.locator("#history tr").first
    await expect(top).to_have_attribute("data-amount", "1010000")
    await expect(top.locator("td").first).to_have_text(str(me["paddle"]))
    await expect(b.locator("#chart")).to_have_attribute("data-count", "2")
    point = b.locator('#chart circle[data-amount="1010000"]')
    await expect(point).to_have_attribute("data-paddle", str(me["paddle"]))
    await expect(point).to_have_class(re.compile(r"\bnewest\b"))
    # The page sent exactly one bid, of next_min, with a UUID bid id.
    sent = [m for m in hall.sent if m.get("type") == "bid"]
    assert len(sent) == 1 and sent[0]["amount"] == 1_010_000 and sent[0]["lot"] == lot_id
    assert re.fullmatch(r"[0-9a-f-]{36}", sent[0]["bid_id"])
    assert [x["amount"] for x in await bids_of(staff, lot_id)] == [1_000_000, 1_010_000]


async def test_custom_amount_is_confirmed_in_chinese_capitals(server: Running,
                                                              staff: StaffClient,
                                                              pages: Pages) -> None:
    lot_id, (me,) = await open_lot(staff, "竞买人甲", start_price=128_000_000,
                                   listing_increment=500_000)
    hall = await pages.open(server.base_url + me["hall_url"])
    h = hall.page
    await expect(h.locator("#bid-one-main")).to_have_text("按起始价报价")
    field = h.locator("#custom-amount")

    # What the page refuses to send: not a number, below the lowest acceptable bid.
    await field.fill("12.5万")
    await h.locator("#custom-submit").click()
    await expect(h.locator("#custom-error")).to_contain_text("整数金额")
    await field.fill("127,000,000")
    await h.locator("#custom-submit").click()
    await expect(h.locator("#custom-error")).to_have_text(
        "报价不得低于最低可报价 128,000,000 元")
    await expect(h.locator("#confirm-dialog")).not_to_be_visible()

    # Going back from the confirmation sends nothing.
    await field.fill("128500000")
    await expect(h.locator("#custom-preview")).to_contain_text("壹亿贰仟捌佰伍拾万元整")
    await field.press("Enter")
    dialog = h.locator("#confirm-dialog")
    await expect(dialog).to_be_visible()
    await h.locator("#confirm-cancel").click()
    await expect(dialog).not_to_be_visible()
    assert not [m for m in hall.sent if m.get("type") == "bid"]

    await h.locator("#custom-submit").click()
    await expect(dialog).to_be_visible()
    await expect(h.locator("#confirm-figures")).to_have_text("128,500,000 元")
    await expect(h.locator("#confirm-upper")).to_have_text("人民币 壹亿贰仟捌佰伍拾万元整")
    await expect(h.locator("#confirm-lot")).to_contain_text(lot_id)
    await snap(h, "hall-confirm-dialog")
    await h.locator("#confirm-ok").click()
    await expect(dialog).not_to_be_visible()
    await expect(h.locator("#feedback")).to_contain_text("报价成功：128,500,000 元")
    await expect(h.locator("#feedback")).to_have_attribute("data-tone", "ok")
    await expect(h.locator("#price")).to_have_text("128,500,000")
    await expect(h.locator("#price-wan")).to_have_text("12,850 万元")
    await expect(field).to_have_value("")
    assert [x["amount"] for x in await bids_of(staff, lot_id)] == [128_500_000]


async def test_a_refused_bid_is_explained_in_both_languages(server: Running,
                                                            staff: StaffClient,
                                                            pages: Pages) -> None:
    lot_id, (me, other) = await open_lot(staff, "竞买人甲", "竞买人乙")
    hall = await pages.open(server.base_url + me["hall_url"])
    h = hall.page
    await expect(h.locator("#bid-one-sub")).to_have_text("报价 1,000,000 元")
    await h.locator("#custom-amount").fill("1000000")
    await h.locator("#custom-submit").click()
    await expect(h.locator("#confirm-dialog")).to_be_visible()

    # While the bidder reads the confirmation, a rival takes the price.
    async with server.live(other["token"]) as rival:
        assert (await rival.bid(lot_id, 1_000_000))["type"] == "ack"
    await expect(h.locator("#confirm-stale")).to_have_text(
        "注意：当前最低可报价已变为 1,010,000 元，此报价可能不被接受。")
    await h.locator("#confirm-ok").click()

    feedback = h.locator("#feedback")
    await expect(feedback).to_have_text(
        "报价未被接受：报价低于最低可接受价格，最低可报价为 1,010,000 元")
    await expect(feedback).to_have_attribute("data-tone", "error")
    await snap(h, "hall-refused")
    await expect(h.locator("#standing")).to_have_text("尚未报价")
    await h.locator("#lang-switch").click()
    await expect(feedback).to_have_text(
        "Bid refused: The amount is below the lowest acceptable price of 1,010,000 yuan")
    await expect(h.locator("#bid-one-main")).to_have_text("Raise once +10,000")
    assert [x["amount"] for x in await bids_of(staff, lot_id)] == [1_000_000]


def readme_codes() -> list[str]:
    """Every refusal code in the README's table."""
    text = README.read_text(encoding="utf-8")
    table = text.split("Refusal codes", 1)[1].split("## HTTP API", 1)[0]
    codes: list[str] = []
    for line in table.splitlines():
        if line.startswith("| `"):
            column = re.sub(r"\([^)]*\)", "", line.split("|")[1])  # not detail fields
            codes += re.findall(r"`([a-z_]+)`", column)
    assert len(codes) >= 20, codes
    return codes


async def test_language_switch_changes_and_remembers_the_texts(server: Running,
                                                               staff: StaffClient,
                                                               pages: Pages) -> None:
    lot_id, (me,) = await open_lot(staff, "竞买人甲")
    ctx = await pages.context()
    board = await pages.open(f"{server.base_url}/board/{lot_id}", ctx=ctx)
    b = board.page
    await expect(b.locator("html")).to_have_attribute("lang", "zh-CN")
    await expect(b.locator("#phase")).to_have_text("挂牌")
    await expect(b.locator("#countdown-label")).to_have_text("距挂牌截止")
    await expect(b.locator("#conn .conn-text")).to_have_text("已连接")
    await expect(b.locator("#price")).to_have_text("暂无报价")
    await expect(b.locator("#lang-switch")).to_have_text("English")

    await b.locator("#lang-switch").click()
    await expect(b.locator("html")).to_have_attribute("lang", "en")
    await expect(b.locator("#phase")).to_have_text("Listing")
    await expect(b.locator("#countdown-label")).to_have_text("Listing ends in")
    await expect(b.locator("#conn .conn-text")).to_have_text("Connected")
    await expect(b.locator("#price")).to_have_text("No bids yet")
    await expect(b.locator("h2").first).to_have_text("Price over time")
    await expect(b.locator("#lang-switch")).to_have_text("中文")

    # Remembered: the next page opens in English, and every refusal code has both texts.
    hall = await pages.open(server.base_url + me["hall_url"], ctx=ctx)
    h = hall.page
    await expect(h.locator("#bid-one-main")).to_have_text("Bid the start price")
    await expect(h.locator("#standing")).to_have_text("No bid from you yet")
    missing = await h.evaluate(
        "async (codes) => (await import('/static/i18n.js')).missingCodes(codes)", readme_codes())
    assert missing == []
    await h.locator("#lang-switch").click()
    await expect(h.locator("#bid-one-main")).to_have_text("按起始价报价")
    await b.reload()
    await expect(b.locator("#phase")).to_have_text("挂牌")


async def test_chinese_capitals_in_the_page_module(server: Running, pages: Pages) -> None:
    tracked = await pages.open(server.base_url + "/")
    cases = {
        "128500000": "壹亿贰仟捌佰伍拾万元整",
        "100000001": "壹亿零壹元整",
        "101000000": "壹亿零壹佰万元整",
        "1001000": "壹佰万零壹仟元整",
        "200500": "贰拾万零伍佰元整",
        "10": "壹拾元整",
        "1000000010000": "壹万亿零壹万元整",
        "1000000000000000": "壹仟万亿元整",
    }
    got = await tracked.page.evaluate(
        """async (amounts) => {
             const m = await import('/static/money.js');
             return Object.fromEntries(amounts.map((a) => [a, m.chineseUpper(Number(a))]));
           }""", list(cases))
    assert got == cases


async def test_the_hall_resumes_after_a_server_restart(settings: Settings, pages: Pages) -> None:
    running = await start_server(settings)
    proxy = Proxy()
    try:
        await proxy.start(running.server.servers[0].sockets[0].getsockname()[1])
        async with running.staff() as staff:
            lot_id, (me, other) = await open_lot(staff, "竞买人甲", "竞买人乙")
        hall = await pages.open(proxy.base_url + me["hall_url"])
        h = hall.page
        await h.locator("#bid-one").click()
        await expect(h.locator("#standing")).to_have_text("当前最高报价")
        await expect(h.locator("#history tr")).to_have_count(1)
        subscribes = [m for m in hall.sent if m.get("type") == "subscribe"]
        assert subscribes == [{"type": "subscribe", "lot": lot_id}]

        # The server goes away: the hall says so and keeps trying.
        proxy.hold()
        await stop_server(running)
        await expect(h.locator("#conn")).to_have_attribute("data-state", "reconnecting")
        await expect(h.locator("#conn .conn-text")).to_have_text("正在重新连接…")
        await expect(h.locator("#bid-one")).to_be_disabled()
        await snap(h, "hall-reconnecting")

        # Back on the same data (a new port); meanwhile a rival outbids the hall.
        running = await start_server(settings)
        async with running.live(other["token"]) as rival:
            answer = await rival.bid(lot_id, 1_010_000)
            assert answer["type"] == "ack", answer
        proxy.point(running.server.servers[0].sockets[0].getsockname()[1])

        await expect(h.locator("#conn")).to_have_attribute("data-state", "connected")
        await expect(h.locator("#price")).to_have_text("1,010,000")
        await expect(h.locator("#leader")).to_have_text(str(other["paddle"]))
        await expect(h.locator("#standing")).to_have_text("已被超越")
        await expect(h.locator("#history tr")).to_have_count(2)
        await expect(h.locator("#bid-one-sub")).to_have_text("报价 1,020,000 元")
        await expect(h.locator("#bid-one")).to_be_enabled()
        # It said hello again and resumed after the last seq it had, not from a snapshot.
        hellos = [m for m in hall.sent if m.get("type") == "hello"]
        subscribes = [m for m in hall.sent if m.get("type") == "subscribe"]
        assert len(hellos) == 2 and hellos[0] == hellos[1]
        # The restart itself is in the record (taken_over) between the hall's last event
        # and the rival's bid.
        async with StaffClient(running.base_url) as anyone:
            kinds = {e["seq"]: e["kind"] for e in (await anyone.events(lot_id))["events"]}
        assert kinds[answer["seq"] - 1] == "taken_over"
        assert subscribes[-1].get("since") == answer["seq"] - 2, subscribes
    finally:
        await proxy.close()
        await stop_server(running)


async def test_an_unanswered_bid_is_sent_again_with_the_same_id(server: Running,
                                                                 staff: StaffClient,
                                                                 pages: Pages) -> None:
    lot_id, (me,) = await open_lot(staff, "竞买人甲")
    proxy = Proxy()
    try:
        await proxy.start(server.server.servers[0].sockets[0].getsockname()[1])
        hall = await pages.open(proxy.base_url + me["hall_url"])
        h = hall.page
        await expect(h.locator("#bid-one")).to_be_enabled()

        # The bid reaches the server, but its ack is lost with the connection.
        proxy.mute = True
        await h.locator("#bid-one").click()
        await expect(h.locator("#feedback")).to_contain_text("等待系统确认")
        for _ in range(100):
            if await bids_of(staff, lot_id):
                break
            await asyncio.sleep(0.05)
        proxy.mute = False
        await proxy.cut()

        await expect(h.locator("#feedback")).to_contain_text("报价成功：1,000,000 元")
        await expect(h.locator("#standing")).to_have_text("当前最高报价")
        bids = [m for m in hall.sent if m.get("type") == "bid"]
        assert len(bids) == 2 and bids[0] == bids[1], bids
        assert [x["amount"] for x in await bids_of(staff, lot_id)] == [1_000_000]
    finally:
        await proxy.close()


async def test_a_second_sign_in_takes_over_and_the_first_page_stops(
        server: Running, staff: StaffClient, pages: Pages) -> None:
    _, (me,) = await open_lot(staff, "竞买人甲")
    hall = await pages.open(server.base_url + me["hall_url"])
    h = hall.page
    await expect(h.locator("#conn")).to_have_attribute("data-state", "connected")

    elsewhere = server.live(me["token"], reconnect=False)
    await elsewhere.start()
    try:
        await expect(h.locator("#notice-text")).to_contain_text("已在其他页面或设备登录")
        await expect(h.locator("#conn")).to_have_attribute("data-state", "stopped")
        await expect(h.locator("#bid-one")).to_be_disabled()
        await expect(h.locator("#bid-disabled")).to_have_text("本页已断开，暂不能报价")
        await snap(h, "hall-session-replaced")
        await asyncio.sleep(1.5)
        assert hall.sockets == 1  # no automatic reconnect
        # The bidder may take the session back from this page.
        await h.locator("#takeover").click()
        await expect(h.locator("#conn")).to_have_attribute("data-state", "connected")
        await expect(h.locator("#notice")).to_be_hidden()
        await expect(h.locator("#bid-one")).to_be_enabled()
        assert (await elsewhere.next())["code"] == "session_replaced"
    finally:
        await elsewhere.close()


async def test_the_board_shows_a_freeze_and_the_result(server: Running, staff: StaffClient,
                                                       pages: Pages) -> None:
    lot_id, (me, other) = await open_lot(staff, "竞买人甲", "竞买人乙",
                                         listing_end=now_ms() + 4000, countdown=1000)
    unsold, _ = await open_lot(staff, listing_end=now_ms() + 2500, countdown=1000)
    reserved, (third,) = await open_lot(staff, "竞买人丙", listing_end=now_ms() + 2500,
                                        countdown=1000, reserve_lock=0)
    await staff.set_reserve(reserved, 2_000_000)
    async with server.live(third["token"]) as bidder:
        assert (await bidder.bid(reserved, 1_000_000))["type"] == "ack"
    ctx = await pages.context()
    board = await pages.open(f"{server.base_url}/board/{lot_id}", ctx=ctx)
    hall = await pages.open(server.base_url + other["hall_url"], ctx=ctx)
    b, h = board.page, hall.page
    async with server.live(me["token"]) as bidder:
        assert (await bidder.bid(lot_id, 1_000_000))["type"] == "ack"
    await expect(b.locator("#price")).to_have_text("1,000,000")

    await staff.freeze(lot_id, "系统故障，正在排查")
    await expect(b.locator("#frozen-banner")).to_be_visible()
    await expect(b.locator("#frozen-reason")).to_have_text("原因：系统故障，正在排查")
    await expect(b.locator("#countdown-label")).to_have_text("竞价已暂停，计时停止")
    await expect(h.locator("#bid-one")).to_be_disabled()
    await expect(h.locator("#bid-disabled")).to_have_text("竞价已暂停，暂不能报价")
    await snap(b, "board-frozen")
    await snap(h, "hall-frozen")
    await staff.resume(lot_id, "故障已排除")
    await expect(b.locator("#frozen-banner")).to_be_hidden()

    # The listing ends, a 1-second timed phase runs out: sold to the only bidder.
    await expect(b.locator("#phase")).to_have_text("成交", timeout=10000)
    await expect(b.locator("#result-title")).to_have_text("成交")
    await expect(b.locator("#result-detail")).to_have_text(
        f"成交价 1,000,000 元（100 万元），竞得号牌 {me['paddle']}")
    await expect(b.locator("#countdown-label")).to_have_text("竞价已结束")
    await expect(h.locator("#bid-disabled")).to_have_text("当前阶段不接受报价")
    await expect(h.locator("#standing")).to_be_hidden()
    await expect(h.locator("#bid-one-main")).to_have_text("竞价已结束")
    await snap(b, "board-sold", full_page=True)
    await snap(h, "hall-closed")

    other_board = await pages.open(f"{server.base_url}/board/{unsold}", ctx=ctx)
    await expect(other_board.page.locator("#result-title")).to_have_text("流拍", timeout=10000)
    await expect(other_board.page.locator("#result-detail")).to_have_text("流拍原因：无人报价")
    await expect(other_board.page.locator("#chart")).to_have_attribute("data-count", "0")
    await snap(other_board.page, "board-unsold")
    below = await pages.open(f"{server.base_url}/board/{reserved}", ctx=ctx)
    await expect(below.page.locator("#result-detail")).to_have_text(
        "流拍原因：最高报价未达到保留价", timeout=10000)
    await expect(below.page.locator("#price")).to_have_text("1,000,000")


async def test_the_index_lists_lots_with_links_to_their_boards(server: Running,
                                                               staff: StaffClient,
                                                               pages: Pages) -> None:
    lot_id, (me,) = await open_lot(staff, "竞买人甲", title="钦州 2026-07 号地块")
    async with server.live(me["token"]) as bidder:
        assert (await bidder.bid(lot_id, 1_250_000))["type"] == "ack"
    tracked = await pages.open(server.base_url + "/")
    p = tracked.page
    row = p.locator(f'#lots tr[data-lot="{lot_id}"]')
    await expect(row).to_contain_text("钦州 2026-07 号地块")
    await expect(row).to_contain_text("挂牌")
    await expect(row.locator(".price-cell")).to_have_text("1,250,000")
    await snap(p, "index")
    await row.locator(".btn-link").click()
    await expect(p).to_have_url(f"{server.base_url}/board/{lot_id}")
    await expect(p.locator("#price")).to_have_text("1,250,000")


async def test_screenshots_at_desktop_and_phone_sizes(server: Running, staff: StaffClient,
                                                      pages: Pages) -> None:
    """Pictures for a human to look at (test-artifacts/), and no sideways scrolling."""
    lot_id, (me, other) = await open_lot(staff, "竞买人甲", "竞买人乙",
                                         title="苏地2026-WG-18号 工业园区湖东地块",
                                         start_price=128_000_000, listing_increment=500_000,
                                         deposit=25_600_000)
    async with server.live(me["token"]) as a, server.live(other["token"]) as b:
        for i, amount in enumerate(range(128_000_000, 131_000_000, 500_000)):
            assert (await (a if i % 2 else b).bid(lot_id, amount))["type"] == "ack"
            await asyncio.sleep(0.15)
    ARTIFACTS.mkdir(exist_ok=True)
    combos = [(lang, size, viewport, scale) for lang in ("zh", "en")
              for size, viewport, scale in (("desktop", DESKTOP, 1), ("phone", PHONE, 2))]

    async def shoot(tracked: Any, name: str, lang: str, size: str, width: int) -> None:
        page = tracked.page
        scroll_width = await page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= width, f"{name} {lang} {size} scrolls sideways"
        await page.screenshot(path=ARTIFACTS / f"{name}-{lang}-{size}.png")
        if name != "index":
            await page.screenshot(path=ARTIFACTS / f"{name}-{lang}-{size}-full.png",
                                  full_page=True)

    async def public_pages(lang: str, size: str, viewport: dict[str, int], scale: float
                           ) -> None:
        ctx = await pages.context(viewport=viewport, lang=lang, scale=scale)
        board = await pages.open(f"{server.base_url}/board/{lot_id}", ctx=ctx)
        index = await pages.open(server.base_url + "/", ctx=ctx)
        await expect(board.page.locator("#chart circle")).to_have_count(6)
        await expect(index.page.locator("#lots tr")).to_have_count(1)
        await shoot(board, "board", lang, size, viewport["width"])
        await shoot(index, "index", lang, size, viewport["width"])

    await asyncio.gather(*(public_pages(*combo) for combo in combos))
    # One session per bidder: the halls go one after another.
    for lang, size, viewport, scale in combos:
        ctx = await pages.context(viewport=viewport, lang=lang, scale=scale)
        hall = await pages.open(server.base_url + me["hall_url"], ctx=ctx)
        await expect(hall.page.locator("#standing")).to_have_attribute("data-state", "leading")
        await shoot(hall, "hall", lang, size, viewport["width"])
        await ctx.close()
        pages.contexts.remove(ctx)


async def test_the_countdown_follows_server_time_not_the_local_clock(
        server: Running, staff: StaffClient, pages: Pages) -> None:
    """The browser's clock is two hours fast; the countdown and clock still show server time."""
    lot_id, _ = await open_lot(staff)
    ctx = await pages.context()
    skewed = dt.datetime.fromtimestamp(now_ms() / 1000 + 2 * 3600, tz=dt.UTC)
    await ctx.clock.install(time=skewed)
    await ctx.clock.resume()
    board = await pages.open(f"{server.base_url}/board/{lot_id}", ctx=ctx)
    b = board.page
    assert await b.evaluate("Date.now()") > now_ms() + 3600_000  # the page's clock is off
    await expect(b.locator("#countdown")).to_have_text(re.compile(r"^(59:\d\d|01:00:00)$"))
    await expect(b.locator("#countdown-label")).to_have_text("距挂牌截止")
    beijing = dt.datetime.fromtimestamp(now_ms() / 1000, tz=dt.timezone(dt.timedelta(hours=8)))
    hours = f"{beijing.hour:02d}|{(beijing.hour + 1) % 24:02d}"  # a boundary may pass
    await expect(b.locator("#server-clock .clock-value")).to_have_text(
        re.compile(rf"^({hours}):\d\d:\d\d$"))
