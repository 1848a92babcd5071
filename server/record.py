"""The opening record (开标记录): JSON signed by the platform, HTML and PDF renderings.

The JSON is the record; HTML and PDF are renderings of the same JSON. It holds what
``opening.Tender.record()`` gives (terms, every bid with its outcome, check-ins,
pauses, the read-out, objections and answers, confirmations, the failure reason and
times) plus every event of the tender, and is signed with the platform's Ed25519 key
over its canonical JSON (``opening.receipts.canonical``), so anyone with the platform's
public key can check an archived copy offline. At the close (or failure) the three
files are written to the tender's archive directory.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from opening import Event as TenderEvent
from opening import Tender
from opening.receipts import canonical

from .signing import public_raw

Json = dict[str, Any]
VERSION = "bidrecord/v1"
CST = timedelta(hours=8)

#: Column titles, Simplified Chinese first, then English.
LABELS: dict[str, tuple[str, str]] = {
    "bidder": ("投标人编号", "Bidder"), "name": ("投标人", "Name"),
    "outcome": ("结果", "Outcome"), "reason": ("原因", "Reason"),
    "sha256": ("密文摘要 SHA-256", "Ciphertext SHA-256"), "size": ("大小(字节)", "Size (bytes)"),
    "submitted_at": ("递交时间", "Submitted"), "checked_in_at": ("签到时间", "Checked in"),
    "released_at": ("解密时间", "Key released"), "decrypted_at": ("解密完成", "Decrypted"),
    "price": ("投标报价(元)", "Price (yuan)"), "duration_days": ("工期(天)", "Duration (days)"),
    "quality": ("质量目标", "Quality"), "manager": ("项目经理", "Project manager"),
    "note": ("备注", "Note"), "text": ("内容", "Text"), "at": ("时间", "Time"),
    "answer": ("答复", "Answer"), "answered_at": ("答复时间", "Answered"),
    "objection_id": ("异议编号", "Objection"), "summary": ("开标一览表", "Summary"),
    "until": ("截止", "Until"), "resumed_at": ("恢复时间", "Resumed"),
}
OUTCOMES = {"decrypted": "解密成功 decrypted", "failed": "解密失败 failed",
            "absent": "未到场 absent", "withdrawn": "撤回 withdrawn", "waiting": "待解密 waiting"}
SECTIONS = (("bids", "投标文件 Bids"), ("check_ins", "签到 Check-ins"),
            ("read_out", "唱标 Read-out"), ("pauses", "暂停 Pauses"),
            ("objections", "异议与答复 Objections and answers"),
            ("confirmations", "确认 Confirmations"))


def build(tender_id: str, tender: Tender, events: Sequence[TenderEvent],
          key: Ed25519PrivateKey, now: int) -> Json:
    """The signed JSON record of ``tender`` as it stands at ``now``."""
    body: Json = {
        "v": VERSION, "tender_id": tender_id, "generated_at": now,
        "record": msgspec.to_builtins(tender.record()),
        "events": [{"kind": e.KIND, **msgspec.to_builtins(e)} for e in events],
        "key": hashlib.sha256(public_raw(key)).hexdigest(),
    }
    signature = key.sign(canonical(body))
    return {**body, "sig": base64.urlsafe_b64encode(signature).rstrip(b"=").decode()}


def _time(ms: int) -> str:
    return (datetime.fromtimestamp(ms / 1000, UTC) + CST).strftime("%Y-%m-%d %H:%M:%S")


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "是 yes" if value else "否 no"
    if isinstance(value, int) and (name.endswith("_at") or name in ("at", "until")):
        return _time(int(value))
    if name == "outcome":
        return OUTCOMES.get(str(value), str(value))
    if isinstance(value, dict):
        return "; ".join(f"{LABELS.get(k, (k, k))[0]}: {_cell(k, v)}" for k, v in value.items()
                         if v is not None)
    if isinstance(value, list):
        return ", ".join(_cell(name, v) for v in value)
    return str(value)


def _rows(record: Json, section: str) -> tuple[list[str], list[list[str]]]:
    items = record.get(section) or []
    if isinstance(items, dict):
        items = list(items.values())
    items = [i for i in items if isinstance(i, dict)]
    columns: list[str] = []
    for item in items:
        columns.extend(k for k in item if k not in columns)
    return columns, [[_cell(c, item.get(c)) for c in columns] for item in items]


def _facts(doc: Json) -> list[tuple[str, str]]:
    rec = doc["record"]
    facts = [("项目编号 Tender", doc["tender_id"]), ("项目名称 Title", str(rec.get("title", "")))]
    facts.append(("状态 State", str(rec.get("state", ""))))
    times = {**(rec.get("terms") or {}), **(rec.get("times") or {})}
    for key, label in (("deadline", "投标截止 Deadline"), ("started", "开标 Started"),
                       ("announced", "唱标 Announced"), ("closed", "结束 Closed"),
                       ("failed", "流标 Failed")):
        value = times.get(key)
        if isinstance(value, int):
            facts.append((label, _time(value)))
    failure = rec.get("failure")
    if failure:
        facts.append(("流标原因 Failure", _cell("failure", failure)))
    facts.append(("生成时间 Generated", _time(doc["generated_at"])))
    facts.append(("平台签名密钥 Signing key", doc["key"]))
    return facts


def to_html(doc: Json) -> str:
    esc = html.escape
    parts = ["<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>",
             f"<title>开标记录 Opening record · {esc(doc['tender_id'])}</title><style>",
             "body{font-family:system-ui,'Noto Sans CJK SC',sans-serif;margin:2rem;color:#1b2430}"
             "table{border-collapse:collapse;margin:.5rem 0 1.5rem;width:100%}"
             "th,td{border:1px solid #c8ced6;padding:.3rem .5rem;text-align:left;"
             "font-size:.9rem;vertical-align:top;word-break:break-all}th{background:#eef2f6}"
             "</style></head><body>",
             "<h1>开标记录 <small>Opening record</small></h1><table>"]
    for label, value in _facts(doc):
        parts.append(f"<tr><th>{esc(label)}</th><td>{esc(value)}</td></tr>")
    parts.append("</table>")
    for section, title in SECTIONS:
        columns, rows = _rows(doc["record"], section)
        parts.append(f"<h2>{esc(title)}</h2>")
        if not rows:
            parts.append("<p>无 none</p>")
            continue
        head = "".join(f"<th>{esc(' '.join(LABELS.get(c, (c, c))))}</th>" for c in columns)
        parts.append(f"<table id='{section}'><tr>{head}</tr>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>")
        parts.append("</table>")
    parts.append(f"<h2>全部事件 Every event ({len(doc['events'])})</h2><table><tr><th>seq</th>"
                 "<th>时间 Time</th><th>事件 Event</th></tr>")
    for event in doc["events"]:
        parts.append(f"<tr><td>{event['seq']}</td><td>{esc(_time(event['at']))}</td>"
                     f"<td>{esc(event['kind'])}</td></tr>")
    parts.append(f"</table><p>签名 Signature (Ed25519): <code>{esc(doc['sig'])}</code></p>"
                 "</body></html>")
    return "".join(parts)


def to_pdf(doc: Json) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    base = ParagraphStyle("b", fontName="STSong-Light", fontSize=8, leading=10, wordWrap="CJK")
    h1 = ParagraphStyle("h1", parent=base, fontSize=16, leading=20, spaceAfter=8)
    h2 = ParagraphStyle("h2", parent=base, fontSize=11, leading=14, spaceBefore=8, spaceAfter=4)
    style = TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef2f6")),
                        ("VALIGN", (0, 0), (-1, -1), "TOP")])

    def para(text: str) -> Paragraph:
        return Paragraph(html.escape(text), base)

    out = io.BytesIO()
    story: list[Any] = [Paragraph("开标记录 Opening record", h1)]
    story.append(Table([[para(k), para(v)] for k, v in _facts(doc)], colWidths=[140, 600],
                       style=TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.grey)])))
    for section, title in SECTIONS:
        story.append(Paragraph(html.escape(title), h2))
        columns, rows = _rows(doc["record"], section)
        if not rows:
            story.append(para("无 none"))
            continue
        header = [para(" ".join(LABELS.get(c, (c, c)))) for c in columns]
        story.append(Table([header, *[[para(v) for v in row] for row in rows]],
                           repeatRows=1, style=style))
    story.append(Paragraph(f"全部事件 Every event ({len(doc['events'])})", h2))
    story.append(Table([[para("seq"), para("时间 Time"), para("事件 Event")],
                        *[[para(str(e["seq"])), para(_time(e["at"])), para(e["kind"])]
                          for e in doc["events"]]], repeatRows=1, style=style))
    story.append(Spacer(1, 8))
    story.append(para(f"签名 Signature (Ed25519): {doc['sig']}"))
    SimpleDocTemplate(out, pagesize=landscape(A4), title=f"Opening record {doc['tender_id']}",
                      leftMargin=36, rightMargin=36, topMargin=36, bottomMargin=36).build(story)
    return out.getvalue()
