// The live connection (protocol v1), the server clock and a lot's state, shared by the pages.
//
//   const live = new Live({ token });           // token: a bidder's, or null for the public
//   live.watch(lotId);                          // subscribe; after a reconnect: since = last seq
//   live.addEventListener("snapshot" | "event" | "answer" | "status" | ..., handler);
//   const bidId = live.bid(lotId, amount);      // kept until answered; resent with the same id
//
// After a lost connection it reconnects with backoff, says hello again, resubscribes with
// `since` (the server then sends exactly the events after it, or a fresh snapshot) and sends
// every unanswered bid again with the same bid_id, which the server answers exactly once.

export const SUBPROTOCOL = "bidhall.v1";

/** Phases in which price bids are taken, run by a countdown, or final. */
export const BIDDING = new Set(["listing", "timed", "auction"]);
export const COUNTDOWN = new Set(["timed", "auction"]);
export const FINAL = new Set(["sold", "unsold", "capped"]);
const LISTING_PHASES = new Set(["announcement", "listing", "listing_stopped"]);

/** Errors after which reconnecting cannot help. */
const FATAL = new Set(["session_replaced", "bad_token", "token_expired", "unauthorized",
  "forbidden"]);

const localNow = () => performance.timeOrigin + performance.now();

/**
 * Server time from ping/pong: offset = server_time − (t0 + t1) / 2, taking, among the recent
 * samples, the one with the smallest round trip (the least delayed, so the most exact).
 */
export class ServerClock {
  constructor(keep = 12) {
    this.keep = keep;
    this.samples = [];
    this.offset = 0;
    this.rtt = null;
    this.synced = false;
  }

  now() {
    return localNow() + this.offset;
  }

  /** A rough first estimate (e.g. from `welcome`) until a ping has come back. */
  rough(serverTime) {
    if (!this.samples.length) this.offset = serverTime - localNow();
  }

  sample(t0, t1, serverTime) {
    this.samples.push({ rtt: t1 - t0, offset: serverTime - (t0 + t1) / 2 });
    if (this.samples.length > this.keep) this.samples.shift();
    let best = this.samples[0];
    for (const s of this.samples) if (s.rtt < best.rtt) best = s;
    this.offset = best.offset;
    this.rtt = best.rtt;
    this.synced = true;
  }
}

/** A random UUID for a bid. randomUUID needs a secure context (https or localhost). */
export function newBidId() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; // version 4
  b[8] = (b[8] & 0x3f) | 0x80; // variant 10
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Stop listening to a socket and close it; one still connecting closes once it opens. */
function forget(ws) {
  ws.onmessage = ws.onclose = ws.onerror = null;
  if (ws.readyState === WebSocket.CONNECTING) ws.onopen = () => ws.close(1000);
  else {
    ws.onopen = null;
    if (ws.readyState === WebSocket.OPEN) ws.close(1000);
  }
}

export function wsUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

export class Live extends EventTarget {
  constructor({ token = null, url = wsUrl(), clock = new ServerClock() } = {}) {
    super();
    this.token = token;
    this.url = url;
    this.clock = clock;
    this.status = "connecting"; // connecting | connected | reconnecting | offline | stopped
    this.welcome = null;
    this.lots = new Set();
    this.lastSeq = new Map(); // lot -> last seq applied
    this.pending = new Map(); // bid_id -> bid message, until its ack or reject
    this.ws = null;
    this.ready = false;
    this.greeted = false;
    this.stopped = false;
    this.everConnected = false;
    this.attempt = 0;
    this.timers = { retry: 0, ping: 0, pong: 0, open: 0, stable: 0 };
    this.pingT = null;
    this.pingsSent = 0;
    addEventListener("online", () => this.reconnectNow());
    addEventListener("offline", () => this.setStatus("offline"));
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.reconnectNow();
    });
  }

  // ---------------------------------------------------------------- requests
  start() {
    this.stopped = false;
    this.connect();
    return this;
  }

  watch(lot) {
    this.lots.add(lot);
    if (this.ready) this.send(this.subscribeFrame(lot));
  }

  /** Ask for a fresh snapshot of `lot` (e.g. after a gap, or when `you` may have changed). */
  resync(lot) {
    this.lastSeq.delete(lot);
    if (this.ready) this.send({ type: "subscribe", lot });
  }

  bid(lot, amount, bidId = newBidId()) {
    const message = { type: "bid", lot, amount, bid_id: bidId };
    this.pending.set(bidId, message);
    if (this.ready) this.send(message);
    return bidId;
  }

  /** Sign in again after `session_replaced`: this page takes the session back. */
  takeOver() {
    this.stopped = false;
    this.attempt = 0;
    this.connect();
  }

  /** Reconnect at once when the connection is down (network back, tab visible again). */
  reconnectNow() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.timers.retry);
    this.connect();
  }

  // ---------------------------------------------------------------- connection
  setStatus(status) {
    if (status === "offline" && (this.ready || this.stopped)) return;
    if (this.status === status) return;
    this.status = status;
    this.emit("status", { status });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  subscribeFrame(lot) {
    const since = this.lastSeq.get(lot);
    return since == null ? { type: "subscribe", lot } : { type: "subscribe", lot, since };
  }

  connect() {
    clearTimeout(this.timers.retry);
    if (this.ws) return;
    this.setStatus(navigator.onLine === false ? "offline"
      : this.everConnected ? "reconnecting" : "connecting");
    const ws = new WebSocket(this.url, SUBPROTOCOL);
    this.ws = ws;
    this.ready = false;
    this.greeted = false;
    // A handshake that hangs (half-open network) is given up and tried again.
    this.timers.open = setTimeout(() => {
      if (this.ws === ws && ws.readyState !== WebSocket.OPEN) this.drop(ws);
    }, 15000);
    ws.onopen = () => {
      clearTimeout(this.timers.open);
      if (this.token) this.send({ type: "hello", token: this.token });
      else this.onReady();
    };
    ws.onmessage = (e) => {
      if (this.ws !== ws) return;
      let message;
      try {
        message = JSON.parse(e.data);
      } catch {
        return;
      }
      this.receive(message);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.lost();
      if (e.code === 4001) this.fatal("session_replaced");
      else if (!this.stopped) this.retry();
    };
  }

  /** Give up on a socket without waiting for its closing handshake, and retry. */
  drop(ws) {
    if (this.ws !== ws) return;
    this.ws = null;
    forget(ws);
    this.lost();
    if (!this.stopped) this.retry();
  }

  lost() {
    this.ready = false;
    clearTimeout(this.timers.stable);
    clearTimeout(this.timers.open);
    clearTimeout(this.timers.ping);
    clearTimeout(this.timers.pong);
    this.pingT = null;
  }

  retry() {
    this.setStatus(navigator.onLine === false ? "offline" : "reconnecting");
    // 0.4 s, 0.8 s, 1.6 s ... up to 8 s, with jitter so thousands of pages do not return at once.
    const base = Math.min(8000, 400 * 2 ** Math.min(this.attempt, 5));
    this.attempt += 1;
    clearTimeout(this.timers.retry);
    this.timers.retry = setTimeout(() => this.connect(), base * (0.5 + Math.random() / 2));
  }

  fatal(code, message = {}) {
    this.stopped = true;
    clearTimeout(this.timers.retry);
    if (this.ws) forget(this.ws);
    this.ws = null;
    this.lost();
    this.setStatus("stopped");
    this.emit("fatal", { code, message });
  }

  onReady() {
    this.ready = true;
    this.everConnected = true;
    // The backoff starts over once a connection has held for a while, so a server that
    // accepts and then drops connections is not hammered.
    this.timers.stable = setTimeout(() => {
      this.attempt = 0;
    }, 5000);
    for (const lot of this.lots) this.send(this.subscribeFrame(lot));
    const resent = [...this.pending.values()];
    for (const message of resent) this.send(message);
    this.setStatus("connected");
    this.emit("ready", { resent: resent.length });
    this.pingsSent = 0;
    this.ping();
  }

  ping() {
    if (!this.ready) return;
    const t = localNow();
    this.pingT = t;
    this.send({ type: "ping", t });
    this.pingsSent += 1;
    clearTimeout(this.timers.pong);
    // No pong in time: the connection is dead even if the socket does not know it yet.
    const ws = this.ws;
    this.timers.pong = setTimeout(() => this.drop(ws), 10000);
    // A few quick samples first for a good offset, then one every 10 s.
    const next = this.pingsSent < 4 ? 700 : 10000;
    clearTimeout(this.timers.ping);
    this.timers.ping = setTimeout(() => this.ping(), next);
  }

  receive(message) {
    switch (message.type) {
      case "welcome":
        this.welcome = message;
        this.greeted = true;
        this.clock.rough(message.server_time);
        this.emit("welcome", message);
        this.onReady();
        break;
      case "pong":
        if (message.t != null && message.t === this.pingT) {
          clearTimeout(this.timers.pong);
          this.clock.sample(message.t, localNow(), message.server_time);
          this.pingT = null;
          this.emit("clock", {});
        }
        break;
      case "snapshot":
        if (!this.lots.has(message.lot)) break;
        this.lastSeq.set(message.lot, message.seq);
        this.emit("snapshot", message);
        break;
      case "event": {
        const last = this.lastSeq.get(message.lot);
        if (last == null || message.seq <= last) break; // before the snapshot, or a duplicate
        if (message.seq !== last + 1) {
          this.resync(message.lot); // a gap should never happen; a snapshot repairs it
          break;
        }
        this.lastSeq.set(message.lot, message.seq);
        this.emit("event", message);
        break;
      }
      case "ack":
      case "reject":
        if (message.code === "unavailable") {
          // Nothing was committed: the same bid_id is sent again shortly.
          const again = this.pending.get(message.bid_id);
          if (again) setTimeout(() => this.pending.has(again.bid_id) && this.send(again), 1000);
          this.emit("answer", message);
          break;
        }
        this.pending.delete(message.bid_id);
        this.emit("answer", message);
        break;
      case "error":
        // session_replaced: another sign-in took over. A refused hello: a bad credential.
        if (message.code === "session_replaced"
            || (this.token && !this.greeted && FATAL.has(message.code))) {
          this.fatal(message.code, message);
        } else {
          this.emit("error", message);
        }
        break;
      default:
        break;
    }
  }
}

/**
 * A lot as the public sees it: `state` is the snapshot's state (auction.Lot.public_view) kept
 * up to date by events. `bids` holds every bid seen (amounts only rise, so the amount is a key).
 */
export class LotState {
  constructor(lotId) {
    this.lotId = lotId;
    this.s = null;
    this.you = null;
    this.bids = new Map();
  }

  get loaded() {
    return this.s !== null;
  }

  snapshot(message) {
    this.s = { ...message.state };
    if (message.you) this.you = message.you;
    for (const [at, paddle, amount] of this.s.history ?? []) this.addBid({ at, paddle, amount });
    this.derive();
  }

  /** The figures that follow from the others, worked out the same way after every change. */
  derive() {
    const s = this.s;
    s.increment = LISTING_PHASES.has(s.phase) ? s.listing_increment : s.final_increment;
    s.next_min = s.price == null ? s.start_price : s.price + s.increment;
  }

  addBid(bid) {
    if (!this.bids.has(bid.amount)) this.bids.set(bid.amount, bid);
  }

  /** Bids from `GET /api/lots/{id}/bids` (the snapshot keeps only the last 200). */
  addHistory(bids) {
    for (const b of bids) this.addBid({ at: b.at, paddle: b.paddle, amount: b.amount });
  }

  /** Every known bid, oldest first. */
  allBids() {
    return [...this.bids.values()].sort((a, b) => a.amount - b.amount);
  }

  event(e) {
    const s = this.s;
    if (!s) return;
    switch (e.kind) {
      case "bid":
        s.price = e.amount;
        s.leader = e.paddle;
        if (e.ends_at != null) s.ends_at = e.ends_at;
        s.bid_count = (s.bid_count ?? 0) + 1;
        this.addBid({ at: e.at, paddle: e.paddle, amount: e.amount });
        if (this.you) this.you = { ...this.you, leading: e.paddle === this.you.paddle };
        break;
      case "phase_changed":
        s.phase = e.phase;
        s.ends_at = e.ends_at;
        if (LISTING_PHASES.has(e.phase) && e.ends_at != null) s.listing_end = e.ends_at;
        break;
      case "increment_changed":
        if (e.final) s.final_increment = e.amount;
        else s.listing_increment = e.amount;
        break;
      case "frozen":
        s.frozen = true;
        s.frozen_reason = e.reason;
        break;
      case "resumed":
        s.frozen = false;
        s.frozen_reason = null;
        s.phase = e.phase;
        s.ends_at = e.ends_at;
        s.listing_end = e.listing_end;
        break;
      case "taken_over": // another server took over after an outage: new timings, same freeze
        s.phase = e.phase;
        s.ends_at = e.ends_at;
        s.listing_end = e.listing_end;
        break;
      case "closed":
        s.phase = e.outcome;
        s.ends_at = null;
        s.result = { kind: "closed", at: e.at, outcome: e.outcome, paddle: e.paddle,
          price: e.price, reason: e.reason };
        break;
      case "capped":
        s.phase = "capped";
        s.ends_at = null;
        s.result = { kind: "capped", at: e.at, price: e.price, paddle: e.paddle };
        break;
      case "lot_opened":
        s.title = e.title;
        break;
      default:
        break;
    }
    s.seq = e.seq;
    this.derive();
  }

  /** The amount the one-click button bids: next_min, or the cap when that is lower. */
  oneClickAmount() {
    const s = this.s;
    if (!s) return null;
    if (s.price_cap != null && s.next_min > s.price_cap) return s.price_cap;
    return s.next_min;
  }

  /** Whether `paddle` appears among the bids this page knows of. */
  hasBidBy(paddle) {
    for (const b of this.bids.values()) if (b.paddle === paddle) return true;
    return false;
  }
}

/** Every accepted bid of `lotId`, oldest first, or [] when it cannot be read now. */
export async function fetchBids(lotId) {
  const response = await fetch(`/api/lots/${encodeURIComponent(lotId)}/bids`,
    { cache: "no-store" });
  if (!response.ok) throw new Error(`GET bids: ${response.status}`);
  const body = await response.json();
  return body.bids ?? [];
}
