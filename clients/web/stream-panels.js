// The live video panels of the pages: viewerPanel plays a session beside its board,
// hostPanel publishes the host's camera (watch and publish from stream.js), with the state
// line, video, buttons and texts in both languages.

import { onLangChange, refusal, t } from "./i18n.js";
import { StreamError, canPublishH264, publish, watch } from "./stream.js";
import { $, setText, show } from "./ui.js";

/** The text of a stream refusal or failure, by its code. */
export function streamError(error) {
  return refusal(error?.detail ?? error);
}

/**
 * The public video panel: `#stream-card` holding `#stream-video`, `#stream-state`,
 * `#stream-viewers` and `#stream-idle`. Plays `/api/streams/{kind}/{id}` as soon as the host
 * is live. Returns the watch handle.
 */
export function viewerPanel(kind, id, root = document) {
  const card = $("#stream-card", root);
  const video = $("#stream-video", card);
  const base = `/api/streams/${kind}/${encodeURIComponent(id)}`;
  let state = "offline";
  let detail = {};
  const render = () => {
    card.dataset.state = state;
    const live = state === "live";
    video.controls = live;
    show($("#stream-idle", card), !live);
    setText($("#stream-state", card), t(`stream.state.${state}`, detail));
    const viewers = live && detail.viewers ? t("stream.viewers", { n: detail.viewers }) : "";
    setText($("#stream-viewers", card), viewers);
    let hint = t(state === "unavailable" ? "stream.hint.unavailable" : "stream.hint.offline");
    if (state === "connecting") hint = t("stream.state.connecting");
    if ((state === "retrying" || state === "busy") && detail.error) {
      hint = streamError(detail.error);
    }
    setText($("#stream-idle-text", card), hint);
  };
  onLangChange(render);
  render();
  return watch(video, `${base}/whep`, {
    onState(next, info = {}) {
      state = next;
      detail = info;
      render();
    },
  });
}

/**
 * The host's panel: `#stream-host` holding `#stream-preview`, `#stream-state`, `#stream-start`,
 * `#stream-stop` and `#stream-feedback`. "Go live" opens the camera and microphone, asks the
 * server for a publisher token with the staff `token` (POST {S}/token) and publishes by WHIP.
 */
export function hostPanel(kind, id, token, root = document) {
  const card = $("#stream-host", root);
  const preview = $("#stream-preview", card);
  const base = `/api/streams/${kind}/${encodeURIComponent(id)}`;
  let state = "off";
  let detail = {};
  let feedback = null; // {tone, text()}
  let media = null;
  let handle = null;
  let busy = false;
  preview.muted = true;
  preview.playsInline = true;
  preview.autoplay = true;

  const render = () => {
    card.dataset.state = state;
    show($("#stream-idle", card), !media);
    setText($("#stream-state", card), t(`stream.host.state.${state}`, detail));
    $("#stream-start", card).disabled = busy || !!handle || !token;
    $("#stream-stop", card).disabled = busy || (!handle && !media);
    const box = $("#stream-feedback", card);
    show(box, !!feedback || !token);
    if (!token) {
      box.dataset.tone = "error";
      setText(box, t("stream.host.no_token"));
    } else if (feedback) {
      box.dataset.tone = feedback.tone;
      setText(box, feedback.text());
    }
  };
  const set = (next, info = {}) => {
    state = next;
    detail = info;
    if (next === "retrying") feedback = { tone: "warn", text: () => streamError(info.error) };
    if (next === "live") feedback = null;
    if (next === "failed") feedback = { tone: "error", text: () => streamError(info.error) };
    render();
  };

  async function camera() {
    const video = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 25 } };
    try {
      return await navigator.mediaDevices.getUserMedia({ video, audio: true });
    } catch (error) {
      // No microphone: go live with pictures only.
      if (error?.name !== "NotFoundError" && error?.name !== "NotReadableError") throw error;
      return navigator.mediaDevices.getUserMedia({ video, audio: false });
    }
  }

  function closeCamera() {
    for (const track of media?.getTracks() ?? []) track.stop();
    media = null;
    preview.srcObject = null;
  }

  async function start() {
    busy = true;
    feedback = null;
    set("camera");
    try {
      if (!navigator.mediaDevices?.getUserMedia) throw new StreamError(0, { code: "no_camera" });
      if (!canPublishH264()) throw new StreamError(0, { code: "no_h264" });
      try {
        media = await camera();
      } catch (error) {
        const code = error?.name === "NotAllowedError" ? "camera_denied" : "no_camera";
        throw new StreamError(0, { code });
      }
      preview.srcObject = media;
      preview.play().catch(() => {});
      set("connecting");
      const grant = await issue();
      handle = await publish(media, grant.whip_url, grant.token, { onState: set });
      feedback = null;
    } catch (error) {
      closeCamera();
      handle = null;
      set("off");
      feedback = { tone: "error",
        text: () => t("stream.host.not_started", { reason: streamError(error) }) };
    } finally {
      busy = false;
      render();
    }
  }

  async function issue() {
    let response;
    try {
      response = await fetch(`${base}/token`, { method: "POST", cache: "no-store",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ ttl: 12 * 3600 }) });
    } catch {
      throw new StreamError(0);
    }
    if (!response.ok) {
      let error = null;
      try {
        error = (await response.json())?.error ?? null;
      } catch {
        // not JSON
      }
      throw new StreamError(response.status, error);
    }
    return response.json();
  }

  async function stop() {
    busy = true;
    render();
    const was = handle;
    handle = null;
    try {
      await was?.stop();
    } finally {
      closeCamera();
      busy = false;
      feedback = { tone: "ok", text: () => t("stream.host.ended") };
      set("off");
    }
  }

  $("#stream-start", card).addEventListener("click", start);
  $("#stream-stop", card).addEventListener("click", stop);
  onLangChange(render);
  render();
  return { start, stop };
}
