"""The browser pages: assembled from shared parts at start, served with ETags."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from server.app import web_dir
from server.pages import PageError, assemble
from tests.conftest import Running

ROUTES = {
    "/": "index.html",
    "/hall/L1": "hall.html",
    "/board/L1": "board.html",
    "/tender/T1": "tender.html",
    "/tender/T1/seal": "tender-seal.html",
    "/tender/T1/open": "tender-open.html",
    "/tender/T1/host": "tender-host.html",
    "/stream/tender/T1/host": "stream-host.html",
}

#: What each page's script needs from the shared parts (one id per part it includes).
NEEDS = {
    "board.html": ["frozen-banner", "result-detail", "stream-video", "stream-idle-text"],
    "hall.html": ["frozen-reason", "result-title"],
    "tender.html": ["tender-title", "paused-banner", "bids", "readout", "objections",
                    "record-json", "tcount", "term-budget", "stream-video"],
    "tender-open.html": ["tender-title", "bids", "objection-form", "objection-text",
                         "confirm-record", "record-pdf", "tcount", "unlock-form"],
    "tender-host.html": ["tender-title", "readout", "record-html", "tcount", "stream-preview",
                         "stream-start", "host-start"],
    "tender-seal.html": ["tender-title", "failed-banner", "tcount", "term-ceiling", "bid-form"],
    "stream-host.html": ["stream-preview", "stream-start", "stream-stop", "stream-feedback"],
}


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids += [v for k, v in attrs if k == "id" and v]


def _ids(html: str) -> list[str]:
    parser = _Ids()
    parser.feed(html)
    return parser.ids


@pytest.mark.parametrize("name", sorted(ROUTES.values()))
def test_every_page_assembles_whole(name: str) -> None:
    html = assemble(web_dir(), name)
    assert "<!--#include" not in html and "{{" not in html
    assert html.startswith("<!doctype html>\n") and html.rstrip().endswith("</html>")
    assert html.count("<body") == 1 and html.count('<header class="topbar">') == 1
    ids = _ids(html)
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    assert not [i for i in NEEDS.get(name, []) if i not in ids]
    script = re.search(r'<script type="module" src="/static/([^"]+)">', html)
    assert script is not None and (web_dir() / script[1]).is_file()


async def test_pages_are_served_assembled_with_etags(server: Running) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        for route, name in ROUTES.items():
            r = await http.get(route)
            assert r.status_code == 200, route
            assert r.headers["content-type"] == "text/html; charset=utf-8"
            assert r.headers["cache-control"] == "no-cache"
            assert r.text == assemble(web_dir(), name)
            etag = r.headers["etag"]
            again = await http.get(route, headers={"if-none-match": f'"other", W/{etag}'})
            assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
            stale = await http.get(route, headers={"if-none-match": '"stale"'})
            assert stale.status_code == 200 and stale.text == r.text
        head = await http.get("/tender/T1/open")
        assert 'id="objection-form"' in head.text and 'id="confirm-record"' in head.text
        public = await http.get("/tender/T1")
        assert 'id="objection-form"' not in public.text
        assert 'id="confirm-record"' not in public.text


def _web(tmp_path: Path, page: str, **parts: str) -> Path:
    (tmp_path / "parts").mkdir()
    (tmp_path / "page.html").write_text(page)
    for name, text in parts.items():
        (tmp_path / "parts" / f"{name}.html").write_text(text)
    return tmp_path


def test_parts_indent_fill_and_nest(tmp_path: Path) -> None:
    web = _web(tmp_path, "<main>\n"
               "  <!--#include parts/card.html title=\"标题\" extra=\"parts/x.html\"-->\n"
               "  <!--#include parts/card.html title=\"B\" extra=\"\"-->\n</main>\n",
               card="<section>\n  <h2>{{title}}</h2>\n  <!--#include {{extra}}-->\n\n</section>\n",
               x="<p>x</p>\n")
    assert assemble(web, "page.html") == (
        "<main>\n  <section>\n    <h2>标题</h2>\n    <p>x</p>\n\n  </section>\n"
        "  <section>\n    <h2>B</h2>\n\n  </section>\n</main>\n")


@pytest.mark.parametrize(("page", "parts", "message"), [
    ("<!--#include parts/nope.html-->\n", {}, "no part parts/nope.html"),
    ("<!--#include ../secret.html-->\n", {}, "is not a part"),
    ("<!--#include parts/A.html-->\n", {}, "is not a part"),
    ("<!--#include parts/a.html-->\n", {"a": "{{title}}\n"}, "no value given for title"),
    ("<!--#include parts/a.html title=x-->\n", {"a": "{{title}}\n"},
     "an include that cannot be read: <!--#include parts/a.html title=x-->"),
    ("<p><!--#include parts/a.html--></p>\n", {"a": "a\n"}, "an include that cannot be read"),
    ("<!--#include parts/a.html title=\"x\" more=\"y\"-->\n", {"a": "{{title}}\n"},
     "does not use more"),
    ("<!--#include parts/a.html-->\n", {"a": "<!--#include parts/b.html-->\n",
                                        "b": "<!--#include parts/a.html-->\n"},
     "parts/a.html includes itself"),
])
def test_a_broken_page_is_refused_with_its_reason(tmp_path: Path, page: str,
                                                  parts: dict[str, str], message: str) -> None:
    web = _web(tmp_path, page, **parts)
    with pytest.raises(PageError, match=re.escape(message)):
        assemble(web, "page.html")
