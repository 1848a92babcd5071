// The host's live video of a lot (or a tender): /stream/{kind}/{id}/host#token=<staff token>
// "Go live" opens the camera and microphone, asks for a publisher token of this session with
// the staff token and publishes by WHIP; "Stop" ends the WHIP resource. The public plays it
// on /board/{id} (lots) or /tender/{id} (tenders).

import { onLangChange, refusal, t } from "./i18n.js";
import { hostPanel } from "./stream-panels.js";
import { ApiError, api, takeToken } from "./tender-live.js";
import { $, header, setText, show } from "./ui.js";

const KINDS = {
  lot: { api: "/api/lots/", page: "/board/", idKey: "lot.id" },
  tender: { api: "/api/tenders/", page: "/tender/", idKey: "tender.id" },
};
const parts = location.pathname.split("/").filter(Boolean); // stream, kind, id, host
const kind = parts[1] ?? "";
const id = decodeURIComponent(parts[2] ?? "");
const known = KINDS[kind];
const token = takeToken(`stream-host:${kind}:${id}`);
let title = null;
let notice = known ? null : new ApiError(404, { code: "unknown_session" });

header();

function render() {
  setText($("#session-kind"), known ? t(`stream.host.kind.${kind}`) : "");
  setText($("#session-id-label"), known ? t(known.idKey) : "");
  setText($("#session-id"), id);
  setText($("#session-title"), title ?? "\u00a0");
  document.title = `${t("stream.host.page")} · ${title ?? id}`;
  const link = $("#public-link");
  show(link, !!known);
  if (known) {
    link.href = known.page + encodeURIComponent(id);
    link.target = "_blank";
    link.rel = "noopener";
  }
  show($("#notice"), !!notice);
  setText($("#notice-text"), notice ? refusal(notice.detail) : "");
}

async function load() {
  try {
    const session = await api("GET", known.api + encodeURIComponent(id), { token });
    title = session.title ?? id;
    notice = null;
  } catch (error) {
    notice = error;
  }
  render();
}

onLangChange(render);
render();
if (known) {
  hostPanel(kind, id, token);
  load();
} else {
  $("#stream-start").disabled = true;
}
