// The bidder before the deadline: /tender/{t}/seal#token=...
//   1. make a key pair here (the private key leaves the page only inside the password-sealed
//      backup file the bidder downloads) and register the public key; or, once registered,
//      check a backup file against the registered fingerprint;
//   2. choose the bid file and fill in the 开标一览表 summary (price with live 大写);
//   3. seal while uploading (tus, resumable after a cut) and show the signed receipt.
// A bid may be replaced (upload again) or withdrawn until the deadline.

import { onLangChange, refusal, t } from "./i18n.js";
import { SealError, b64uDecode, b64uEncode, backupKey, createSealer, generateKey, restoreKey }
  from "./sealing.js";
import { ServerClock, TenderFeed, api, syncClock, takeToken, tenderIdFromPath, tokenSubject }
  from "./tender-live.js";
import { Upload } from "./tusup.js";
import { formatBytes, groupFingerprint, isPrice, priceWarning, renderCountdown, renderView,
  upperYuan, yuanText } from "./tenderview.js";
import { $, formatDateTime, header, setText, show } from "./ui.js";

const tenderId = tenderIdFromPath();
const token = takeToken(`tender:${tenderId}`);
const clock = syncClock(new ServerClock());
const feed = new TenderFeed(tenderId, { token });
const path = `/api/tenders/${encodeURIComponent(tenderId)}`;

const ui = {
  notice: null, // {key, params} or {key, error}
  feedback: null, // {tone, key, params} or {tone, key, error}
  made: null, // {privateKey, publicRaw, fingerprint, backup (JSON text)} made in this page
  keyCheck: null, // {tone, key, params}
  upload: null, // the running Upload
  progress: null, // {sent, total, state, speed}
  receipt: null, // the bidreceipt/v1 object of this page's last upload
  pending: null, // {file, summary} waiting for the confirmation dialog
  restored: null, // a backup file checked against the registered key in this page
};

header({ live: feed.live, clock });
$("#open-link").href = `/tender/${encodeURIComponent(tenderId)}/open`;
if (!token) ui.notice = { key: "tender.token.missing" };

// Before its key is registered the server does not know the bidder yet (no `me`): the id
// the token names is what the key backup and the envelope are made for.
const me = () => feed.view?.me ?? (token && tokenSubject(token)
  ? { bidder: tokenSubject(token), fingerprint: null, bid: null } : null);
const accepting = () => feed.view?.state === "accepting"
  && clock.now() < (feed.view.terms?.deadline ?? Infinity);

feed.addEventListener("view", () => render());
feed.addEventListener("failed", ({ detail }) => {
  ui.notice = { key: "tender.load_failed", error: detail };
  render();
});
onLangChange(() => {
  render();
  preview();
});

/** Offer `text` as a file download named `name`. */
function download(name, text, type = "application/json") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function failure(error) {
  if (error instanceof SealError || error?.code) return { code: error.code ?? "unknown" };
  return { code: "unknown" };
}

// ------------------------------------------------------------------ step 1: the key
$("#key-make").addEventListener("click", async () => {
  const name = $("#key-name").value.trim();
  const password = $("#key-password").value;
  const again = $("#key-password2").value;
  const problem = !name ? "tender.key.need_name"
    : password.length < 8 ? "tender.key.short_password"
      : password !== again ? "tender.key.mismatch" : null;
  setText($("#key-error"), problem ? t(problem) : "");
  if (problem || !me()) return;
  const button = $("#key-make");
  button.disabled = true;
  setText(button, t("tender.key.making"));
  try {
    const pair = await generateKey();
    const backup = await backupKey(pair.privateKey, pair.publicRaw, me().bidder, password);
    ui.made = { ...pair, backup, name };
    download(`bidhall-key-${me().bidder}.json`, backup);
  } catch (error) {
    setText($("#key-error"), refusal(failure(error)));
  } finally {
    button.disabled = false;
    setText(button, t("tender.key.make"));
  }
  render();
});

$("#key-download").addEventListener("click", (e) => {
  e.preventDefault();
  if (ui.made) download(`bidhall-key-${me()?.bidder}.json`, ui.made.backup);
});
$("#key-saved").addEventListener("change", () => render());

$("#key-register").addEventListener("click", async () => {
  if (!ui.made) return;
  $("#key-register").disabled = true;
  try {
    await api("PUT", `${path}/key`, { token,
      body: { name: ui.made.name, public_key: b64uEncode(ui.made.publicRaw) } });
    ui.feedback = { tone: "ok", key: "tender.key.registered" };
    await feed.load();
  } catch (error) {
    ui.feedback = { tone: "error", key: "fb.error", error };
  }
  render();
});

$("#key-check-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const file = $("#check-file").files[0];
  if (!file) {
    ui.keyCheck = { tone: "error", key: "tender.key.choose_file" };
    render();
    return;
  }
  ui.keyCheck = { tone: "", key: "tender.key.checking" };
  render();
  try {
    const key = await restoreKey(await file.text(), $("#check-password").value);
    const same = key.fingerprint === me()?.fingerprint;
    ui.keyCheck = same ? { tone: "ok", key: "tender.key.check_ok" }
      : { tone: "error", key: "tender.key.check_other",
        params: { fp: groupFingerprint(key.fingerprint) } };
    if (same) ui.restored = key;
  } catch (error) {
    ui.keyCheck = { tone: "error", key: "fb.error", error: failure(error) };
  }
  render();
});

/** The registered public key, 65 raw bytes, or null when this page does not know it. */
function publicKey() {
  const m = me();
  if (ui.made && ui.made.fingerprint === m?.fingerprint) return ui.made.publicRaw;
  if (ui.restored && ui.restored.fingerprint === m?.fingerprint) return ui.restored.publicRaw;
  return m?.public_key ? b64uDecode(m.public_key) : null;
}

// ------------------------------------------------------------------ step 2: file and summary
function summary() {
  const out = { price: $("#sum-price").value.trim().replace(/[,，\s]/g, "").replace(/元$/, "") };
  const days = $("#sum-duration").value.trim();
  if (days) out.duration_days = /^\d{1,6}$/.test(days) ? Number(days) : NaN;
  for (const [id, key] of [["#sum-quality", "quality"], ["#sum-manager", "manager"],
    ["#sum-note", "note"]]) {
    const text = $(id).value.trim();
    if (text) out[key] = text;
  }
  return out;
}

function preview() {
  const s = summary();
  const ok = isPrice(s.price);
  setText($("#sum-price-upper"), ok ? `${yuanText(s.price)} ${t("price.unit")} · 人民币 `
    + upperYuan(s.price) : "");
  const warning = ok ? priceWarning(feed.view?.terms, s.price) : null;
  show($("#sum-price-warn"), !!warning);
  setText($("#sum-price-warn"), warning ? warningText(warning) : "");
  return warning;
}

function warningText(warning) {
  const terms = feed.view?.terms ?? {};
  return warning === "above_ceiling"
    ? t("tender.bid.above_ceiling", { ceiling: yuanText(terms.ceiling) })
    : t("tender.bid.over_budget", { budget: yuanText(terms.budget),
      pct: terms.warn_over_budget_pct ?? 20 });
}

$("#sum-price").addEventListener("input", () => preview());
$("#bid-file").addEventListener("change", () => {
  const file = $("#bid-file").files[0];
  setText($("#bid-file-info"), file ? `${file.name} · ${formatBytes(file.size)}` : "");
});

$("#bid-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const file = $("#bid-file").files[0];
  const s = summary();
  const problem = !publicKey() ? "tender.bid.need_key"
    : !file ? "tender.bid.need_file"
      : !isPrice(s.price) ? "tender.bid.bad_price"
        : Number.isNaN(s.duration_days) || s.duration_days === 0 || s.duration_days > 100000
          ? "tender.bid.bad_duration" : null;
  setText($("#bid-error"), problem ? t(problem) : "");
  if (problem || !accepting()) return;
  ui.pending = { file, summary: s };
  setText($("#c-file"), `${file.name}（${formatBytes(file.size)}）`);
  setText($("#c-price"), t("tender.yuan", { amount: yuanText(s.price) }));
  setText($("#c-upper"), `人民币 ${upperYuan(s.price)}`);
  setText($("#c-duration"), s.duration_days == null ? "—" : String(s.duration_days));
  setText($("#c-quality"), s.quality ?? "—");
  setText($("#c-manager"), s.manager ?? "—");
  setText($("#c-note"), s.note ?? "—");
  const warning = priceWarning(feed.view?.terms, s.price);
  show($("#c-warn"), !!warning);
  setText($("#c-warn"), warning ? warningText(warning) : "");
  $("#bid-confirm").showModal();
});

$("#bid-confirm").addEventListener("close", () => {
  const dialog = $("#bid-confirm");
  const pending = ui.pending;
  ui.pending = null;
  if (dialog.returnValue === "ok" && pending) sealAndUpload(pending);
  dialog.returnValue = "";
});

// ------------------------------------------------------------------ step 3: seal and upload
async function sealAndUpload({ file, summary: s }) {
  if (ui.upload) return;
  ui.receipt = null;
  ui.feedback = null;
  ui.progress = { sent: 0, total: 0, state: "sealing", speed: null };
  render();
  let sealer;
  try {
    sealer = await createSealer({ publicRaw: publicKey(), tender: tenderId,
      bidder: me().bidder, summary: s, document: file });
  } catch (error) {
    ui.progress = null;
    ui.feedback = { tone: "error", key: "tender.upload.failed", error: failure(error) };
    render();
    return;
  }
  const samples = []; // [time, bytes] over the last few seconds, for the speed
  const upload = new Upload({
    endpoint: `${path}/uploads/`, token, length: sealer.length,
    metadata: { filename: file.name },
    bytesAt: (offset, length) => sealer.sealedRange(offset, length),
    onProgress(sent, total) {
      const now = performance.now();
      samples.push([now, sent]);
      while (samples.length > 2 && now - samples[0][0] > 3000) samples.shift();
      const [t0, b0] = samples[0];
      const speed = now - t0 > 300 ? ((sent - b0) * 1000) / (now - t0) : null;
      ui.progress = { ...ui.progress, sent, total, speed };
      renderUpload();
    },
    onState(state) {
      ui.progress = { ...ui.progress, state };
      renderUpload();
    },
  });
  ui.upload = upload;
  ui.progress = { sent: 0, total: sealer.length, state: "uploading", speed: null };
  render();
  await drive(upload.start());
}

/** Wait for the upload (started or resumed) to end: done, stopped by the bidder, or failed. */
async function drive(running) {
  try {
    const done = await running;
    ui.receipt = await readReceipt(done?.receipt);
    ui.progress = { ...ui.progress, sent: ui.progress.total, state: "done" };
    ui.feedback = { tone: "ok", key: "tender.upload.done" };
    ui.upload = null;
  } catch (error) {
    if (error?.code === "aborted" && ui.upload) {
      ui.progress = { ...ui.progress, state: "paused", speed: null };
      render();
      return; // the bidder may resume: the server keeps what it received
    }
    ui.progress = { ...ui.progress, state: "failed" };
    ui.feedback = { tone: "error", key: "tender.upload.failed", error: failure(error) };
    ui.upload = null;
  }
  await feed.load();
  render();
}

/** The receipt from the upload's answer (an object or b64u JSON), else from the server. */
async function readReceipt(raw) {
  if (raw && typeof raw === "object") return raw;
  if (typeof raw === "string") {
    const bytes = b64uDecode(raw);
    try {
      if (bytes) return JSON.parse(new TextDecoder().decode(bytes));
      return JSON.parse(raw);
    } catch {
      // fall through to the server's copy
    }
  }
  return api("GET", `${path}/receipt`, { token });
}

$("#upload-abort").addEventListener("click", () => ui.upload?.abort());
$("#upload-resume").addEventListener("click", () => {
  if (!ui.upload || !accepting()) return;
  ui.progress = { ...ui.progress, state: "resuming" };
  render();
  drive(ui.upload.resume());
});
$("#receipt-download").addEventListener("click", (e) => {
  e.preventDefault();
  if (ui.receipt) {
    download(`bidhall-receipt-${tenderId}-${ui.receipt.bidder}.json`,
      JSON.stringify(ui.receipt, null, 2));
  }
});

// ------------------------------------------------------------------ withdraw
$("#withdraw").addEventListener("click", () => $("#withdraw-confirm").showModal());
$("#withdraw-confirm").addEventListener("close", async () => {
  const dialog = $("#withdraw-confirm");
  if (dialog.returnValue !== "ok") return;
  dialog.returnValue = "";
  try {
    await api("DELETE", `${path}/bid`, { token });
    ui.receipt = null;
    ui.progress = null;
    ui.feedback = { tone: "ok", key: "tender.withdraw.done" };
  } catch (error) {
    ui.feedback = { tone: "error", key: "fb.error", error };
  }
  await feed.load();
  render();
});

// ------------------------------------------------------------------ rendering
const say = (x) => (x.error ? t(x.key, { ...x.params, reason: refusal(x.error.detail ?? x.error) })
  : t(x.key, x.params));

function render() {
  const view = feed.view;
  const m = me();
  show($("#notice"), !!ui.notice);
  if (ui.notice) setText($("#notice-text"), say(ui.notice));
  renderView(view, tenderId, { me: m?.bidder, now: clock.now(), titleKey: "tender.page.seal" });
  if (!view) return;
  if (!m && token && !ui.notice) {
    ui.notice = { key: "tender.token.not_bidder" };
    return render();
  }
  const open = accepting();
  show($("#closed-banner"), !open && view.state !== "draft");
  renderKey(m, open);
  renderBid(m, open);
  renderUpload();
  renderMine(m, open);
  const box = $("#feedback");
  show(box, !!ui.feedback);
  if (ui.feedback) {
    box.dataset.tone = ui.feedback.tone;
    setText(box, say(ui.feedback));
  }
}

function renderKey(m, open) {
  const registered = !!m?.fingerprint;
  $("#step-key").dataset.done = registered ? "yes" : "no";
  setText($("#key-state"), registered ? t("tender.step.done") : "");
  show($("#key-new"), !registered && open);
  show($("#key-registered"), registered);
  setText($("#key-fp"), groupFingerprint(m?.fingerprint));
  show($("#key-made"), !!ui.made && !registered);
  if (ui.made) setText($("#key-fp-new"), groupFingerprint(ui.made.fingerprint));
  $("#key-register").disabled = !ui.made || !$("#key-saved").checked || !open;
  if (m?.name && !$("#key-name").value) $("#key-name").value = m.name;
  const check = $("#key-check-result");
  check.dataset.tone = ui.keyCheck?.tone ?? "";
  setText(check, ui.keyCheck ? say(ui.keyCheck) : "");
}

function renderBid(m, open) {
  const ready = !!m?.fingerprint && open && !ui.upload;
  for (const node of $("#bid-form").querySelectorAll("input, textarea, button")) {
    node.disabled = !ready;
  }
  $("#step-bid").dataset.done = m?.bid ? "yes" : "no";
}

function renderUpload() {
  const p = ui.progress;
  show($("#upload-empty"), !p && !ui.receipt);
  show($("#upload-box"), !!p && p.state !== "done");
  if (p && p.state !== "done") {
    const pct = p.total ? Math.floor((p.sent * 100) / p.total) : 0;
    $("#upload-bar").value = pct;
    setText($("#upload-bytes"), `${formatBytes(p.sent)} / ${formatBytes(p.total)}`);
    setText($("#upload-pct"), `${pct}%`);
    setText($("#upload-speed"), p.speed == null ? "" : `${formatBytes(Math.round(p.speed))}/s`);
    const state = $("#upload-state");
    state.dataset.state = p.state;
    setText(state, t(`tender.upload.state.${stateKey(p.state)}`));
    show($("#upload-abort"), !!ui.upload && p.state !== "paused");
    show($("#upload-resume"), !!ui.upload && p.state === "paused");
  }
  const r = ui.receipt;
  show($("#receipt-box"), !!r);
  if (r) {
    setText($("#receipt-sha"), r.sha256);
    setText($("#receipt-size"), `${formatBytes(r.size)}（${r.size} B）`);
    setText($("#receipt-at"), formatDateTime(r.at, true));
    setText($("#receipt-key"), r.key);
  }
}

/** The uploader's states, folded into the few the page explains. */
function stateKey(state) {
  if (["sealing", "paused", "resuming", "failed", "done"].includes(state)) return state;
  if (state === "retrying") return "reconnecting";
  if (state === "aborted") return "paused";
  return "uploading"; // creating, uploading
}

function renderMine(m, open) {
  const bid = m?.bid ?? null;
  setText($("#me-bidder"), m ? m.bidder : "");
  show($("#me-none"), !bid);
  setText($("#me-sha"), bid?.sha256 ?? "—");
  $("#me-sha").title = bid?.sha256 ?? "";
  setText($("#me-size"), bid ? formatBytes(bid.size) : "—");
  setText($("#me-at"), bid ? formatDateTime(bid.submitted_at, true) : "—");
  show($("#withdraw"), !!bid && open);
  $("#withdraw").disabled = !!ui.upload;
}

setInterval(() => {
  if (!feed.view) return;
  renderCountdown(feed.view, clock.now());
  // The deadline passes on the server clock: lock the steps without waiting for the event.
  const open = accepting();
  if (open !== render.open) {
    render.open = open;
    render();
  }
}, 250);

render();
feed.start();
