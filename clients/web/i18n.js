// Texts in Simplified Chinese (default) and English. The choice is kept in localStorage.
// Refusal codes come from the README's table; the server's English `message` is never shown
// as is, so every code a page can meet has a sentence here in both languages.

import { grouped } from "./money.js";
import * as codes from "./i18n-codes.js";
import * as stream from "./i18n-stream.js";
import * as tender from "./i18n-tender.js";

const STORE_KEY = "bidhall.lang";
export const LANGS = ["zh", "en"];

const zh = {
  "site.centre": "公共资源交易中心",
  "site.centre.short": "公共资源交易中心",
  "site.system": "网上竞价系统",
  "nav.lots": "竞价项目",
  "lang.other": "English",
  "lang.other.label": "Switch to English",
  "clock.label": "北京时间",
  "clock.unsynced": "正在校时…",
  "conn.connecting": "连接中…",
  "conn.connected": "已连接",
  "conn.reconnecting": "正在重新连接…",
  "conn.offline": "网络离线",
  "conn.stopped": "已断开",

  "phase.announcement": "公告",
  "phase.listing": "挂牌",
  "phase.listing_stopped": "挂牌截止",
  "phase.preparation": "准备",
  "phase.timed": "限时竞价",
  "phase.auction": "网上拍卖",
  "phase.sold": "成交",
  "phase.unsold": "流拍",
  "phase.capped": "达到最高限价",

  "kind.land": "国有建设用地使用权",
  "kind.mining": "矿业权",

  "count.announcement": "距挂牌开始",
  "count.listing": "距挂牌截止",
  "count.listing_stopped": "距挂牌截止",
  "count.preparation": "距网上拍卖开始",
  "count.timed": "限时竞价剩余时间",
  "count.auction": "拍卖倒计时",
  "count.frozen": "竞价已暂停，计时停止",
  "count.final": "竞价已结束",
  "count.due": "等待系统确认…",
  "count.none": "—",
  "count.days": "{d}天",
  "count.ends_at": "截止时间",

  "lot.id": "宗地编号",
  "lot.title": "宗地名称",
  "price.current": "当前价",
  "price.none": "暂无报价",
  "price.unit": "元",
  "price.wan": "{wan} 万元",
  "price.start": "起始价",
  "price.increment": "加价幅度",
  "price.next_min": "最低可报价",
  "price.cap": "最高限价",
  "price.deposit": "竞买保证金",
  "price.bids": "报价次数",
  "leader.label": "领先号牌",
  "leader.none": "—",
  "yuan": "{amount} 元",

  "you.paddle": "您的竞买号牌",
  "you.leading": "当前最高报价",
  "you.outbid": "已被超越",
  "you.nobid": "尚未报价",
  "you.closed.won": "您已竞得",
  "you.closed.lost": "未竞得",

  "bid.one": "加价一次 +{inc}",
  "bid.first": "按起始价报价",
  "bid.one.amount": "报价 {amount} 元",
  "bid.custom": "自定义报价",
  "bid.custom.placeholder": "输入报价金额（元）",
  "bid.custom.submit": "核对并提交",
  "bid.custom.hint": "最低可报价 {min} 元",
  "bid.disabled.leading": "您是当前最高报价人，无需加价",
  "bid.disabled.phase": "当前阶段不接受报价",
  "bid.disabled.frozen": "竞价已暂停，暂不能报价",
  "bid.disabled.ineligible": "您不具备本阶段的竞价资格",
  "bid.disabled.offline": "连接中断，恢复连接后方可报价",
  "bid.disabled.pending": "正在等待上一笔报价的确认",
  "bid.disabled.capped": "已达到最高限价，价格报价已停止",
  "bid.disabled.stopped": "本页已断开，暂不能报价",
  "input.invalid": "请输入 1 至 1,000,000,000,000,000 之间的整数金额（元）",
  "input.low": "报价不得低于最低可报价 {min} 元",
  "input.above_cap": "报价不得高于最高限价 {cap} 元",

  "confirm.title": "确认报价",
  "confirm.lot": "宗地",
  "confirm.figures": "小写金额",
  "confirm.upper": "大写金额",
  "confirm.note": "报价一经提交即具法律效力，不可撤回。",
  "confirm.stale": "注意：当前最低可报价已变为 {min} 元，此报价可能不被接受。",
  "confirm.ok": "确认提交",
  "confirm.cancel": "返回修改",

  "fb.sending": "报价 {amount} 元已发送，等待系统确认…",
  "fb.waiting": "报价 {amount} 元尚未确认，连接恢复后将自动重新提交（同一报价编号，不会重复）。",
  "fb.ack": "报价成功：{amount} 元，系统时间 {time}",
  "fb.reject": "报价未被接受：{reason}",
  "fb.error": "请求未被接受：{reason}",

  "session.replaced":
    "您的竞买账号已在其他页面或设备登录，本页已断开连接。如需在本页继续竞价，请点击“在本页继续”。",
  "session.takeover": "在本页继续",
  "token.missing": "缺少竞买凭证。请使用交易中心发放的竞买大厅链接进入。",
  "token.other_lot": "此竞买凭证属于另一宗地（{lot}），请使用本宗地的竞买大厅链接。",
  "token.fatal": "无法登录竞买大厅：{reason}",
  "link.board": "查看公开看板",
  "link.hall": "进入竞买大厅",

  "frozen.banner": "竞价已暂停",
  "frozen.reason": "原因：{reason}",
  "result.sold": "成交",
  "result.sold.detail": "成交价 {price} 元（{wan} 万元），竞得号牌 {paddle}",
  "result.unsold": "流拍",
  "result.unsold.detail": "流拍原因：{reason}",
  "result.capped": "达到最高限价",
  "result.capped.detail": "号牌 {paddle} 报价达到最高限价 {price} 元，转入后续程序",
  "reason.no_bids": "无人报价",
  "reason.reserve_not_met": "最高报价未达到保留价",

  "history.title": "报价记录",
  "history.recent": "最近报价",
  "history.paddle": "号牌",
  "history.me": "本人",
  "history.amount": "报价（元）",
  "history.time": "时间（北京时间）",
  "history.empty": "暂无报价",
  "history.count": "共 {n} 次报价",
  "history.more": "仅显示最近 {n} 条",
  "chart.title": "价格走势",
  "chart.empty": "暂无报价，出现报价后显示价格走势",
  "chart.label": "价格走势图：共 {n} 次报价，最新价 {price} 元",
  "chart.wan": "万元",

  "hall.title": "竞买大厅",
  "board.title": "公开看板",
  "board.public": "公开信息 · 竞买人仅以号牌显示",
  "index.title": "竞价项目一览",
  "index.lot": "宗地",
  "index.phase": "阶段",
  "index.price": "当前价（元）",
  "index.ends": "截止时间",
  "index.open": "查看看板",
  "index.empty": "暂无竞价项目",
  "index.loading": "正在加载…",
  "index.failed": "无法加载项目列表，稍后自动重试。",
  "index.frozen": "已暂停",

  "error.unknown": "未知错误（{code}）",

  // ---------------------------------------------------------------- sealed-bid tenders

  // ---------------------------------------------------------------- live video
};

const en = {
  "site.centre": "Public Resource Trading Centre",
  "site.centre.short": "Trading Centre",
  "site.system": "Online Bidding",
  "nav.lots": "Lots",
  "lang.other": "中文",
  "lang.other.label": "切换到中文",
  "clock.label": "Beijing time",
  "clock.unsynced": "Syncing clock…",
  "conn.connecting": "Connecting…",
  "conn.connected": "Connected",
  "conn.reconnecting": "Reconnecting…",
  "conn.offline": "Offline",
  "conn.stopped": "Disconnected",

  "phase.announcement": "Announcement",
  "phase.listing": "Listing",
  "phase.listing_stopped": "Listing closed to bids",
  "phase.preparation": "Preparation",
  "phase.timed": "Timed bidding",
  "phase.auction": "Online auction",
  "phase.sold": "Sold",
  "phase.unsold": "Unsold",
  "phase.capped": "Price cap reached",

  "kind.land": "State land-use right",
  "kind.mining": "Mining right",

  "count.announcement": "Listing opens in",
  "count.listing": "Listing ends in",
  "count.listing_stopped": "Listing ends in",
  "count.preparation": "Auction starts in",
  "count.timed": "Time left",
  "count.auction": "Time left",
  "count.frozen": "Bidding paused; clock stopped",
  "count.final": "Bidding has closed",
  "count.due": "Awaiting the system…",
  "count.none": "—",
  "count.days": "{d}d",
  "count.ends_at": "Ends at",

  "lot.id": "Lot no.",
  "lot.title": "Lot",
  "price.current": "Current price",
  "price.none": "No bids yet",
  "price.unit": "yuan",
  "price.wan": "{wan} 万元",
  "price.start": "Start price",
  "price.increment": "Increment",
  "price.next_min": "Next minimum bid",
  "price.cap": "Price cap",
  "price.deposit": "Deposit",
  "price.bids": "Bids",
  "leader.label": "Leading paddle",
  "leader.none": "—",
  "yuan": "{amount} yuan",

  "you.paddle": "Your paddle",
  "you.leading": "You hold the highest bid",
  "you.outbid": "You have been outbid",
  "you.nobid": "No bid from you yet",
  "you.closed.won": "You won this lot",
  "you.closed.lost": "Not won",

  "bid.one": "Raise once +{inc}",
  "bid.first": "Bid the start price",
  "bid.one.amount": "Bid {amount} yuan",
  "bid.custom": "Custom amount",
  "bid.custom.placeholder": "Amount in yuan",
  "bid.custom.submit": "Review and submit",
  "bid.custom.hint": "Lowest acceptable bid: {min} yuan",
  "bid.disabled.leading": "You hold the highest bid",
  "bid.disabled.phase": "This phase does not take bids",
  "bid.disabled.frozen": "Bidding is paused",
  "bid.disabled.ineligible": "You may not bid in this phase",
  "bid.disabled.offline": "Connection lost; you can bid again once it is back",
  "bid.disabled.pending": "Waiting for your previous bid to be confirmed",
  "bid.disabled.capped": "The price cap has been reached; price bids have stopped",
  "bid.disabled.stopped": "This page is disconnected; it cannot bid",
  "input.invalid": "Enter a whole number of yuan from 1 to 1,000,000,000,000,000",
  "input.low": "The bid may not be below the lowest acceptable bid, {min} yuan",
  "input.above_cap": "The bid may not exceed the price cap, {cap} yuan",

  "confirm.title": "Confirm your bid",
  "confirm.lot": "Lot",
  "confirm.figures": "Amount in figures",
  "confirm.upper": "Amount in Chinese capitals (大写)",
  "confirm.note": "A bid is binding once submitted and cannot be withdrawn.",
  "confirm.stale":
    "Note: the lowest acceptable bid is now {min} yuan; this bid may be refused.",
  "confirm.ok": "Submit bid",
  "confirm.cancel": "Go back",

  "fb.sending": "Bid of {amount} yuan sent; awaiting confirmation…",
  "fb.waiting":
    "Bid of {amount} yuan not yet confirmed; it is sent again with the same bid id once the " +
    "connection is back (never placed twice).",
  "fb.ack": "Bid accepted: {amount} yuan at {time} (system time)",
  "fb.reject": "Bid refused: {reason}",
  "fb.error": "Request refused: {reason}",

  "session.replaced":
    "Your bidder account signed in on another page or device, so this page was disconnected. " +
    "To bid from this page, choose “Continue here”.",
  "session.takeover": "Continue here",
  "token.missing": "No bidder credential. Open the hall link issued by the trading centre.",
  "token.other_lot": "This credential is for another lot ({lot}). Use this lot's hall link.",
  "token.fatal": "Cannot sign in to the bidder hall: {reason}",
  "link.board": "Open the public board",
  "link.hall": "Enter the bidder hall",

  "frozen.banner": "Bidding paused",
  "frozen.reason": "Reason: {reason}",
  "result.sold": "Sold",
  "result.sold.detail": "Sold for {price} yuan ({wan} 万元) to paddle {paddle}",
  "result.unsold": "Unsold",
  "result.unsold.detail": "Reason: {reason}",
  "result.capped": "Price cap reached",
  "result.capped.detail":
    "Paddle {paddle} reached the price cap of {price} yuan; the follow-up procedure applies",
  "reason.no_bids": "no bids",
  "reason.reserve_not_met": "the highest bid did not reach the reserve",

  "history.title": "Bid history",
  "history.recent": "Recent bids",
  "history.paddle": "Paddle",
  "history.me": "You",
  "history.amount": "Amount (yuan)",
  "history.time": "Time (Beijing)",
  "history.empty": "No bids yet",
  "history.count": "{n} bids in all",
  "history.more": "Showing the latest {n}",
  "chart.title": "Price over time",
  "chart.empty": "The price chart appears with the first bid",
  "chart.label": "Price chart: {n} bids, latest {price} yuan",
  "chart.wan": "万元",

  "hall.title": "Bidder hall",
  "board.title": "Public board",
  "board.public": "Public information · bidders appear as paddle numbers only",
  "index.title": "Lots",
  "index.lot": "Lot",
  "index.phase": "Phase",
  "index.price": "Current price (yuan)",
  "index.ends": "Ends",
  "index.open": "Open board",
  "index.empty": "No lots yet",
  "index.loading": "Loading…",
  "index.failed": "Could not load the lots; retrying shortly.",
  "index.frozen": "Paused",

  "error.unknown": "Unknown error ({code})",

  // ---------------------------------------------------------------- sealed-bid tenders

  // ---------------------------------------------------------------- live video
};

const TEXTS = {
  zh: { ...zh, ...codes.zh, ...tender.zh, ...stream.zh },
  en: { ...en, ...codes.en, ...tender.en, ...stream.en },
};

function stored() {
  try {
    return localStorage.getItem(STORE_KEY);
  } catch {
    return null;
  }
}

let current = LANGS.includes(stored()) ? stored() : "zh";
const listeners = new Set();

export function lang() {
  return current;
}

export function setLang(next) {
  if (!LANGS.includes(next) || next === current) return;
  current = next;
  try {
    localStorage.setItem(STORE_KEY, next);
  } catch {
    // private mode: the choice lasts for this page only
  }
  applyStatic();
  for (const fn of listeners) fn(next);
}

export function onLangChange(fn) {
  listeners.add(fn);
}

/** The text for `key` with `{name}` placeholders filled from `params`. */
export function t(key, params = {}) {
  const text = TEXTS[current][key] ?? TEXTS.zh[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

export function has(key) {
  return key in TEXTS[current];
}

/** A refusal's sentence, by its stable code, with the figures it carries. */
export function refusal(msg) {
  const code = msg?.code ?? "";
  if (code === "too_low" && msg.minimum != null) {
    return t("code.too_low.min", { minimum: grouped(msg.minimum) });
  }
  if (code === "not_multiple" && msg.minimum != null) {
    return t("code.not_multiple.min", {
      increment: grouped(msg.increment ?? 0),
      minimum: grouped(msg.minimum),
    });
  }
  if (code === "rate_limited" && msg.retry_after_ms != null) {
    return t("code.rate_limited.wait", { seconds: Math.max(1, Math.ceil(msg.retry_after_ms / 1000)) });
  }
  if (has(`code.${code}`)) return t(`code.${code}`);
  return t("error.unknown", { code: code || "?" });
}

export function phaseName(phase) {
  return phase ? t(`phase.${phase}`) : "—";
}

/** Fill every element marked data-i18n (text), data-i18n-placeholder and data-i18n-aria. */
export function applyStatic(root = document) {
  document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  for (const el of root.querySelectorAll("[data-i18n-aria]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAria));
  }
}

/** Every code the README lists, for tests and checks: each has a text in both languages. */
export function missingCodes(codes) {
  return codes.filter((c) => !(`code.${c}` in TEXTS.zh) || !(`code.${c}` in TEXTS.en));
}
