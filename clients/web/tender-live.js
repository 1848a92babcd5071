// A tender's live feed (Server-Sent Events), the server clock over HTTP, and the JSON API.
//
//   const live = new TenderLive(tenderId);      // GET /api/tenders/{t}/live
//   live.addEventListener("event", ({ detail }) => ...);   // one public event: kind, at, seq
//   live.addEventListener("resync", () => ...);  // reconnected: fetch the full view again
//   live.start();
//
// EventSource reconnects by itself and sends Last-Event-ID, so the server resumes after the
// last event the page saw. When the browser gives up (the server answered with an error, or
// the stream was refused) the page opens a new stream itself, with `since` = the last seq.
// `status` follows live.js (connecting, connected, reconnecting, offline, stopped), so the
// header's connection badge works for both.

import { ServerClock } from "./live.js";

export { ServerClock };

const localNow = () => performance.timeOrigin + performance.now();

/** A refusal from the API: `code` is the stable code, `detail` the whole error body. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(detail?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = detail?.code ?? (status === 0 ? "network" : `http_${status}`);
    this.detail = { ...detail, code: this.code };
  }
}

/**
 * Call the JSON API. `token` goes in `Authorization: Bearer`; `body` is sent as JSON.
 * Returns the parsed answer (or the Response itself when `raw`), throws ApiError.
 */
export async function api(method, path, { token = null, body, raw = false } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, { code: "network" });
  }
  if (!response.ok) {
    let error = null;
    try {
      error = (await response.json())?.error ?? null;
    } catch {
      // not JSON: the status says enough
    }
    throw new ApiError(response.status, error);
  }
  if (raw) return response;
  return response.status === 204 ? {} : response.json();
}

/**
 * The token for `scope` from the URL fragment (`#token=...`), kept in sessionStorage for
 * reloads and removed from the address bar at once (as the hall does).
 */
export function takeToken(scope) {
  const key = `bidhall.token:${scope}`;
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

/** The tender id from /tender/{t}, /tender/{t}/seal, /tender/{t}/open or /tender/{t}/host. */
export function tenderIdFromPath() {
  const parts = location.pathname.split("/").filter(Boolean);
  const i = parts.indexOf("tender");
  return decodeURIComponent(parts[i + 1] ?? "");
}

/**
 * Keep `clock` on server time with GET /api/time: a few quick samples, then one every 30 s.
 * The sample with the smallest round trip wins (ServerClock), so a slow answer does no harm.
 */
export function syncClock(clock, onSample = () => {}) {
  let sent = 0;
  const once = async () => {
    const t0 = localNow();
    try {
      const response = await fetch("/api/time", { cache: "no-store" });
      const body = await response.json();
      clock.sample(t0, localNow(), body.server_time);
      onSample();
    } catch {
      // offline: the next sample tries again
    }
    sent += 1;
    setTimeout(once, sent < 4 ? 500 : 30000);
  };
  once();
  return clock;
}

export class TenderLive extends EventTarget {
  constructor(tenderId, { url = null } = {}) {
    super();
    this.tenderId = tenderId;
    this.url = url ?? `/api/tenders/${encodeURIComponent(tenderId)}/live`;
    this.status = "connecting";
    this.lastSeq = 0;
    this.source = null;
    this.stopped = false;
    this.everConnected = false;
    this.attempt = 0;
    this.retryTimer = 0;
    addEventListener("online", () => this.reconnectNow());
    addEventListener("offline", () => this.setStatus("offline"));
  }

  get ready() {
    return this.status === "connected";
  }

  start() {
    this.stopped = false;
    this.connect();
    return this;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.source) this.source.close();
    this.source = null;
    this.setStatus("stopped");
  }

  setStatus(status) {
    if (status === "offline" && this.ready) return;
    if (this.status === status) return;
    this.status = status;
    this.emit("status", { status });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  reconnectNow() {
    if (this.stopped || this.source) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  connect() {
    clearTimeout(this.retryTimer);
    if (this.source || this.stopped) return;
    this.setStatus(navigator.onLine === false ? "offline"
      : this.everConnected ? "reconnecting" : "connecting");
    const url = this.lastSeq ? `${this.url}?since=${this.lastSeq}` : this.url;
    const source = new EventSource(url);
    this.source = source;
    const onFrame = (e) => {
      if (this.source !== source) return;
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch {
        return;
      }
      const seq = Number(e.lastEventId || frame.seq || 0);
      if (seq && seq <= this.lastSeq) return; // already seen (a resend after a reconnect)
      if (seq) this.lastSeq = seq;
      this.emit("event", frame);
    };
    source.addEventListener("tender", onFrame);
    source.onmessage = onFrame;
    source.onopen = () => {
      if (this.source !== source) return;
      const again = this.everConnected;
      this.everConnected = true;
      this.attempt = 0;
      this.setStatus("connected");
      // Whatever happened while away is sent again after Last-Event-ID; a fresh view also
      // brings what events do not carry (per-bidder details, the read-out).
      if (again) this.emit("resync", {});
    };
    source.onerror = () => {
      if (this.source !== source) return;
      if (source.readyState === EventSource.CONNECTING) {
        this.setStatus(navigator.onLine === false ? "offline" : "reconnecting");
        return;
      }
      // Closed for good by the browser: open a new stream after a backoff.
      source.close();
      this.source = null;
      this.setStatus(navigator.onLine === false ? "offline" : "reconnecting");
      const base = Math.min(8000, 500 * 2 ** Math.min(this.attempt, 4));
      this.attempt += 1;
      this.retryTimer = setTimeout(() => this.connect(), base * (0.5 + Math.random() / 2));
    };
  }
}

/**
 * A tender's view kept fresh: GET /api/tenders/{t} (with the page's token, if any) now, and
 * again after every live event and every reconnect. Events are few (a few hundred in a
 * tender's life); the public pages spread their reloads over `jitter` ms so thousands of
 * watchers do not ask at the same instant.
 *
 *   const feed = new TenderFeed(tenderId, { token, jitter: 800 });
 *   feed.addEventListener("view", ({ detail: view }) => render());
 *   feed.addEventListener("failed", ({ detail: error }) => ...);   // an ApiError
 *   feed.start();
 */
export class TenderFeed extends EventTarget {
  constructor(tenderId, { token = null, jitter = 0 } = {}) {
    super();
    this.tenderId = tenderId;
    this.token = token;
    this.jitter = jitter;
    this.view = null;
    this.live = new TenderLive(tenderId);
    this.timer = 0;
    this.loading = null;
    this.again = false;
    this.pausedAt = null; // the public view says whether it is paused, the events since when
    this.live.addEventListener("event", ({ detail }) => {
      if (detail.kind === "paused") this.pausedAt = detail.at;
      this.dispatchEvent(new CustomEvent("event", { detail }));
      this.reload(this.jitter);
    });
    this.live.addEventListener("resync", () => this.reload(this.jitter));
  }

  start() {
    this.live.start();
    return this.load();
  }

  /** Load the view again after up to `spread` ms (at once when 0). */
  reload(spread = 0) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.load(), Math.random() * spread);
  }

  async load() {
    if (this.loading) {
      this.again = true; // one more after this one: the answer may predate the event
      return this.loading;
    }
    this.loading = (async () => {
      try {
        const view = await api("GET", `/api/tenders/${encodeURIComponent(this.tenderId)}`,
          { token: this.token });
        this.view = this.normalize(view);
        this.dispatchEvent(new CustomEvent("view", { detail: this.view }));
      } catch (error) {
        this.dispatchEvent(new CustomEvent("failed", { detail: error }));
      }
    })();
    await this.loading;
    this.loading = null;
    if (this.again) {
      this.again = false;
      await this.load();
    }
    return this.view;
  }

  /** One shape for the public and the staff view (the staff view is the full record). */
  normalize(view) {
    if (view.paused == null && "paused_at" in view) {
      const pauses = view.pauses ?? [];
      view.paused = view.paused_at != null;
      view.pause_reason = view.paused ? pauses[pauses.length - 1]?.reason ?? null : null;
    }
    if (view.paused && view.paused_at == null) view.paused_at = this.pausedAt;
    if (!view.confirmed && view.confirmations) {
      view.confirmed = view.confirmations.map((c) => c.bidder);
    }
    return view;
  }
}

/** The subject a bidhall token names (read only to label the page; the server decides). */
export function tokenSubject(token) {
  try {
    const body = String(token).split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes)).s ?? null;
  } catch {
    return null;
  }
}
