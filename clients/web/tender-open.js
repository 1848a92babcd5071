// The bidder at the opening: /tender/{t}/open#token=...
// Check in; once the host starts, unlock: the backup file and password are read in this page,
// the envelope's header is fetched, the file key is unwrapped here and only the file key is
// posted (the private key never leaves the page). Then the read-out, objections and the
// confirmation of the record.

import { onLangChange, refusal, t } from "./i18n.js";
import { SealError, b64uEncode, parseHeader, restoreKey, unwrapFileKey } from "./sealing.js";
import { ServerClock, TenderFeed, api, syncClock, takeToken, tenderIdFromPath } from
  "./tender-live.js";
import { RECORDED, groupFingerprint, outcomeName, renderCountdown, renderView, shortHash,
  upperYuan, yuanText } from "./tenderview.js";
import { $, el, formatDateTime, header, setText, show } from "./ui.js";

const tenderId = tenderIdFromPath();
const token = takeToken(`tender:${tenderId}`);
const clock = syncClock(new ServerClock());
const feed = new TenderFeed(tenderId, { token });
const path = `/api/tenders/${encodeURIComponent(tenderId)}`;

const STEPS = ["read", "header", "unwrap", "release"];
const ui = {
  notice: null,
  feedback: null, // {tone, key, params, error}
  unlock: null, // {step, failed}: progress through STEPS
  result: null, // {outcome, summary} from the release
  busy: false,
};

header({ live: feed.live, clock });
if (!token) ui.notice = { key: "tender.token.missing" };

const me = () => feed.view?.me ?? null;
const say = (x) => (x.error ? t(x.key, { ...x.params, reason: refusal(x.error.detail ?? x.error) })
  : t(x.key, x.params));

feed.addEventListener("view", () => render());
feed.addEventListener("failed", ({ detail }) => {
  ui.notice = { key: "tender.load_failed", error: detail };
  render();
});
onLangChange(() => render());

/** POST `action` for this bidder, then show `okKey` or the refusal. */
async function act(action, body, okKey) {
  ui.busy = true;
  render();
  try {
    await api("POST", `${path}/${action}`, { token, body });
    ui.feedback = { tone: "ok", key: okKey };
    return true;
  } catch (error) {
    ui.feedback = { tone: "error", key: "fb.error", error };
    return false;
  } finally {
    ui.busy = false;
    await feed.load();
    render();
  }
}

$("#check-in").addEventListener("click", () => act("check-in", undefined,
  "tender.check_in.done"));
$("#confirm-record").addEventListener("click", () => act("confirm", undefined,
  "tender.record.confirm_done"));

$("#objection-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = $("#objection-text").value.trim();
  setText($("#objection-error"), text ? "" : t("tender.objection.empty"));
  if (!text) return;
  if (await act("objections", { text }, "tender.objection.sent")) $("#objection-text").value = "";
});

$("#unlock-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const file = $("#unlock-file").files[0];
  const password = $("#unlock-password").value;
  setText($("#unlock-error"), "");
  if (!file || !password) {
    setText($("#unlock-error"), t(file ? "tender.unlock.need_password" : "tender.key.choose_file"));
    return;
  }
  ui.busy = true;
  ui.result = null;
  const step = (name) => {
    ui.unlock = { step: name, failed: false };
    renderUnlock();
  };
  try {
    step("read");
    const key = await restoreKey(await file.text(), password);
    if (me()?.fingerprint && key.fingerprint !== me().fingerprint) {
      throw new SealError("other_key", "this backup holds another key");
    }
    step("header");
    const response = await api("GET", `${path}/header`, { token, raw: true });
    const bytes = new Uint8Array(await response.arrayBuffer());
    step("unwrap");
    const fileKey = await unwrapFileKey(parseHeader(bytes), key.privateKey);
    step("release");
    ui.result = await api("POST", `${path}/release`, { token,
      body: { file_key: b64uEncode(fileKey) } });
    ui.unlock = { step: "done", failed: false };
    $("#unlock-password").value = "";
  } catch (error) {
    ui.unlock = { ...ui.unlock, failed: true };
    setText($("#unlock-error"), t("tender.unlock.failed", {
      reason: refusal(error?.detail ?? { code: error?.code ?? "unknown" }) }));
  } finally {
    ui.busy = false;
  }
  await feed.load();
  render();
});

// ------------------------------------------------------------------ rendering
function render() {
  const view = feed.view;
  const m = me();
  show($("#notice"), !!ui.notice);
  if (ui.notice) setText($("#notice-text"), say(ui.notice));
  renderView(view, tenderId, { me: m?.bidder, now: clock.now(), titleKey: "tender.page.open" });
  if (!view) return;
  if (!m && token && !ui.notice) {
    ui.notice = { key: "tender.token.not_bidder" };
    render();
    return;
  }
  renderMe(view, m);
  renderUnlock();
  const box = $("#feedback");
  show(box, !!ui.feedback);
  if (ui.feedback) {
    box.dataset.tone = ui.feedback.tone;
    setText(box, say(ui.feedback));
  }
}

/** My own bid as the open page shows it: from the received list once started, else `me`. */
function myBid(view, m) {
  return (view.bids ?? []).find((b) => b.bidder === m?.bidder) ?? m?.bid ?? null;
}

function renderMe(view, m) {
  const bid = myBid(view, m);
  const outcome = bid?.outcome ?? m?.outcome ?? null;
  setText($("#me-bidder"), m?.bidder ?? "");
  setText($("#me-sha"), shortHash(bid?.sha256));
  $("#me-sha").title = bid?.sha256 ?? "";
  setText($("#me-at"), bid?.submitted_at ? formatDateTime(bid.submitted_at, true) : "—");
  setText($("#me-fp"), groupFingerprint(m?.fingerprint) || "—");
  setText($("#me-outcome"), !bid ? t("tender.me.no_bid")
    : view.state === "accepting" || view.state === "deadline" ? t("tender.me.sealed")
      : outcomeName(outcome));

  // Check-in: from check_in_from until the decryption window ends.
  const checked = !!m?.checked_in;
  const opens = view.terms?.check_in_from ?? 0;
  const canCheckIn = !checked && !!bid && clock.now() >= opens
    && ["accepting", "deadline", "decrypting"].includes(view.state);
  const button = $("#check-in");
  button.disabled = !canCheckIn || ui.busy;
  setText($("#check-in-state"), checked ? t("tender.check_in.yes", {
    at: m.checked_in_at ? formatDateTime(m.checked_in_at, true) : "" })
    : clock.now() < opens ? t("tender.check_in.opens", { at: formatDateTime(opens) })
      : !bid ? t("tender.me.no_bid") : t("tender.check_in.no"));
  $("#check-in-state").dataset.tone = checked ? "ok" : "";

  // Unlock: during the window, while my bid waits, not while paused.
  const waiting = view.state === "decrypting" && (outcome ?? "waiting") === "waiting";
  const canUnlock = waiting && !view.paused && !ui.busy;
  show($("#unlock-form"), waiting || ui.unlock?.step === "done" && !!ui.result);
  for (const node of $("#unlock-form").querySelectorAll("input, button")) {
    node.disabled = !canUnlock;
  }
  renderResult(outcome);

  // Objections: while the window is open; confirmation once recorded.
  const until = view.objections_until;
  const objecting = view.state === "objections" && (until == null || until > clock.now());
  show($("#objection-form"), objecting && !!bid);
  $("#objection-submit").disabled = ui.busy;
  const confirmed = !!m?.confirmed;
  const canConfirm = RECORDED.has(view.state) && !!bid && !confirmed;
  show($("#confirm-record"), !!bid && RECORDED.has(view.state) && !confirmed);
  $("#confirm-record").disabled = !canConfirm || ui.busy;
  setText($("#confirm-state"), confirmed ? t("tender.record.you_confirmed") : "");
}

function renderResult(outcome) {
  const box = $("#unlock-result");
  const summary = ui.result?.summary ?? null;
  const done = ui.result != null || outcome === "decrypted";
  show(box, done);
  if (!done) return;
  const decrypted = (ui.result?.outcome ?? outcome) === "decrypted";
  box.dataset.tone = decrypted ? "ok" : "error";
  const lines = [el("strong", { text: decrypted ? t("tender.unlock.ok")
    : t("tender.unlock.bad_bid") })];
  if (summary?.price) {
    lines.push(el("div", { class: "num", text: t("tender.unlock.price", {
      price: yuanText(summary.price), upper: upperYuan(summary.price) }) }));
  }
  box.replaceChildren(...lines);
}

function renderUnlock() {
  const list = $("#unlock-steps");
  const u = ui.unlock;
  show(list, !!u);
  if (!u) return;
  const at = u.step === "done" ? STEPS.length : STEPS.indexOf(u.step);
  list.replaceChildren(...STEPS.map((name, i) => el("li", {
    "data-state": i < at ? "done" : i === at ? (u.failed ? "failed" : "active") : "todo",
    text: t(`tender.unlock.step.${name}`) })));
}

setInterval(() => {
  if (!feed.view) return;
  renderCountdown(feed.view, clock.now());
  const second = Math.floor(clock.now() / 1000);
  if (second !== render.second) {
    render.second = second; // check-in opening, objection window: rules that follow the clock
    renderMe(feed.view, me());
  }
}, 250);

render();
feed.start();
