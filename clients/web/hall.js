// The bidder hall: /hall/{lot_id}#token=...
// The token is read from the fragment (never sent to the server in a URL), kept in
// sessionStorage for reloads, and removed from the address bar at once.

import { onLangChange, refusal, t } from "./i18n.js";
import { BIDDING, FINAL, Live, LotState, ServerClock, fetchBids } from "./live.js";
import { renderBanners, renderCountdown, renderHead, renderHistory, renderPrice } from
  "./lotview.js";
import { MAX_AMOUNT, chineseUpper, grouped, parseAmount } from "./money.js";
import { $, formatTime, header, lotIdFromPath, setText, show } from "./ui.js";

const lotId = lotIdFromPath();
const token = takeToken(lotId);
const clock = new ServerClock();
const live = new Live({ token, clock });
const lot = new LotState(lotId);

const ui = {
  me: null, // my paddle, from welcome (or the snapshot's `you`)
  pending: null, // {bidId, amount}: the bid sent and not yet answered
  feedback: null, // {tone, key, params} or {tone, key, refusal}: shown under the controls
  notice: null, // {key, params, takeover}
  wrongLot: false,
  confirmAmount: null,
  historyLoaded: false,
};

function takeToken(id) {
  const key = `bidhall.token:${id}`;
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  try {
    if (fromHash) sessionStorage.setItem(key, fromHash);
  } catch {
    // storage refused: the token lives in this page only
  }
  if (location.hash) history.replaceState(history.state, "", location.pathname + location.search);
  try {
    return fromHash || sessionStorage.getItem(key);
  } catch {
    return fromHash;
  }
}

// ------------------------------------------------------------------ wiring
header({ live, clock });
$("#board-link").href = `/board/${encodeURIComponent(lotId)}`;
$("#notice-board").href = `/board/${encodeURIComponent(lotId)}`;
if (!token) ui.notice = { key: "token.missing" };

live.addEventListener("welcome", ({ detail }) => {
  ui.me = detail.paddle ?? null;
  ui.wrongLot = detail.role === "bidder" && detail.lot !== lotId;
  if (ui.wrongLot) ui.notice = { key: "token.other_lot", params: { lot: detail.lot } };
  else if (ui.notice?.key === "session.replaced") ui.notice = null;
  render();
});
live.addEventListener("snapshot", ({ detail }) => {
  lot.snapshot(detail);
  if (detail.you) ui.me = detail.you.paddle;
  if (!ui.historyLoaded) loadHistory();
  render();
});
live.addEventListener("event", ({ detail }) => {
  lot.event(detail);
  // Who may bid can change when the final phase starts: ask for a fresh `you`.
  if (detail.kind === "phase_changed" && detail.trigger === "contest" && token) live.resync(lotId);
  render();
});
live.addEventListener("answer", ({ detail }) => {
  if (!ui.pending || detail.bid_id !== ui.pending.bidId) return;
  if (detail.type === "ack") {
    ui.feedback = { tone: "ok", key: "fb.ack",
      params: { amount: grouped(detail.amount), time: formatTime(detail.at) } };
    ui.pending = null;
    const input = $("#custom-amount");
    if (parseAmount(input.value) === detail.amount) {
      input.value = "";
      preview();
    }
  } else if (detail.code === "unavailable") {
    ui.feedback = { tone: "warn", key: "fb.reject", params: { reason: refusal(detail) } };
  } else {
    ui.feedback = { tone: "error", key: "fb.reject", refusal: detail };
    ui.pending = null;
  }
  render();
});
live.addEventListener("error", ({ detail }) => {
  ui.feedback = { tone: "error", key: "fb.error", refusal: detail };
  render();
});
live.addEventListener("fatal", ({ detail }) => {
  if (detail.code === "session_replaced") {
    ui.notice = { key: "session.replaced", takeover: true };
  } else {
    ui.notice = { key: "token.fatal", refusal: detail.message };
  }
  render();
});
live.addEventListener("status", () => {
  if (ui.pending && !live.ready) {
    ui.feedback = { tone: "warn", key: "fb.waiting", params: { amount: grouped(ui.pending.amount) } };
  }
  render();
});
live.addEventListener("ready", ({ detail }) => {
  if (ui.pending && detail.resent) {
    ui.feedback = { tone: "info", key: "fb.sending", params: { amount: grouped(ui.pending.amount) } };
  }
  render();
});
onLangChange(() => {
  render();
  preview();
});

$("#takeover").addEventListener("click", () => {
  ui.notice = null;
  live.takeOver();
  render();
});

$("#bid-one").addEventListener("click", () => {
  if (blockedReason() !== null) return;
  placeBid(lot.oneClickAmount());
});

$("#custom-amount").addEventListener("input", () => preview());
$("#custom-form").addEventListener("submit", (e) => {
  e.preventDefault();
  if (blockedReason() !== null) return;
  const amount = parseAmount($("#custom-amount").value);
  const problem = checkAmount(amount);
  setText($("#custom-error"), problem ?? "");
  if (problem) return;
  ui.confirmAmount = amount;
  setText($("#confirm-lot"), `${lot.s.title}（${lotId}）`);
  setText($("#confirm-figures"), t("yuan", { amount: grouped(amount) }));
  setText($("#confirm-upper"), `人民币 ${chineseUpper(amount)}`);
  renderConfirmStale();
  $("#confirm-dialog").showModal();
  $("#confirm-cancel").focus();
});
$("#confirm-dialog").addEventListener("close", () => {
  const dialog = $("#confirm-dialog");
  const amount = ui.confirmAmount;
  ui.confirmAmount = null;
  if (dialog.returnValue === "ok" && amount != null && blockedReason() === null) placeBid(amount);
  dialog.returnValue = "";
});

function placeBid(amount) {
  const bidId = live.bid(lotId, amount);
  ui.pending = { bidId, amount };
  ui.feedback = { tone: "info", key: "fb.sending", params: { amount: grouped(amount) } };
  render();
}

async function loadHistory() {
  ui.historyLoaded = true;
  try {
    lot.addHistory(await fetchBids(lotId));
    render();
  } catch {
    ui.historyLoaded = false; // tried again with the next snapshot
  }
}

// ------------------------------------------------------------------ rules shown to the bidder
/** Why bidding is not possible now (a text key), or null when it is. */
function blockedReason() {
  const s = lot.s;
  if (!token || ui.wrongLot || !s) return "";
  if (live.stopped) return "bid.disabled.stopped";
  if (!live.ready) return "bid.disabled.offline";
  if (s.phase === "capped") return "bid.disabled.capped";
  if (FINAL.has(s.phase) || !BIDDING.has(s.phase)) return "bid.disabled.phase";
  if (s.frozen) return "bid.disabled.frozen";
  if (lot.you && lot.you.eligible === false) return "bid.disabled.ineligible";
  if (ui.me != null && s.leader === ui.me) return "bid.disabled.leading";
  if (ui.pending) return "bid.disabled.pending";
  return null;
}

/** A client-side check of a typed amount (the server decides; this only saves a round trip). */
function checkAmount(amount) {
  const s = lot.s;
  if (amount == null || amount < 1 || amount > MAX_AMOUNT) return t("input.invalid");
  if (s.price_cap != null && amount > s.price_cap) {
    return t("input.above_cap", { cap: grouped(s.price_cap) });
  }
  const reachesCap = s.price_cap != null && amount === s.price_cap;
  if (amount < s.next_min && !reachesCap) return t("input.low", { min: grouped(s.next_min) });
  return null;
}

function preview() {
  const text = $("#custom-amount").value.trim();
  const amount = parseAmount(text);
  setText($("#custom-error"), "");
  setText($("#custom-preview"), amount && amount <= MAX_AMOUNT
    ? `${grouped(amount)} ${t("price.unit")} · 人民币 ${chineseUpper(amount)}` : "");
}

function renderConfirmStale() {
  const s = lot.s;
  const amount = ui.confirmAmount;
  const stale = amount != null && s && amount < s.next_min
    && !(s.price_cap != null && amount === s.price_cap);
  show($("#confirm-stale"), stale);
  setText($("#confirm-stale"), stale ? t("confirm.stale", { min: grouped(s.next_min) }) : "");
}

// ------------------------------------------------------------------ rendering
function render() {
  renderNotice();
  renderHead(lot);
  setText($("#my-paddle"), ui.me == null ? "—" : String(ui.me));
  if (!lot.loaded) return;
  renderPrice(lot);
  renderBanners(lot);
  renderStanding();
  renderBidding();
  renderFeedback();
  renderHistory(lot, { limit: 8, mine: ui.me });
  renderConfirmStale();
  renderCountdown(lot, clock.now());
}

function renderNotice() {
  const n = ui.notice;
  show($("#notice"), !!n);
  if (!n) return;
  setText($("#notice-text"), n.refusal ? t(n.key, { reason: refusal(n.refusal) })
    : t(n.key, n.params));
  show($("#takeover"), !!n.takeover);
}

function renderStanding() {
  const s = lot.s;
  const box = $("#standing");
  let state = "none";
  let key = "";
  if (ui.me != null && token && !ui.wrongLot) {
    if (FINAL.has(s.phase)) {
      // A capped lot is not won yet: its follow-up (lottery, sealed bid, ...) decides.
      const won = s.phase === "sold" && s.result?.paddle === ui.me;
      state = won ? "won" : lot.hasBidBy(ui.me) ? "lost" : "none";
      key = won ? "you.closed.won" : lot.hasBidBy(ui.me) ? "you.closed.lost" : "";
    } else if (s.leader === ui.me) {
      state = "leading";
      key = "you.leading";
    } else if (lot.hasBidBy(ui.me)) {
      state = "outbid";
      key = "you.outbid";
    } else {
      state = "nobid";
      key = "you.nobid";
    }
  }
  box.dataset.state = state;
  setText(box, key ? t(key) : "");
  show(box, !!key);
}

function renderBidding() {
  const s = lot.s;
  const reason = blockedReason();
  const canBid = reason === null;
  const area = $("#bid-area");
  show(area, !!token && !ui.wrongLot);
  const one = $("#bid-one");
  one.disabled = !canBid;
  const amount = lot.oneClickAmount();
  const first = s.price == null;
  const closed = FINAL.has(s.phase);
  setText($("#bid-one-main"), closed ? t("count.final") : first ? t("bid.first")
    : t("bid.one", { inc: grouped(s.increment) }));
  setText($("#bid-one-sub"), closed ? "" : t("bid.one.amount", {
    amount: grouped(amount) }));
  show(one.querySelector(".btn-sub"), !closed);
  const why = $("#bid-disabled");
  show(why, !!reason);
  setText(why, reason ? t(reason) : "");
  $("#custom-amount").disabled = !canBid;
  $("#custom-submit").disabled = !canBid;
}

function renderFeedback() {
  const f = ui.feedback;
  const box = $("#feedback");
  show(box, !!f);
  if (!f) return;
  box.dataset.tone = f.tone;
  setText(box, f.refusal ? t(f.key, { reason: refusal(f.refusal) }) : t(f.key, f.params));
}

setInterval(() => {
  if (lot.loaded) renderCountdown(lot, clock.now());
}, 200);

live.watch(lotId);
live.start();
render();
