// The public view of a no-meeting opening: /tender/{t}. No login; read-only. Before the
// deadline only the terms and the countdown are public; the received bids from the start;
// the read-out (开标一览表) once announced; objections, answers and the record after that.
// The live video of the opening plays in the side column once the host goes live.

import { onLangChange, refusal, t } from "./i18n.js";
import { viewerPanel } from "./stream-panels.js";
import { ServerClock, TenderFeed, syncClock, tenderIdFromPath } from "./tender-live.js";
import { renderCountdown, renderView } from "./tenderview.js";
import { $, header, setText, show } from "./ui.js";

const tenderId = tenderIdFromPath();
const clock = syncClock(new ServerClock());
const feed = new TenderFeed(tenderId, { jitter: 1500 });
let error = null;

header({ live: feed.live, clock });

feed.addEventListener("view", () => {
  error = null;
  render();
});
feed.addEventListener("failed", ({ detail }) => {
  error = detail;
  render();
});
onLangChange(() => render());

function render() {
  show($("#notice"), !!error);
  setText($("#notice-text"), error ? t("tender.load_failed", { reason: refusal(error.detail) })
    : "");
  renderView(feed.view, tenderId, { now: clock.now(), titleKey: "tender.page.public" });
}

setInterval(() => {
  if (feed.view) renderCountdown(feed.view, clock.now());
}, 250);

render();
feed.start();
viewerPanel("tender", tenderId);
