// Rendering shared by the tender pages (seal, open, host, public): the head and banners, the
// countdown, the terms, the list of received bids with each bidder's state, the read-out
// (唱标) table, the objections and the record links. Each function reads the tender's view
// (GET /api/tenders/{t}) and writes by element id; elements a page lacks are skipped.
// Text goes in through textContent only: titles, names and objections come from people.

import { t } from "./i18n.js";
import { chineseUpper } from "./money.js";
import { $, el, formatDateTime, formatDuration, formatTime, setText, show } from "./ui.js";

/** States after the start: the list of received bids is public. */
export const STARTED = new Set(["decrypting", "announced", "objections", "closed"]);
export const FINAL = new Set(["closed", "failed"]);
/** States in which the record exists and may be confirmed. */
export const RECORDED = new Set(["announced", "objections", "closed"]);

// ------------------------------------------------------------------ money
const MONEY = /^(0|[1-9][0-9]{0,14})(\.[0-9]{1,2})?$/;
const DIGITS = "零壹贰叁肆伍陆柒捌玖";

/** Whether `text` is decimal yuan with at most two decimals (the summary's `price`). */
export function isPrice(text) {
  return MONEY.test(String(text ?? ""));
}

/** "1234.5" -> 123450n (fen, exact). */
export function toFen(text) {
  const [whole, cents = ""] = String(text).split(".");
  return BigInt(whole) * 100n + BigInt(cents.padEnd(2, "0") || "0");
}

/** "1234567.8" -> "1,234,567.8"; amounts are shown as written, grouped. */
export function yuanText(text) {
  if (text == null || text === "") return "—";
  const [whole, cents] = String(text).split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return cents == null ? grouped : `${grouped}.${cents}`;
}

/**
 * Chinese financial capitals with 角 and 分: "1234.5" -> "壹仟贰佰叁拾肆元伍角整",
 * "1.05" -> "壹元零伍分", "0.5" -> "伍角整". "" when `text` is not a price.
 */
export function upperYuan(text) {
  if (!isPrice(text)) return "";
  const [wholeText, cents = ""] = String(text).split(".");
  const whole = Number(wholeText);
  const jiao = Number(cents[0] ?? 0);
  const fen = Number(cents[1] ?? 0);
  const base = chineseUpper(whole);
  if (jiao === 0 && fen === 0) return base;
  let out = whole > 0 ? base.replace(/整$/, "") : "";
  if (jiao > 0) out += `${DIGITS[jiao]}角`;
  if (fen > 0) {
    if (jiao === 0 && whole > 0) out += "零";
    out += `${DIGITS[fen]}分`;
  } else {
    out += "整";
  }
  return out;
}

/**
 * What the terms say about `price` (as the server decides it): "above_ceiling",
 * "over_budget" (more than warn_over_budget_pct over the budget) or null.
 */
export function priceWarning(terms, price) {
  if (!terms || !isPrice(price)) return null;
  const fen = toFen(price);
  if (terms.ceiling != null && fen > toFen(terms.ceiling)) return "above_ceiling";
  const pct = BigInt(terms.warn_over_budget_pct ?? 20);
  if (terms.budget != null && fen * 100n > toFen(terms.budget) * (100n + pct)) {
    return "over_budget";
  }
  return null;
}

// ------------------------------------------------------------------ small formats
/** A key fingerprint (64 hex) in groups of four: "3f2a 9c01 ...". */
export function groupFingerprint(hex) {
  return String(hex ?? "").replace(/(.{4})(?=.)/g, "$1 ");
}

/** "1.4 MB", "512 B": sizes in the units people read. */
export function formatBytes(n) {
  if (n == null) return "—";
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = n / 1024;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i += 1;
  }
  return `${value.toFixed(value < 10 ? 2 : 1)} ${units[i]}`;
}

/** The first 16 hex digits of a hash, for tables (the full value is in the title). */
export function shortHash(hex) {
  return hex ? `${hex.slice(0, 8)}…${hex.slice(-8)}` : "—";
}

export function stateName(state) {
  return state ? t(`tender.state.${state}`) : "—";
}

export function outcomeName(outcome) {
  return t(`tender.outcome.${outcome ?? "waiting"}`);
}

/** A bidder's name with its id when they differ: "华建集团（bidder-2）". */
export function bidderLabel(row) {
  if (!row) return "—";
  const name = row.name || row.bidder;
  return row.name && row.name !== row.bidder ? `${name}（${row.bidder}）` : name;
}

// ------------------------------------------------------------------ countdown
/**
 * What the countdown shows for a tender at server time `now`: {label, value, tone, at}
 * where tone is "", "urgent" (last 5 minutes of a window), "paused" or "done".
 */
export function tenderCountdown(view, now) {
  if (!view) return { label: t("count.none"), value: "--:--", tone: "" };
  const terms = view.terms ?? {};
  const left = (at) => formatDuration(at - now);
  switch (view.state) {
    case "draft":
      return { label: t("tender.count.draft"), value: "--:--", tone: "" };
    case "accepting":
      return { label: t(terms.deadline > now ? "tender.count.deadline" : "count.due"),
        value: left(terms.deadline), tone: "", at: terms.deadline };
    case "deadline":
      return { label: t("tender.count.waiting_start"), value: "00:00", tone: "done" };
    case "decrypting": {
      if (view.paused) {
        const rest = view.paused_at == null || view.window_end == null ? null
          : view.window_end - view.paused_at;
        return { label: t("tender.count.paused"), value: rest == null ? "--:--"
          : formatDuration(rest), tone: "paused" };
      }
      const end = view.window_end;
      if (end == null) return { label: t("tender.count.window"), value: "--:--", tone: "" };
      return { label: t(end > now ? "tender.count.window" : "count.due"), value: left(end),
        tone: end - now <= 5 * 60000 ? "urgent" : "", at: end };
    }
    case "objections": {
      const until = view.objections_until;
      if (until != null && until > now) {
        return { label: t("tender.count.objections"), value: left(until), tone: "", at: until };
      }
      return { label: t("tender.count.objections_over"), value: "00:00", tone: "done" };
    }
    case "announced":
      return { label: t("tender.count.announced"), value: "00:00", tone: "done" };
    default:
      return { label: t(`tender.count.${view.state === "failed" ? "failed" : "closed"}`),
        value: "00:00", tone: "done" };
  }
}

export function renderCountdown(view, now) {
  const box = $("#tcount-box");
  if (!box) return;
  const c = tenderCountdown(view, now);
  box.dataset.tone = c.tone;
  setText($("#tcount-label"), c.label);
  setText($("#tcount"), c.value);
  const at = $("#tcount-at");
  if (at) setText(at, c.at == null ? "" : t("tender.count.at", { at: formatDateTime(c.at, true) }));
}

// ------------------------------------------------------------------ head, banners, terms
export function renderHead(view, tenderId, titleKey) {
  setText($("#tender-id"), tenderId);
  if (!view) return;
  setText($("#tender-title"), view.title ?? tenderId);
  document.title = `${view.title ?? tenderId} · ${t(titleKey)}`;
  const badge = $("#tender-state");
  badge.dataset.state = view.state ?? "";
  setText(badge, stateName(view.state));
}

export function renderBanners(view) {
  const paused = view?.state === "decrypting" && !!view.paused;
  show($("#paused-banner"), paused);
  setText($("#paused-reason"), paused && view.pause_reason
    ? t("frozen.reason", { reason: view.pause_reason }) : "");
  const failed = view?.state === "failed";
  show($("#failed-banner"), failed);
  if (failed) {
    const f = view.failure ?? {};
    setText($("#failed-detail"), f.code === "too_few_bids"
      ? t("tender.failed.too_few", { min: view.terms?.min_bids ?? 3 })
      : t("tender.failed.declared", { reason: f.text || "—" }));
  }
}

export function renderTerms(view) {
  const terms = view?.terms;
  if (!terms || !$("#terms")) return;
  setText($("#term-deadline"), formatDateTime(terms.deadline, true));
  setText($("#term-check-in"), formatDateTime(terms.check_in_from));
  setText($("#term-window"), t("tender.minutes", { n: Math.round(terms.decrypt_window / 60000) }));
  setText($("#term-min-bids"), String(terms.min_bids ?? 3));
  show($("#term-ceiling-row"), terms.ceiling != null);
  setText($("#term-ceiling"), yuanText(terms.ceiling));
  show($("#term-budget-row"), terms.budget != null);
  setText($("#term-budget"), yuanText(terms.budget));
}

// ------------------------------------------------------------------ bids and read-out
function outcomeBadge(outcome) {
  return el("span", { class: "outcome", "data-outcome": outcome ?? "waiting",
    text: outcomeName(outcome) });
}

function meTag(mine) {
  return mine ? el("span", { class: "me-tag", text: t("history.me") }) : null;
}

/** The received bids (public from the start), each with its bidder's state now. */
export function renderBids(view, { me = null } = {}) {
  const body = $("#bids");
  if (!body) return;
  const started = STARTED.has(view?.state) || (view?.state === "failed" && view.bids?.length);
  const bids = started ? view.bids ?? [] : [];
  const rows = bids.map((b) => el("tr", { "data-bidder": b.bidder,
    "data-outcome": b.outcome ?? "waiting", class: b.bidder === me ? "mine" : null },
  el("td", {}, bidderLabel(b), meTag(b.bidder === me)),
  el("td", { class: "num hash", title: b.sha256, text: shortHash(b.sha256) }),
  el("td", { class: "num num-col", text: formatBytes(b.size) }),
  el("td", { class: "num", text: b.submitted_at == null ? "—"
    : formatDateTime(b.submitted_at, true) }),
  el("td", {}, outcomeBadge(b.outcome),
    b.checked_in_at ? el("span", { class: "muted small checked", text: t("tender.checked_in.short") })
      : null)));
  body.replaceChildren(...rows);
  show($("#bids-table"), rows.length > 0);
  const empty = $("#bids-empty");
  show(empty, rows.length === 0);
  setText(empty, started ? t("tender.bids.none") : t("tender.bids.before_start"));
  const count = $("#bids-count");
  if (count) {
    const settled = bids.filter((b) => (b.outcome ?? "waiting") !== "waiting").length;
    setText(count, rows.length ? t("tender.bids.count", { n: rows.length, settled }) : "");
  }
}

/** The read-out (唱标): every received bid with its summary once announced. */
export function renderReadout(view, { me = null } = {}) {
  const card = $("#readout-card");
  if (!card) return;
  const rows = RECORDED.has(view?.state) || view?.state === "failed" ? view.read_out ?? [] : [];
  show(card, rows.length > 0);
  $("#readout").replaceChildren(...rows.map((r) => {
    const s = r.summary ?? null;
    const cell = (text, cls = null) => el("td", { class: cls, text: s ? text ?? "—" : "—" });
    return el("tr", { "data-bidder": r.bidder, "data-outcome": r.outcome ?? "waiting",
      class: r.bidder === me ? "mine" : null },
    el("td", {}, bidderLabel(r), meTag(r.bidder === me)),
    el("td", { class: "num num-col price-cell", text: s ? yuanText(s.price) : "—" },
      s?.price ? el("div", { class: "upper small muted", lang: "zh-CN",
        text: upperYuan(s.price) }) : null),
    cell(s?.duration_days == null ? null : String(s.duration_days), "num"),
    cell(s?.quality),
    cell(s?.manager),
    cell(s?.note),
    el("td", {}, outcomeBadge(r.outcome)));
  }));
}

// ------------------------------------------------------------------ objections
/**
 * The objections and the host's answers. `answerForm(objection)` may return a node shown
 * under an unanswered objection (the host's page).
 */
export function renderObjections(view, { me = null, answerForm = null } = {}) {
  const card = $("#objections-card");
  if (!card) return;
  const list = view?.objections ?? [];
  const open = view?.state === "objections";
  show(card, open || list.length > 0);
  const items = list.map((o) => {
    const answered = o.answer != null;
    return el("li", { class: "objection", "data-id": o.objection_id,
      "data-answered": answered ? "yes" : "no" },
    el("div", { class: "objection-meta" },
      el("strong", { text: bidderLabel(o) }), meTag(o.bidder === me),
      el("span", { class: "num muted small", text: formatTime(o.at) })),
    el("p", { class: "objection-text", text: o.text }),
    answered
      ? el("div", { class: "objection-answer" },
        el("span", { class: "label", text: t("tender.objection.answer") }),
        el("p", { text: o.answer }),
        el("span", { class: "num muted small", text: formatTime(o.answered_at) }))
      : el("div", { class: "objection-pending" },
        el("span", { class: "muted", text: t("tender.objection.pending") }),
        answerForm ? answerForm(o) : null));
  });
  $("#objections").replaceChildren(...items);
  const empty = $("#objections-empty");
  show(empty, list.length === 0);
  setText(empty, t("tender.objection.none"));
}

// ------------------------------------------------------------------ the record
export function renderRecord(view, tenderId) {
  const card = $("#record-card");
  if (!card) return;
  const ready = RECORDED.has(view?.state) || view?.state === "failed";
  show(card, ready);
  if (!ready) return;
  const base = `/api/tenders/${encodeURIComponent(tenderId)}/record`;
  $("#record-html").href = `${base}.html`;
  $("#record-pdf").href = `${base}.pdf`;
  $("#record-json").href = `${base}.json`;
  const confirmed = view.confirmed ?? [];
  const names = (view.bids ?? []).filter((b) => confirmed.includes(b.bidder)).map(bidderLabel);
  setText($("#record-confirmed"), t("tender.record.confirmed", { n: confirmed.length,
    names: names.join("、") || "—" }));
}

/** Everything a view-only part of a page shows. */
export function renderView(view, tenderId, { me = null, now, titleKey, answerForm = null }) {
  renderHead(view, tenderId, titleKey);
  if (!view) return;
  renderBanners(view);
  renderTerms(view);
  renderCountdown(view, now);
  renderBids(view, { me });
  renderReadout(view, { me });
  renderObjections(view, { me, answerForm });
  renderRecord(view, tenderId);
}
