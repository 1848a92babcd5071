"""The sealed-bid opening pages (seal, open, host, public), driven in Chromium against a real
server: a key made and registered in the page, a bid sealed while uploading, the opening
started by the host, the bid unlocked with the downloaded backup file, the read-out,
an objection and its answer. Screenshots go to test-artifacts/.
"""
# The pages speak Chinese, whose punctuation is full-width.

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import expect

from clients.python import StaffClient
from server.clock import now_ms
from tests.conftest import Running

from .conftest import ARTIFACTS, DESKTOP, PHONE, Pages, snap
from .proxy import CuttingProxy

pytestmark = pytest.mark.browser
expect.set_options(timeout=8000)

PASSWORD = "correct horse 9"
MiB = 1 << 20

# Names the elements that stick out past the right edge, for the failure message.
WIDE_ELEMENTS = """(limit) => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > limit)
  .slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className)"""


async def tender(staff: StaffClient, tender_id: str, *bidders: str, deadline_in: int,
                 **terms: Any) -> list[dict[str, Any]]:
    """A published tender; returns the invitations (token, seal_url, open_url) of ``bidders``."""
    await staff.call("POST", "/api/tenders", {
        "tender_id": tender_id, "title": "市政道路改造工程施工",
        "deadline": now_ms() + deadline_in, **terms})
    await staff.call("POST", f"/api/tenders/{tender_id}/publish")
    return [await staff.call("POST", f"/api/tenders/{tender_id}/bidders", {"bidder": b})
            for b in bidders]


async def until_state(staff: StaffClient, tender_id: str, state: str) -> None:
    for _ in range(1200):  # a minute
        if (await staff.call("GET", f"/api/tenders/{tender_id}"))["state"] == state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{tender_id} never reached {state}")


async def seal_a_bid(p: Any, tmp_path: Path, price: str,
                     proxy: CuttingProxy | None = None) -> Path:
    """On the seal page: make and register a key, seal and upload a bid. Returns the backup.
    With ``proxy``, the upload is cut once in the middle of its second MiB and must resume."""
    await p.locator("#key-name").fill("华建路桥集团有限公司")
    await p.locator("#key-password").fill(PASSWORD)
    await p.locator("#key-password2").fill("another one")
    await p.locator("#key-make").click()
    await expect(p.locator("#key-error")).to_have_text("两次输入的密码不一致")
    await p.locator("#key-password2").fill(PASSWORD)
    async with p.expect_download() as info:
        await p.locator("#key-make").click()
    download = await info.value
    assert download.suggested_filename == "bidhall-key-b1.json"
    backup: Path = tmp_path / str(download.suggested_filename)
    await download.save_as(backup)
    fingerprint = re.compile(r"^([0-9a-f]{4} ){15}[0-9a-f]{4}$")
    await expect(p.locator("#key-fp-new")).to_have_text(fingerprint)
    await expect(p.locator("#key-register")).to_be_disabled()  # not before "I saved it"
    await p.locator("#key-saved").check()
    await p.locator("#key-register").click()
    await expect(p.locator("#key-fp")).to_have_text(fingerprint)
    assert await p.locator("#key-fp").text_content() == await p.locator(
        "#key-fp-new").text_content()

    await p.locator("#bid-file").set_input_files(files=[{
        "name": "投标文件.pdf", "mimeType": "application/pdf",
        "buffer": b"%PDF-1.4 bid document " * 150_000}])  # 3.3 MB: four PATCHes
    await p.locator("#sum-price").fill(price)
    await expect(p.locator("#sum-price-upper")).to_contain_text(
        "壹佰贰拾叁万肆仟伍佰陆拾柒元捌角整")
    await expect(p.locator("#sum-price-warn")).to_have_text(
        "注意：投标报价高于最高投标限价 1,200,000 元。")
    await p.locator("#sum-duration").fill("180")
    await p.locator("#sum-manager").fill("李工")
    await p.locator("#bid-review").click()
    await expect(p.locator("#bid-confirm")).to_be_visible()
    await expect(p.locator("#c-price")).to_have_text("1,234,567.8 元")
    await expect(p.locator("#c-warn")).to_be_visible()
    if proxy is not None:
        proxy.cut_after(3 * MiB // 2)
    await p.locator("#c-ok").click()
    await expect(p.locator("#receipt-box")).to_be_visible()
    if proxy is not None:
        assert proxy.cuts == 1
    await expect(p.locator("#receipt-sha")).to_have_text(re.compile(r"^[0-9a-f]{64}$"))
    await expect(p.locator("#feedback")).to_have_text("投标文件已递交，回执已签发。")
    return backup


@pytest_asyncio.fixture
async def proxy(server: Running) -> AsyncIterator[CuttingProxy]:
    proxy = CuttingProxy()
    await proxy.start(int(server.base_url.rsplit(":", 1)[1]))
    try:
        yield proxy
    finally:
        await proxy.close()


async def test_seal_open_read_out_and_objection(server: Running, staff: StaffClient,
                                                pages: Pages, proxy: CuttingProxy,
                                                tmp_path: Path) -> None:
    (inv,) = await tender(staff, "T-2026-001", "b1", deadline_in=25_000, min_bids=1,
                          ceiling="1200000", budget="1000000")
    ctx = await pages.context()
    # The seal page reaches the server through a proxy that cuts the upload once; the tus
    # server answers 409 while it still holds the cut PATCH, and the page tries again.
    seal = await pages.open(proxy.base_url + inv["seal_url"], ctx=ctx,
                            allow=[r"status of 409 ", r"ERR_CONNECTION_RESET",
                                   r"ERR_EMPTY_RESPONSE", r"ERR_INCOMPLETE_CHUNKED_ENCODING"])
    public = await pages.open(f"{server.base_url}/tender/T-2026-001", ctx=ctx)
    p, pub = seal.page, public.page
    assert "token" not in p.url
    await expect(pub.locator("#tender-state")).to_have_text("接受投标")
    await expect(pub.locator("#bids-empty")).to_have_text("开标开始后公布已收到的投标文件。")
    backup = await seal_a_bid(p, tmp_path, "1234567.8", proxy)
    receipt = (await staff.call("GET", "/api/tenders/T-2026-001"))["bids"][0]
    await expect(p.locator("#receipt-sha")).to_have_text(receipt["sha256"])
    await expect(p.locator("#me-sha")).to_have_text(receipt["sha256"])
    await snap(p, "tender-seal-receipt", full_page=True)

    # The deadline passes on the server: the seal page locks itself.
    await until_state(staff, "T-2026-001", "deadline")
    await expect(p.locator("#closed-banner")).to_be_visible()
    await expect(p.locator("#withdraw")).to_be_hidden()

    host = await pages.open(
        f"{server.base_url}/tender/T-2026-001/host#token={server.staff_token}", ctx=ctx)
    h = host.page
    await expect(h.locator("#host-hint")).to_have_text("已收到 1 份投标文件，可以开始开标。")
    await h.locator("#host-start").click()
    await h.locator("#host-dialog-ok").click()
    await expect(h.locator("#tender-state")).to_have_text("解密中")
    await expect(pub.locator("#bids tr")).to_have_count(1)
    await expect(pub.locator('#bids tr[data-bidder="b1"] .outcome')).to_have_text("待解密")
    await expect(pub.locator("#tcount-label")).to_have_text("解密剩余时间")
    await expect(pub.locator("#tcount")).to_have_text(re.compile(r"^(29:\d\d|30:00)$"))

    opening = await pages.open(server.base_url + inv["open_url"], ctx=ctx)
    o = opening.page
    await o.locator("#check-in").click()
    await expect(o.locator("#check-in-state")).to_contain_text("已签到")
    # A wrong password is refused in the page and changes nothing.
    await o.locator("#unlock-file").set_input_files(backup)
    await o.locator("#unlock-password").fill("wrong password")
    await o.locator("#unlock").click()
    await expect(o.locator("#unlock-error")).to_have_text("解密未完成：备份密码错误")
    await o.locator("#unlock-password").fill(PASSWORD)
    await o.locator("#unlock").click()
    await expect(o.locator("#unlock-result")).to_contain_text("解密成功")
    await expect(o.locator("#unlock-result")).to_contain_text("投标报价 1,234,567.8 元")

    # The only bid settled: the read-out is public at once.
    row = pub.locator('#readout tr[data-bidder="b1"]')
    await expect(row.locator(".price-cell")).to_contain_text("1,234,567.8")
    await expect(row).to_contain_text("华建路桥集团有限公司")
    await expect(row).to_contain_text("180")
    await expect(pub.locator("#tender-state")).to_have_text("已唱标")
    await expect(pub.locator("#record-html")).to_have_attribute(
        "href", "/api/tenders/T-2026-001/record.html")

    await h.locator("#host-open-objections").click()
    await h.locator("#host-dialog-ok").click()
    await expect(o.locator("#objection-form")).to_be_visible()
    await o.locator("#objection-text").fill("唱标金额与投标文件不一致")
    await o.locator("#objection-submit").click()
    await expect(o.locator("#feedback")).to_have_text("异议已提交，请等待主持人答复。")
    answer = h.locator(".answer-form textarea")
    await answer.fill("经核对，唱标金额与投标文件一致")
    await h.locator(".answer-form button").click()
    item = pub.locator(".objection").first
    await expect(item.locator(".objection-text")).to_have_text("唱标金额与投标文件不一致")
    await expect(item.locator(".objection-answer p")).to_have_text("经核对，唱标金额与投标文件一致")
    await o.locator("#confirm-record").click()
    await expect(o.locator("#confirm-state")).to_have_text("您已确认开标记录")
    await expect(pub.locator("#record-confirmed")).to_contain_text("1 家")
    await snap(o, "tender-open-done", full_page=True)
    await snap(h, "tender-host-objections", full_page=True)

    await pub.locator("#lang-switch").click()
    await expect(pub.locator("#tender-state")).to_have_text("Objections")
    await expect(pub.locator(".objection-answer .label")).to_have_text("Host's answer")
    await expect(pub.locator('#readout tr[data-bidder="b1"] .outcome')).to_have_text("Decrypted")
    await expect(pub.locator("h2").first).to_have_text("Bids received")

    # Every layout in both languages, desktop and phone, without sideways scrolling.
    ARTIFACTS.mkdir(exist_ok=True)
    for lang in ("zh", "en"):
        for size, viewport, scale in (("desktop", DESKTOP, 1), ("phone", PHONE, 2)):
            shots = await pages.context(viewport=viewport, lang=lang, scale=scale)
            for name, url in (("tender", "/tender/T-2026-001"),
                              ("tender-open", inv["open_url"]),
                              ("tender-host", f"/tender/T-2026-001/host#token="
                                              f"{server.staff_token}")):
                shot = await pages.open(server.base_url + url, ctx=shots)
                await expect(shot.page.locator("#readout tr")).to_have_count(1)
                width = await shot.page.evaluate("document.documentElement.scrollWidth")
                wide = await shot.page.evaluate(WIDE_ELEMENTS, viewport["width"])
                assert width <= viewport["width"], f"{name} {lang} {size} scrolls: {wide}"
                await shot.page.screenshot(path=ARTIFACTS / f"{name}-{lang}-{size}.png",
                                           full_page=True)


async def test_the_host_is_told_why_too_few_bids_fail_the_tender(
        server: Running, staff: StaffClient, pages: Pages) -> None:
    (inv,) = await tender(staff, "T-2026-002", "b1", deadline_in=5000)
    seal = await pages.open(server.base_url + inv["seal_url"], lang="en")
    await expect(seal.page.locator("#key-make")).to_be_visible()
    await until_state(staff, "T-2026-002", "deadline")
    await expect(seal.page.locator("#closed-banner")).to_be_visible()
    await expect(seal.page.locator("#key-make")).to_be_hidden()
    host = await pages.open(
        f"{server.base_url}/tender/T-2026-002/host#token={server.staff_token}")
    h = host.page
    await expect(h.locator("#host-hint")).to_have_attribute("data-tone", "warn")
    await expect(h.locator("#host-hint")).to_contain_text("《招标投标法实施条例》第四十四条")
    await h.locator("#host-start").click()
    await expect(h.locator("#host-dialog-warn")).to_contain_text("少于 3 份")
    await h.locator("#host-dialog-ok").click()
    await expect(h.locator("#tender-state")).to_have_text("流标")
    await expect(h.locator("#failed-detail")).to_contain_text("少于 3 个")
    await expect(h.locator("#host-start")).to_be_disabled()
    await snap(h, "tender-host-failed")
    index = await pages.open(server.base_url + "/")
    row = index.page.locator('#tenders tr[data-tender="T-2026-002"]')
    await expect(row).to_contain_text("流标")
    await row.locator(".btn-link").click()
    await expect(index.page.locator("#failed-banner")).to_be_visible()


async def test_money_in_capitals_with_jiao_and_fen(server: Running, pages: Pages) -> None:
    tracked = await pages.open(server.base_url + "/tender/none",
                               allow=(r"404", r"Not Found", r"EventSource"))
    cases = {"1234567.8": "壹佰贰拾叁万肆仟伍佰陆拾柒元捌角整", "1.05": "壹元零伍分",
             "0.5": "伍角整", "10": "壹拾元整", "100000001.01": "壹亿零壹元零壹分",
             "1.2.3": "", "01": ""}
    got = await tracked.page.evaluate(
        """async (xs) => {
             const m = await import('/static/tenderview.js');
             return Object.fromEntries(xs.map((x) => [x, m.upperYuan(x)]));
           }""", list(cases))
    assert got == cases
    await expect(tracked.page.locator("#notice-text")).to_contain_text("开标项目不存在")
