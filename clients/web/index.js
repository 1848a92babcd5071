// The list of lots: /. Read from GET /api/lots every 15 s; each row links to its board.

import { onLangChange, phaseName, t } from "./i18n.js";
import { grouped } from "./money.js";
import { $, el, formatDateTime, header, setText, show } from "./ui.js";

let lots = null;
let failed = false;
let tenders = null;
let tendersFailed = false;

header();
onLangChange(() => {
  render();
  renderTenders();
});

async function load() {
  try {
    const response = await fetch("/api/lots", { cache: "no-store" });
    if (!response.ok) throw new Error(String(response.status));
    lots = (await response.json()).lots ?? [];
    failed = false;
  } catch {
    failed = true;
  }
  render();
}

async function loadTenders() {
  try {
    const response = await fetch("/api/tenders", { cache: "no-store" });
    if (!response.ok) throw new Error(String(response.status));
    tenders = (await response.json()).tenders ?? [];
    tendersFailed = false;
  } catch {
    tendersFailed = true;
  }
  renderTenders();
}

function renderTenders() {
  const status = $("#tenders-status");
  const table = $("#tenders-table");
  if (tenders === null) {
    setText(status, tendersFailed ? t("index.failed") : t("index.loading"));
    show(table, false);
    return;
  }
  show(status, tendersFailed || tenders.length === 0);
  setText(status, tendersFailed ? t("index.failed") : t("tender.index.empty"));
  show(table, tenders.length > 0);
  $("#tenders").replaceChildren(...tenders.map((x) => {
    const page = `/tender/${encodeURIComponent(x.tender_id)}`;
    return el("tr", { "data-tender": x.tender_id },
      el("td", {},
        el("a", { class: "lot-link", href: page, text: x.title }),
        el("div", { class: "muted small num", text: x.tender_id })),
      el("td", {}, el("span", { class: "phase-badge tender-state", "data-state": x.state,
        text: t(`tender.state.${x.state}`) })),
      el("td", { class: "num", "data-label": t("tender.terms.deadline"),
        text: formatDateTime(x.terms?.deadline) }),
      el("td", { class: "action-cell" },
        el("a", { class: "btn-link", href: page, text: t("tender.index.open") })));
  }));
}

function render() {
  const status = $("#lots-status");
  const table = $("#lots-table");
  if (lots === null) {
    setText(status, failed ? t("index.failed") : t("index.loading"));
    show(table, false);
    return;
  }
  show(status, failed || lots.length === 0);
  setText(status, failed ? t("index.failed") : t("index.empty"));
  show(table, lots.length > 0);
  const rows = lots.map((lot) => {
    const board = `/board/${encodeURIComponent(lot.lot_id)}`;
    const phase = el("span", { class: "phase-badge", "data-phase": lot.phase,
      text: phaseName(lot.phase) });
    return el("tr", { "data-lot": lot.lot_id },
      el("td", {},
        el("a", { class: "lot-link", href: board, text: lot.title }),
        el("div", { class: "muted small num", text: lot.lot_id })),
      el("td", {}, phase,
        lot.frozen ? el("span", { class: "phase-badge", "data-phase": "frozen",
          text: t("index.frozen") }) : null),
      el("td", { class: "num num-col price-cell",
        text: lot.price == null ? t("price.none") : grouped(lot.price) }),
      el("td", { class: "num", "data-label": t("index.ends"),
        text: lot.ends_at == null ? "—" : formatDateTime(lot.ends_at) }),
      el("td", { class: "action-cell" },
        el("a", { class: "btn-link", href: board, text: t("index.open") })));
  });
  $("#lots").replaceChildren(...rows);
}

load();
setInterval(load, 15000);
loadTenders();
setInterval(loadTenders, 15000);
