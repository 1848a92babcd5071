"""The browser pages, assembled once at start from ``clients/web/*.html`` and shared parts.

Pages repeat whole blocks (the page head, a tender's head and banners, the list of bids and
the read-out, the countdown and terms, the video panels), so those live once in
``clients/web/parts/`` and a page names them on a line of its own::

    <!--#include parts/tender-terms.html-->
    <!--#include parts/head.html title="开标主持" script="tender-host.js" body="page-tender"-->

A part writes ``{{name}}`` where the including line gives ``name="..."``; a value may
itself name a part to include (``<!--#include {{extra}}-->``; an empty name includes
nothing). A missing part, a missing value, a value the part does not use, an include line
that cannot be read, or a part that includes itself is an error when the application is
made, not when a page is asked for. Values are written into HTML as they are given: they
come from these files, never from requests.

Each page is served from memory with a strong ETag, so a browser revalidating it (pages
are ``no-cache``) gets 304 without a body.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

INCLUDE = re.compile(r'^(?P<indent>[ \t]*)<!--#include (?P<part>\S*?)'
                     r'(?P<args>(?: [a-z_]+="[^"]*")*)-->[ \t]*\n?', re.MULTILINE)
ARG = re.compile(r' ([a-z_]+)="([^"]*)"')
VALUE = re.compile(r"\{\{([a-z_]+)\}\}")
PART = re.compile(r"parts/[a-z0-9-]+\.html")


class PageError(ValueError):
    """A page or part that cannot be assembled; names the file and the reason."""


def assemble(web: Path, name: str) -> str:
    """The page ``name`` (a file in ``web``) with every include expanded."""
    page = _expand(web, name, (web / name).read_text("utf-8"), ())
    for line in page.splitlines():
        if "<!--#include" in line:  # not on a line of its own, or its values unquoted
            raise PageError(f"{name}: an include that cannot be read: {line.strip()}")
    return page


def _expand(web: Path, name: str, text: str, stack: tuple[str, ...]) -> str:
    # ``stack``: the parts being expanded around this one; a part already on it is a cycle,
    # which also bounds the nesting by the number of parts.
    def include(match: re.Match[str]) -> str:
        part = match["part"]
        if not part:
            return ""
        if not PART.fullmatch(part):
            raise PageError(f"{name}: {part!r} is not a part (parts/<name>.html)")
        if part in stack:
            raise PageError(f"{name}: {part} includes itself: {' > '.join((*stack, part))}")
        path = web / part
        if not path.is_file():
            raise PageError(f"{name}: no part {part}")
        values = dict(ARG.findall(match["args"]))
        body = _fill(part, path.read_text("utf-8"), values)
        body = _expand(web, part, body, (*stack, part))
        indent = match["indent"]
        return "".join(indent + line if line.strip() else line
                       for line in body.splitlines(keepends=True))

    return INCLUDE.sub(include, text)


def _fill(part: str, text: str, values: dict[str, str]) -> str:
    used = set(VALUE.findall(text))
    if missing := sorted(used - values.keys()):
        raise PageError(f"{part}: no value given for {', '.join(missing)}")
    if unused := sorted(values.keys() - used):
        raise PageError(f"{part}: does not use {', '.join(unused)}")
    return VALUE.sub(lambda m: values[m[1]], text)


class Page:
    """One assembled page, served from memory."""

    def __init__(self, web: Path, name: str) -> None:
        self.body = assemble(web, name).encode("utf-8")
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'

    async def serve(self, request: Request) -> Response:
        headers = {"cache-control": "no-cache", "etag": self.etag}
        if self.etag in _etags(request.headers.get("if-none-match", "")):
            return Response(status_code=304, headers=headers)
        return Response(self.body, media_type="text/html; charset=utf-8", headers=headers)


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}
