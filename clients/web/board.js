// The public board: /board/{lot_id}. No login; bidders appear as paddle numbers only.
// The live video of the lot plays beside the history once the host goes live (stream-panels.js).

import { renderChart } from "./chart.js";
import { onLangChange, refusal } from "./i18n.js";
import { FINAL, Live, LotState, ServerClock, fetchBids } from "./live.js";
import { renderBanners, renderCountdown, renderHead, renderHistory, renderPrice } from
  "./lotview.js";
import { viewerPanel } from "./stream-panels.js";
import { $, formatDateTime, formatTime, header, lotIdFromPath, setText, show } from "./ui.js";

const lotId = lotIdFromPath();
const clock = new ServerClock();
const live = new Live({ clock });
const lot = new LotState(lotId);
let historyLoaded = false;
let error = null;

header({ live, clock });

live.addEventListener("snapshot", ({ detail }) => {
  lot.snapshot(detail);
  error = null;
  if (!historyLoaded) loadHistory();
  render();
});
live.addEventListener("event", ({ detail }) => {
  lot.event(detail);
  render(detail.kind === "bid" || detail.kind === "closed" || detail.kind === "capped");
});
live.addEventListener("error", ({ detail }) => {
  error = detail;
  render();
});
onLangChange(() => render());

async function loadHistory() {
  historyLoaded = true;
  try {
    // The snapshot holds the last 200 bids; the chart shows every one.
    lot.addHistory(await fetchBids(lotId));
    render();
  } catch {
    historyLoaded = false; // tried again with the next snapshot
  }
}

/** When the running phase is due to end: a time today, or a date and time further off. */
function renderEnds() {
  const s = lot.s;
  const at = s.frozen || FINAL.has(s.phase) ? null : s.ends_at;
  const far = at != null && Math.abs(at - clock.now()) > 12 * 3600e3;
  setText($("#ends-at"), at == null ? "—" : far ? formatDateTime(at) : formatTime(at));
}

let chartDrawn = 0;
function drawChart() {
  const s = lot.s;
  const closedAt = s.result?.at ?? null;
  const until = FINAL.has(s.phase) ? closedAt : clock.now();
  renderChart($("#chart"), lot.allBids(), { until, startPrice: s.start_price });
  chartDrawn = Date.now();
}

function render(chart = true) {
  show($("#notice"), !!error);
  setText($("#notice-text"), error ? refusal(error) : "");
  renderHead(lot);
  if (!lot.loaded) return;
  renderPrice(lot);
  renderBanners(lot);
  renderHistory(lot, { limit: 200 });
  renderCountdown(lot, clock.now());
  renderEnds();
  if (chart) drawChart();
}

setInterval(() => {
  if (!lot.loaded) return;
  renderCountdown(lot, clock.now());
  // While the lot runs the last price holds until now: stretch the chart every few seconds.
  if (!FINAL.has(lot.s.phase) && Date.now() - chartDrawn > 5000) drawChart();
}, 200);
new ResizeObserver(() => lot.loaded && drawChart()).observe($("#chart"));

live.watch(lotId);
live.start();
render();
viewerPanel("lot", lotId);
