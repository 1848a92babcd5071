// Rendering shared by the hall and the board: the lot header, price, countdown, banners,
// facts and the bid history table. Each function reads a LotState and writes by element id.

import { phaseName, t } from "./i18n.js";
import { grouped, wan } from "./money.js";
import { $, countdown, el, formatTime, setText, show } from "./ui.js";

const yuan = (amount) => (amount == null ? "—" : grouped(amount));

export function renderHead(lot) {
  const s = lot.s;
  setText($("#lot-id"), lot.lotId);
  if (!s) return;
  setText($("#lot-title"), s.title);
  document.title = `${s.title} · ${t(document.body.classList.contains("page-hall")
    ? "hall.title" : "board.title")}`;
  setText($("#lot-kind"), s.kind ? t(`kind.${s.kind}`) : "");
  const badge = $("#phase");
  badge.dataset.phase = s.phase ?? "";
  setText(badge, phaseName(s.phase));
}

export function renderPrice(lot) {
  const s = lot.s;
  if (!s) return;
  const none = s.price == null;
  const price = $("#price");
  price.classList.toggle("none", none);
  setText(price, none ? t("price.none") : grouped(s.price));
  show($("#price-unit"), !none);
  setText($("#price-wan"), none ? "" : t("price.wan", { wan: wan(s.price) }));
  setText($("#leader"), s.leader == null ? t("leader.none") : String(s.leader));
  setText($("#start-price"), yuan(s.start_price));
  setText($("#increment"), yuan(s.increment));
  setText($("#bid-count"), String(s.bid_count ?? 0));
  const next = $("#next-min");
  if (next) setText(next, ["sold", "unsold", "capped"].includes(s.phase) ? "—" : yuan(s.next_min));
  if ($("#deposit")) setText($("#deposit"), yuan(s.deposit));
  if ($("#price-cap")) {
    show($("#cap-fact"), s.price_cap != null);
    setText($("#price-cap"), yuan(s.price_cap));
  }
}

export function renderCountdown(lot, now) {
  const c = countdown(lot.s, now);
  const box = $("#countdown-box");
  box.dataset.tone = c.tone;
  setText($("#countdown-label"), c.label);
  setText($("#countdown"), c.value);
}

export function renderBanners(lot) {
  const s = lot.s;
  if (!s) return;
  show($("#frozen-banner"), !!s.frozen);
  setText($("#frozen-reason"), s.frozen && s.frozen_reason
    ? t("frozen.reason", { reason: s.frozen_reason }) : "");
  const r = s.result;
  const banner = $("#result-banner");
  show(banner, !!r);
  if (!r) return;
  let title;
  let detail;
  let tone;
  if (r.kind === "capped") {
    tone = "capped";
    title = t("result.capped");
    detail = t("result.capped.detail", { price: grouped(r.price), paddle: r.paddle });
  } else if (r.outcome === "sold") {
    tone = "sold";
    title = t("result.sold");
    detail = t("result.sold.detail", { price: grouped(r.price), wan: wan(r.price),
      paddle: r.paddle });
  } else {
    tone = "unsold";
    title = t("result.unsold");
    detail = t("result.unsold.detail", { reason: t(`reason.${r.reason ?? "no_bids"}`) });
  }
  banner.dataset.tone = tone;
  setText($("#result-title"), title);
  setText($("#result-detail"), detail);
}

/** The history table, newest first, at most `limit` rows; rows of `mine` are marked. */
export function renderHistory(lot, { limit = 200, mine = null } = {}) {
  const bids = lot.allBids();
  const body = $("#history");
  const rows = [];
  for (let i = bids.length - 1; i >= 0 && rows.length < limit; i -= 1) {
    const b = bids[i];
    const row = el("tr", { "data-amount": String(b.amount), "data-paddle": String(b.paddle),
      class: [i === bids.length - 1 ? "newest" : "", b.paddle === mine ? "mine" : ""]
        .filter(Boolean).join(" ") || null },
    el("td", { class: "num paddle" }, String(b.paddle),
      b.paddle === mine ? el("span", { class: "me-tag", text: t("history.me") }) : null),
    el("td", { class: "num num-col", text: grouped(b.amount) }),
    el("td", { class: "num", text: formatTime(b.at) }));
    rows.push(row);
  }
  body.replaceChildren(...rows);
  show($("#history-empty"), bids.length === 0);
  const count = $("#history-count");
  if (count) {
    const total = Math.max(bids.length, lot.s?.bid_count ?? 0);
    setText(count, total ? t("history.count", { n: total })
      + (total > limit ? ` · ${t("history.more", { n: limit })}` : "") : "");
  }
}
