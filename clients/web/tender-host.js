// The trading centre's host: /tender/{t}/host#token=<staff token>
// Start the opening at the deadline (with fewer than `min_bids` bids the start fails the
// tender: 招标投标法实施条例 art. 44), pause and resume the decryption countdown with a reason,
// declare the tender failed, open the objection window, answer each objection, close.
// Every action is confirmed in a dialog first; the server records it and tells every page.
// The live video panel publishes the host's camera by WHIP (stream-panels.js).

import { onLangChange, refusal, t } from "./i18n.js";
import { ServerClock, TenderFeed, api, syncClock, takeToken, tenderIdFromPath } from
  "./tender-live.js";
import { hostPanel } from "./stream-panels.js";
import { FINAL, renderCountdown, renderView } from "./tenderview.js";
import { $, el, header, setText, show } from "./ui.js";

const tenderId = tenderIdFromPath();
const token = takeToken(`tender-host:${tenderId}`);
const clock = syncClock(new ServerClock());
const feed = new TenderFeed(tenderId, { token });
const path = `/api/tenders/${encodeURIComponent(tenderId)}`;

const ui = {
  notice: null,
  feedback: null,
  busy: false,
  action: null, // {path, body, okKey}: waiting for the dialog
  answers: new Map(), // objection id -> draft answer text (kept across re-renders)
};

header({ live: feed.live, clock });
if (!token) ui.notice = { key: "tender.token.missing_staff" };

const say = (x) => (x.error ? t(x.key, { ...x.params, reason: refusal(x.error.detail ?? x.error) })
  : t(x.key, x.params));

feed.addEventListener("view", ({ detail }) => {
  if (token && detail.bidders === undefined && !ui.notice) {
    ui.notice = { key: "tender.token.not_staff" }; // the public view: this is no staff token
  }
  render();
});
feed.addEventListener("failed", ({ detail }) => {
  ui.notice = { key: "tender.load_failed", error: detail };
  render();
});
onLangChange(() => render());

/** Bids that count at the start: received and not withdrawn (the staff view lists all). */
function liveBids(view) {
  return (view.bids ?? []).filter((b) => b.withdrawn_at == null);
}

/** The staff view lists every bid ever submitted; the tables show the received ones. */
function shown(view) {
  if (!view) return view;
  const started = view.state !== "accepting" && view.state !== "deadline"
    && view.state !== "draft";
  return { ...view, bids: started ? (view.bids ?? []).filter((b) => b.received) : null };
}

function ask(titleKey, textKey, params, action, warnKey = null) {
  ui.action = action;
  setText($("#host-dialog-title"), t(titleKey));
  setText($("#host-dialog-text"), t(textKey, params));
  show($("#host-dialog-warn"), !!warnKey);
  setText($("#host-dialog-warn"), warnKey ? t(warnKey, params) : "");
  $("#host-dialog").showModal();
}

$("#host-dialog").addEventListener("close", () => {
  const dialog = $("#host-dialog");
  const action = ui.action;
  ui.action = null;
  if (dialog.returnValue === "ok" && action) run(action);
  dialog.returnValue = "";
});

async function run({ action, body, okKey, after }) {
  ui.busy = true;
  render();
  try {
    await api("POST", `${path}/${action}`, { token, body });
    ui.feedback = { tone: "ok", key: okKey };
    after?.();
  } catch (error) {
    ui.feedback = { tone: "error", key: "fb.error", error };
  } finally {
    ui.busy = false;
  }
  await feed.load();
  render();
}

$("#host-start").addEventListener("click", () => {
  const view = feed.view;
  const n = liveBids(view).length;
  const min = view.terms?.min_bids ?? 3;
  ask("tender.host.start", "tender.host.start_confirm", { n, min },
    { action: "start", okKey: "tender.host.started" },
    n < min ? "tender.host.too_few" : null);
});
$("#host-open-objections").addEventListener("click", () => ask("tender.host.open_objections",
  "tender.host.open_objections_confirm", { minutes: Math.round(
    (feed.view.terms?.objection_window ?? 300000) / 60000) },
  { action: "open-objections", okKey: "tender.host.objections_opened" }));
$("#host-close").addEventListener("click", () => ask("tender.host.close",
  "tender.host.close_confirm", {}, { action: "close", okKey: "tender.host.closed" }));
$("#host-resume").addEventListener("click", () => run({ action: "resume",
  okKey: "tender.host.resumed" }));

$("#pause-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const reason = $("#pause-reason").value.trim();
  if (!reason) {
    ui.feedback = { tone: "error", key: "tender.host.need_reason" };
    render();
    return;
  }
  ask("tender.host.pause", "tender.host.pause_confirm", { reason },
    { action: "pause", body: { reason }, okKey: "tender.host.paused",
      after: () => { $("#pause-reason").value = ""; } });
});

$("#fail-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const reason = $("#fail-reason").value.trim();
  setText($("#fail-error"), reason ? "" : t("tender.host.need_reason"));
  if (!reason) return;
  ask("tender.host.fail", "tender.host.fail_confirm", { reason },
    { action: "fail", body: { reason }, okKey: "tender.host.failed" });
});

/** The answer form under an unanswered objection. */
function answerForm(objection) {
  const id = objection.objection_id;
  const input = el("textarea", { class: "answer-text", rows: 2, maxLength: 2000,
    "aria-label": t("tender.host.answer_label"), placeholder: t("tender.host.answer_label") });
  input.value = ui.answers.get(id) ?? "";
  input.addEventListener("input", () => ui.answers.set(id, input.value));
  const form = el("form", { class: "answer-form", "data-id": id, noValidate: true }, input,
    el("button", { class: "btn-secondary", type: "submit", disabled: ui.busy,
      text: t("tender.host.answer") }));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    run({ action: `objections/${encodeURIComponent(id)}/answer`, body: { text },
      okKey: "tender.host.answered", after: () => ui.answers.delete(id) });
  });
  return form;
}

// ------------------------------------------------------------------ rendering
function render() {
  const view = feed.view;
  show($("#notice"), !!ui.notice);
  if (ui.notice) setText($("#notice-text"), say(ui.notice));
  // Answer forms are rebuilt on each render: keep the one being typed in.
  const typing = document.activeElement?.closest?.(".answer-form")?.dataset.id;
  renderView(shown(view), tenderId, { now: clock.now(), titleKey: "tender.page.host",
    answerForm });
  if (typing) $(`.answer-form[data-id="${CSS.escape(typing)}"] textarea`)?.focus();
  if (!view) return;
  renderControls(view);
  const box = $("#feedback");
  show(box, !!ui.feedback);
  if (ui.feedback) {
    box.dataset.tone = ui.feedback.tone;
    setText(box, say(ui.feedback));
  }
}

function renderControls(view) {
  const s = view.state;
  const n = liveBids(view).length;
  const min = view.terms?.min_bids ?? 3;
  const pending = (view.objections ?? []).filter((o) => o.answer == null).length;
  const objectionsOver = s === "objections" && view.objections_until != null
    && clock.now() >= view.objections_until;
  const enable = (id, on) => {
    $(id).disabled = !on || ui.busy || !!ui.notice;
  };
  enable("#host-start", s === "deadline");
  enable("#host-open-objections", s === "announced");
  enable("#host-close", s === "objections" && objectionsOver && pending === 0);
  enable("#host-pause", s === "decrypting" && !view.paused);
  enable("#host-resume", s === "decrypting" && !!view.paused);
  enable("#host-fail", !FINAL.has(s) && s !== "draft");
  $("#pause-reason").disabled = s !== "decrypting" || !!view.paused;
  $("#fail-reason").disabled = FINAL.has(s) || s === "draft";

  let hint;
  if (s === "draft" || s === "accepting") hint = t("tender.host.hint.before", { n });
  else if (s === "deadline") hint = t(n < min ? "tender.host.too_few" : "tender.host.hint.ready",
    { n, min });
  else if (s === "decrypting") hint = t("tender.host.hint.decrypting");
  else if (s === "announced") hint = t("tender.host.hint.announced");
  else if (s === "objections") {
    hint = pending ? t("tender.host.hint.pending", { n: pending })
      : objectionsOver ? t("tender.host.hint.can_close") : t("tender.host.hint.objections");
  } else hint = t(`tender.state.${s}`);
  setText($("#host-hint"), hint);
  $("#host-hint").dataset.tone = s === "deadline" && n < min ? "warn" : "";
}

setInterval(() => {
  if (!feed.view) return;
  renderCountdown(shown(feed.view), clock.now());
  const second = Math.floor(clock.now() / 1000);
  if (second !== render.second) {
    render.second = second; // the objection window ends on the clock
    renderControls(feed.view);
  }
}, 250);

render();
feed.start();
hostPanel("tender", tenderId, token);
