// Page furniture shared by every page: the header (language switch, connection state, server
// clock), time and countdown formats, and small DOM helpers. Text always goes in through
// textContent: titles and reasons come from staff and are never parsed as HTML.

import { applyStatic, lang, onLangChange, setLang, t } from "./i18n.js";

export const $ = (selector, root = document) => root.querySelector(selector);

export function setText(el, text) {
  if (el && el.textContent !== text) el.textContent = text;
}

export function show(el, visible) {
  if (el) el.hidden = !visible;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role" || k === "href"
      || k === "title" || k === "lang") node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

const TZ = "Asia/Shanghai"; // the trading centre's official time is Beijing time

function locale() {
  return lang() === "zh" ? "zh-CN" : "en-GB";
}

/** "14:03:22" in Beijing time. */
export function formatTime(ms) {
  if (ms == null) return "—";
  return new Intl.DateTimeFormat(locale(), {
    timeZone: TZ, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  }).format(new Date(ms));
}

/** "2026-03-01 14:03" in Beijing time. */
export function formatDateTime(ms, seconds = false) {
  if (ms == null) return "—";
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
    minute: "2-digit", second: seconds ? "2-digit" : undefined, hourCycle: "h23",
  }).formatToParts(new Date(ms));
  const p = Object.fromEntries(parts.map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}${seconds ? `:${p.second}` : ""}`;
}

const pad = (n) => String(n).padStart(2, "0");

/** "04:59", "01:04:59" or "2天 01:04:59" for a duration in ms (never negative). */
export function formatDuration(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const d = Math.floor(total / 86400);
  const h = Math.floor((total % 86400) / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (d > 0) return `${t("count.days", { d })} ${pad(h)}:${pad(m)}:${pad(s)}`;
  if (h > 0) return `${pad(h)}:${pad(m)}:${pad(s)}`;
  return `${pad(m)}:${pad(s)}`;
}

/**
 * What the countdown shows for a lot state at server time `now`:
 * {label, value, tone} where tone is "", "urgent" (last minute of a countdown), "paused", "done".
 */
export function countdown(s, now) {
  if (!s) return { label: t("count.none"), value: "--:--", tone: "" };
  if (["sold", "unsold", "capped"].includes(s.phase)) {
    return { label: t("count.final"), value: "00:00", tone: "done" };
  }
  if (s.frozen) return { label: t("count.frozen"), value: "--:--", tone: "paused" };
  if (s.ends_at == null) return { label: t(`count.${s.phase}`), value: "--:--", tone: "" };
  const left = s.ends_at - now;
  const label = left > 0 ? t(`count.${s.phase}`) : t("count.due");
  const urgent = ["timed", "auction"].includes(s.phase) && left <= 60000;
  return { label, value: formatDuration(left), tone: urgent ? "urgent" : "" };
}

const BRAND = `
  <a class="brand" href="/">
    <img class="brand-mark" src="/static/emblem.svg" alt="" width="34" height="34">
    <span class="brand-text">
      <span class="brand-centre" data-i18n="site.centre">公共资源交易中心</span>
      <span class="brand-short" data-i18n="site.centre.short">公共资源交易中心</span>
      <span class="brand-system" data-i18n="site.system">网上竞价系统</span>
    </span>
  </a>`;
const CLOCK = `<span id="server-clock" class="server-clock"><span class="clock-label"></span><span
  class="clock-value num">--:--:--</span></span>`;
const CONN = `<span id="conn" class="conn" data-state="connecting" role="status"><span class="dot"
  aria-hidden="true"></span><span class="conn-text"></span></span>`;

/**
 * Build and wire the page's `<header class="topbar">`: brand and language switch, plus a
 * server clock and connection badge when the page passes `clock` and `live`.
 */
export function header({ live = null, clock = null } = {}) {
  const bar = $("header.topbar");
  if (bar && !bar.firstElementChild) {
    bar.innerHTML = `${BRAND}<div class="topbar-right">${clock ? CLOCK : ""}${live ? CONN : ""}
      <button id="lang-switch" class="lang-switch" type="button">English</button></div>`;
  }
  applyStatic();
  const button = $("#lang-switch");
  if (button) {
    const label = () => {
      setText(button, t("lang.other"));
      button.setAttribute("aria-label", t("lang.other.label"));
      button.setAttribute("lang", lang() === "zh" ? "en" : "zh-CN");
    };
    label();
    button.addEventListener("click", () => setLang(lang() === "zh" ? "en" : "zh"));
    onLangChange(label);
  }
  const badge = $("#conn");
  if (badge && live) {
    const paint = () => {
      badge.dataset.state = live.status;
      setText($(".conn-text", badge), t(`conn.${live.status}`));
    };
    paint();
    live.addEventListener("status", paint);
    onLangChange(paint);
  }
  const clockEl = $("#server-clock");
  if (clockEl && clock) {
    const tick = () => {
      setText($(".clock-label", clockEl), t("clock.label"));
      setText($(".clock-value", clockEl), clock.synced ? formatTime(clock.now()) : "--:--:--");
      clockEl.title = clock.synced ? `±${Math.round((clock.rtt ?? 0) / 2)} ms` : t("clock.unsynced");
    };
    tick();
    setInterval(tick, 250);
    onLangChange(tick);
  }
}

/** The lot id from a page path such as /hall/{lot_id} or /board/{lot_id}. */
export function lotIdFromPath() {
  const parts = location.pathname.split("/").filter(Boolean);
  return decodeURIComponent(parts[parts.length - 1] ?? "");
}
