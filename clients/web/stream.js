// Live video of a lot or a tender: play it by WHEP, publish it by WHIP (RFC 9725).
//
//   const viewer = watch(videoElement, "/api/streams/lot/L-1/whep", { onState });
//   const handle = await publish(mediaStream, "/api/streams/lot/L-1/whip", token, { onState });
//   handle.stop();                                  // DELETE of the WHIP resource
//
// The relay answers with every ICE candidate in its SDP answer, so both wait for the
// browser's own gathering to complete and POST one offer (no trickle). It forwards H.264 and
// Opus as received: the publisher offers H.264 only, constrained baseline (42e01f) first.
// A full relay answers 503 with Retry-After (both wait that long); a 307 to another relay is
// followed by fetch itself, and the resource's Location is read against the final URL.
//
// The panels around the two (state line, video, buttons, texts) are in stream-panels.js.

const SDP = "application/sdp";
const GATHER_MS = 3000; // longest wait for ICE gathering before the offer goes anyway
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000];

/** A refusal or failure of a WHIP/WHEP exchange; `code` is the server's stable code. */
export class StreamError extends Error {
  constructor(status, detail = null, retryAfter = null) {
    super(detail?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = detail?.code ?? (status === 0 ? "network" : `http_${status}`);
    this.detail = { ...detail, code: this.code };
    this.retryAfter = retryAfter; // seconds, from Retry-After
  }
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const timer = setTimeout(resolve, ms);
  signal?.addEventListener("abort", () => {
    clearTimeout(timer);
    resolve();
  }, { once: true });
});

/** The session's state URL ({S}) from its WHIP or WHEP URL ({S}/whip, {S}/whep). */
export function sessionUrl(url) {
  return url.replace(/\/(whip|whep)\/?$/, "");
}

/** Codec order for one kind: H.264 (constrained baseline, packetization-mode 1 first), then
 * retransmission; with `others`, every other codec after them. */
function h264First(codecs, others) {
  const rank = (c) => {
    const mime = c.mimeType.toLowerCase();
    const fmtp = (c.sdpFmtpLine ?? "").toLowerCase();
    if (mime === "video/h264") {
      const mode1 = fmtp.includes("packetization-mode=1");
      const profile = fmtp.includes("profile-level-id=42e01f") ? 0
        : fmtp.includes("profile-level-id=42001f") ? 1 : 2;
      return (mode1 ? 0 : 3) + profile;
    }
    if (mime === "video/rtx") return 10;
    return others ? 20 : null;
  };
  return codecs.map((c, i) => ({ c, r: rank(c), i }))
    .filter((x) => x.r !== null)
    .sort((a, b) => a.r - b.r || a.i - b.i)
    .map((x) => x.c);
}

/** Whether the browser can send H.264 (the only video the relay forwards). */
export function canPublishH264() {
  const codecs = globalThis.RTCRtpSender?.getCapabilities?.("video")?.codecs ?? [];
  return codecs.some((c) => c.mimeType.toLowerCase() === "video/h264");
}

function preferOnSender(transceiver) {
  const codecs = h264First(RTCRtpSender.getCapabilities("video")?.codecs ?? [], false);
  if (!codecs.some((c) => c.mimeType.toLowerCase() === "video/h264")) {
    throw new StreamError(0, { code: "no_h264" });
  }
  transceiver.setCodecPreferences(codecs);
}

function preferOnReceiver(transceiver) {
  // Without H.264 the relay re-encodes for this viewer: leave the browser's own order then.
  const codecs = RTCRtpReceiver.getCapabilities?.("video")?.codecs ?? [];
  if (!transceiver.setCodecPreferences
    || !codecs.some((c) => c.mimeType.toLowerCase() === "video/h264")) return;
  transceiver.setCodecPreferences(h264First(codecs, true));
}

/** Resolves once ICE gathering is complete, or after `ms` (the offer then has what it has). */
function gathered(pc, ms = GATHER_MS) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => pc.iceGatheringState === "complete" && finish();
    const timer = setTimeout(finish, ms);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/** POST the local offer to `url`; sets the answer and returns the resource's absolute URL. */
async function exchange(pc, url, { token = null, signal } = {}) {
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const headers = { "content-type": SDP };
  if (token) headers.authorization = `Bearer ${token}`;
  let response;
  try {
    // A 307 (another relay, or an external SFU) is followed with the same method and body.
    response = await fetch(url, { method: "POST", headers, body: pc.localDescription.sdp,
      cache: "no-store", signal });
  } catch {
    throw new StreamError(0);
  }
  if (response.status !== 201) {
    let detail = null;
    try {
      detail = (await response.json())?.error ?? null;
    } catch {
      // not JSON: the status says enough
    }
    const after = Number.parseInt(response.headers.get("retry-after") ?? "", 10);
    throw new StreamError(response.status, detail, Number.isFinite(after) ? after : null);
  }
  const location = response.headers.get("location");
  if (!location) throw new StreamError(response.status, { code: "bad_response" });
  const resource = new URL(location, response.url).href;
  const sdp = await response.text();
  await pc.setRemoteDescription({ type: "answer", sdp });
  return resource;
}

/** DELETE a WHIP/WHEP resource; `keepalive` lets it finish while the page unloads. */
function release(resource, token = null, keepalive = false) {
  if (!resource) return Promise.resolve();
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  return fetch(resource, { method: "DELETE", headers, keepalive, cache: "no-store" })
    .catch(() => {});
}

/** Waits for `pc` to reach `connected` (true) or to fail (false). */
function connected(pc, signal) {
  return new Promise((resolve) => {
    const check = () => {
      const s = pc.connectionState;
      if (s === "connected" || s === "failed" || s === "closed" || signal?.aborted) {
        pc.removeEventListener("connectionstatechange", check);
        resolve(s === "connected");
      }
    };
    pc.addEventListener("connectionstatechange", check);
    signal?.addEventListener("abort", check, { once: true });
    check();
  });
}

const fatal = (error) => error instanceof StreamError
  && ["unknown_session", "no_h264", "forbidden", "unauthorized", "bad_token", "token_expired",
    "already_publishing"].includes(error.code);

/**
 * Play a session by WHEP in `video` (muted, inline). While the session is not live the
 * state is polled (GET {S}) every `poll` ms; once live a recvonly offer is posted; when the
 * connection fails or the publisher leaves, the resource is ended and the wait starts again,
 * with backoff after failures. The resource is DELETEd when the page goes away (and the
 * watch starts again if the page comes back from the back/forward cache).
 *
 * onState(state, detail): "offline" {viewers}, "connecting", "live" {viewers},
 * "retrying" {seconds, error}, "busy" {seconds, error} (503 Retry-After), "unavailable"
 * {error} (no such session: the watch ends). Returns {stop()}.
 */
export function watch(video, whepUrl, { onState: report = () => {}, poll = 3000 } = {}) {
  const onState = (state, detail = {}) => report(state, detail);
  const stateUrl = sessionUrl(whepUrl);
  const every = Math.max(1, Math.round(poll / 1000)); // connection checks per state poll
  let abort = null;
  let pc = null;
  let resource = null;
  let failures = 0;
  video.muted = true;
  video.autoplay = true;
  video.playsInline = true;

  async function sessionState(signal) {
    let response;
    try {
      response = await fetch(stateUrl, { cache: "no-store", signal });
    } catch {
      throw new StreamError(0);
    }
    if (!response.ok) {
      let detail = null;
      try {
        detail = (await response.json())?.error ?? null;
      } catch {
        // not JSON: the status says enough
      }
      throw new StreamError(response.status, detail);
    }
    return response.json();
  }

  // The resource is DELETEd before the connection closes: the relay ends a resource whose
  // connection closed by itself, and a DELETE after that would be answered 404.
  async function close() {
    const was = resource;
    const old = pc;
    resource = null;
    pc = null;
    await release(was);
    old?.close();
    video.srcObject = null;
  }

  async function connect(signal, url) {
    pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    const stream = new MediaStream();
    preferOnReceiver(pc.addTransceiver("video", { direction: "recvonly" }));
    pc.addTransceiver("audio", { direction: "recvonly" });
    pc.addEventListener("track", ({ track }) => {
      stream.addTrack(track);
      if (video.srcObject !== stream) video.srcObject = stream;
      video.play().catch(() => {}); // muted autoplay; a refusal leaves the controls to the user
    });
    resource = await exchange(pc, url, { signal });
    if (!(await connected(pc, signal))) throw new StreamError(0, { code: "media_failed" });
  }

  /** Until the connection fails, the publisher leaves or the watch stops. */
  async function play(signal, before, external) {
    const since = Date.now();
    let waiting = false;
    // The count was read before this viewer joined; an external SFU gives none (null).
    let viewers = before == null ? null : before + 1;
    let announced = false;
    for (let tick = 1; !signal.aborted; tick += 1) {
      // "live" once pictures show (or after a while connected: a stream without video).
      // An external SFU may answer before anyone publishes: there only pictures say live.
      const quiet = Date.now() - since > 4000;
      if (!announced && (video.videoWidth > 0 || (quiet && !external))) {
        announced = true;
        onState("live", { viewers });
      } else if (!announced && quiet && !waiting) {
        waiting = true;
        onState("offline", { viewers: null });
      }
      await sleep(1000, signal);
      if (signal.aborted) return;
      if (pc.connectionState === "failed" || pc.connectionState === "closed") {
        throw new StreamError(0, { code: "media_failed" });
      }
      if (tick % every === 0) {
        const now = await sessionState(signal);
        if (now.live === false) return;
        if (announced && now.viewers !== viewers) onState("live", { viewers: now.viewers });
        viewers = now.viewers;
      }
    }
  }

  async function run(signal) {
    while (!signal.aborted) {
      let delay = poll;
      let external = false;
      try {
        const state = await sessionState(signal);
        external = state.external === true;
        // live: false, not yet; null, held by an external SFU: try it there.
        if (state.live === false) {
          onState("offline", { viewers: state.viewers });
        } else {
          onState("connecting");
          await connect(signal, external ? state.whep_url : whepUrl);
          failures = 0;
          await play(signal, state.viewers, external);
          await close();
          delay = 0; // the publisher left: say so at once
        }
      } catch (error) {
        await close();
        if (signal.aborted) return;
        const err = error instanceof StreamError ? error : new StreamError(0);
        if (external && err.status === 404) {
          onState("offline", { viewers: null }); // the SFU has no publisher for it yet
        } else if (err.status === 404 || fatal(err)) {
          onState("unavailable", { error: err });
          return;
        } else if (err.retryAfter != null) {
          delay = err.retryAfter * 1000;
          onState("busy", { seconds: err.retryAfter, error: err });
        } else {
          delay = BACKOFF_MS[Math.min(failures, BACKOFF_MS.length - 1)];
          failures += 1;
          onState("retrying", { seconds: Math.round(delay / 1000), error: err });
        }
      }
      await sleep(delay, signal);
    }
  }

  const start = () => {
    abort = new AbortController();
    run(abort.signal);
  };
  const unload = () => {
    abort.abort();
    release(resource, null, true);
    resource = null;
    pc?.close();
    pc = null;
  };
  const restore = (event) => event.persisted && start();
  addEventListener("pagehide", unload);
  addEventListener("pageshow", restore);
  start();
  return {
    stop() {
      removeEventListener("pagehide", unload);
      removeEventListener("pageshow", restore);
      abort.abort();
      return close();
    },
  };
}

/**
 * Publish `stream` (camera and microphone) by WHIP: sendonly, H.264 only. Resolves once the
 * relay has answered; rejects with a StreamError when it refuses (409 already_publishing,
 * 401/403 a bad token, 503 with Retry-After...). A connection that fails later is published
 * again with backoff. onState: "connecting", "live", "retrying" {seconds, error}, "failed"
 * {error} (refused for good, or the page went away and came back). Returns {stop()}, which
 * DELETEs the resource; so does leaving the page.
 */
export async function publish(stream, whipUrl, token, { onState: report = () => {} } = {}) {
  const onState = (state, detail = {}) => report(state, detail);
  const abort = new AbortController();
  const { signal } = abort;
  let pc = null;
  let resource = null;
  let failures = 0;

  async function connect() {
    pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    for (const track of stream.getTracks()) {
      const transceiver = pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
      if (track.kind === "video") preferOnSender(transceiver);
    }
    onState("connecting");
    resource = await exchange(pc, whipUrl, { token, signal });
  }

  async function end() {
    const was = resource;
    const old = pc;
    resource = null;
    pc = null;
    await release(was, token); // before the close, as in watch()
    old?.close();
  }

  /** Resolves when `pc` fails or closes, or the publishing stops. */
  const lost = (peer) => new Promise((resolve) => {
    const check = () => {
      if (peer.connectionState === "failed" || peer.connectionState === "closed"
        || signal.aborted) {
        peer.removeEventListener("connectionstatechange", check);
        resolve();
      }
    };
    peer.addEventListener("connectionstatechange", check);
    signal.addEventListener("abort", check, { once: true });
    check();
  });

  async function keep() {
    while (!signal.aborted) {
      const up = await connected(pc, signal);
      if (signal.aborted) return;
      if (up) {
        failures = 0;
        onState("live");
        await lost(pc);
        if (signal.aborted) return;
      }
      // The connection failed: end the resource and publish anew, with backoff.
      await end();
      for (;;) {
        const delay = BACKOFF_MS[Math.min(failures, BACKOFF_MS.length - 1)];
        failures += 1;
        onState("retrying", { seconds: delay / 1000,
          error: new StreamError(0, { code: "media_failed" }) });
        await sleep(delay, signal);
        if (signal.aborted) return;
        try {
          await connect();
          break;
        } catch (error) {
          await end();
          if (signal.aborted) return;
          if (fatal(error)) {
            onState("failed", { error });
            return;
          }
        }
      }
    }
  }

  try {
    await connect();
  } catch (error) {
    await end();
    throw error instanceof StreamError ? error : new StreamError(0, { code: "media_failed",
      message: String(error) });
  }
  const unload = () => {
    abort.abort();
    release(resource, token, true);
    resource = null;
    pc?.close();
    pc = null;
  };
  const restore = (event) => {
    if (event.persisted) onState("failed", { error: new StreamError(0, { code: "media_failed" }) });
  };
  addEventListener("pagehide", unload);
  addEventListener("pageshow", restore);
  keep();
  return {
    get resource() {
      return resource;
    },
    async stop() {
      removeEventListener("pagehide", unload);
      removeEventListener("pageshow", restore);
      abort.abort();
      await end();
    },
  };
}

// ------------------------------------------------------------------ page panels
