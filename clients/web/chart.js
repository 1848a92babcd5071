// A price-over-time step chart, drawn as plain SVG. The price holds until the next bid, so the
// line runs flat and then steps up at each bid; it extends to "now" while the lot is running.

import { t } from "./i18n.js";
import { grouped, wan } from "./money.js";
import { formatDateTime, formatTime } from "./ui.js";

const NS = "http://www.w3.org/2000/svg";
const MAX_POINTS = 300; // markers for the latest bids; the line always shows every bid
const HOUR = 3600e3;
const BEIJING = 8 * HOUR; // UTC+8, no daylight saving: ticks fall on round Beijing times

function node(tag, attrs = {}, text = null) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  if (text != null) n.textContent = text;
  return n;
}

function niceStep(raw) {
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

const TIME_STEPS = [1e3, 5e3, 10e3, 15e3, 30e3, 60e3, 120e3, 300e3, 600e3, 900e3, 1800e3, HOUR,
  2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, 24 * HOUR, 48 * HOUR, 7 * 24 * HOUR];

/**
 * Draw `bids` (oldest first, {at, paddle, amount}) into `svg`.
 * opts: {until: the time the last price holds to (now, or the close), startPrice}
 */
export function renderChart(svg, bids, { until, startPrice = null } = {}) {
  const width = Math.max(280, Math.round(svg.clientWidth || svg.parentNode?.clientWidth || 600));
  const height = Math.max(180, Math.round(svg.clientHeight || 280));
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.dataset.count = String(bids.length);
  svg.replaceChildren();
  const last = bids[bids.length - 1];
  svg.setAttribute("aria-label", last
    ? t("chart.label", { n: bids.length, price: grouped(last.amount) }) : t("chart.empty"));
  if (!last) {
    svg.append(node("text", { x: width / 2, y: height / 2, class: "chart-empty",
      "text-anchor": "middle" }, t("chart.empty")));
    return;
  }

  const m = { left: 78, right: 18, top: 26, bottom: 30 };
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;

  // Time: from the first bid to `until`, at least ten seconds wide.
  let x0 = bids[0].at;
  let x1 = Math.max(until ?? last.at, last.at);
  if (x1 - x0 < 10e3) x1 = x0 + 10e3;
  x0 -= (x1 - x0) * 0.02;
  // Price: from the start price (or the first bid) to the last bid, with some air.
  let lo = Math.min(startPrice ?? bids[0].amount, bids[0].amount);
  let hi = last.amount;
  if (hi <= lo) {
    // One price only: a flat line in the middle of a ±1 % band.
    const band = Math.max(1, Math.round(lo * 0.01));
    lo -= band;
    hi += band;
  } else {
    const air = (hi - lo) * 0.08;
    lo -= air;
    hi += air;
  }
  lo = Math.max(0, lo);
  const X = (at) => m.left + ((at - x0) / (x1 - x0)) * w;
  const Y = (amount) => m.top + (1 - (amount - lo) / (hi - lo)) * h;

  // Grid and price axis (in 万元).
  const grid = node("g", { class: "chart-grid" });
  const step = niceStep((hi - lo) / 4);
  for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) {
    const y = Y(v).toFixed(1);
    grid.append(node("line", { x1: m.left, x2: width - m.right, y1: y, y2: y }));
    grid.append(node("text", { x: m.left - 8, y, dy: "0.35em", "text-anchor": "end",
      class: "chart-tick" }, wan(Math.round(v))));
  }
  grid.append(node("text", { x: m.left - 8, y: 12, "text-anchor": "end", class: "chart-unit" },
    t("chart.wan")));
  // Time axis, on round Beijing times.
  const span = x1 - x0;
  const tstep = TIME_STEPS.find((s) => span / s <= 5) ?? TIME_STEPS[TIME_STEPS.length - 1];
  const long = span > 24 * HOUR;
  for (let v = Math.ceil((x0 + BEIJING) / tstep) * tstep - BEIJING; v <= x1; v += tstep) {
    const x = X(v).toFixed(1);
    grid.append(node("line", { x1: x, x2: x, y1: m.top, y2: m.top + h, class: "chart-vline" }));
    const label = long ? formatDateTime(v).slice(5) : tstep < 60e3 ? formatTime(v)
      : formatTime(v).slice(0, 5);
    grid.append(node("text", { x, y: height - 10, "text-anchor": "middle", class: "chart-tick" },
      label));
  }
  grid.append(node("line", { x1: m.left, x2: width - m.right, y1: m.top + h, y2: m.top + h,
    class: "chart-axis" }));
  svg.append(grid);

  // The step line and the area under it.
  let d = `M${X(bids[0].at).toFixed(1)},${Y(bids[0].amount).toFixed(1)}`;
  for (let i = 1; i < bids.length; i += 1) {
    d += `H${X(bids[i].at).toFixed(1)}V${Y(bids[i].amount).toFixed(1)}`;
  }
  d += `H${X(x1).toFixed(1)}`;
  const base = (m.top + h).toFixed(1);
  svg.append(node("path", { d: `${d}V${base}H${X(bids[0].at).toFixed(1)}Z`, class: "chart-area" }));
  svg.append(node("path", { d, class: "chart-line" }));

  // Markers for the latest bids; the newest one stands out.
  const points = node("g", { class: "chart-points" });
  const from = Math.max(0, bids.length - MAX_POINTS);
  for (let i = from; i < bids.length; i += 1) {
    const b = bids[i];
    const newest = i === bids.length - 1;
    const c = node("circle", { cx: X(b.at).toFixed(1), cy: Y(b.amount).toFixed(1),
      r: newest ? 5 : 3, class: newest ? "chart-pt newest" : "chart-pt",
      "data-amount": b.amount, "data-paddle": b.paddle });
    c.append(node("title", {}, `${b.paddle} · ${grouped(b.amount)} · ${formatTime(b.at)}`));
    points.append(c);
  }
  svg.append(points);
}
