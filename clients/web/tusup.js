// A tus 1.0.0 resumable-upload client over fetch (https://tus.io/protocols/resumable-upload):
// creation, then PATCH in pieces; after a network error it waits (backoff), asks the server
// for its offset (HEAD) and carries on from there. The bytes come from a function
// `bytesAt(offset, length)`, so a sealed envelope can be produced again for any offset
// instead of being held whole in memory.

const TUS = "1.0.0";
const OCTETS = "application/offset+octet-stream";
const MiB = 1048576;
const DELAYS = [500, 1000, 2000, 4000, 8000, 15000, 30000];
// Worth another try: the server is busy, restarting or behind a proxy that timed out.
const RETRY_STATUS = new Set([408, 409, 423, 429, 500, 502, 503, 504]);

/** A failed upload: `.code` is "aborted", "network" (retries used up), "bad_source",
 *  "bad_response" or the server's own refusal code (e.g. "too_large", "forbidden");
 *  `.status` is the HTTP status when there was one. */
export class UploadError extends Error {
  constructor(code, message, status = 0) {
    super(message);
    this.name = "UploadError";
    this.code = code;
    this.status = status;
  }
}

function base64(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

function encodeMetadata(metadata) {
  return Object.entries(metadata)
    .map(([key, value]) => (value === "" ? key : `${key} ${base64(String(value))}`))
    .join(",");
}

/** The Upload-Receipt header (b64u of UTF-8 JSON) as an object, or null. */
function parseReceipt(value) {
  if (!value) return null;
  try {
    const bin = atob(value.replace(/-/g, "+").replace(/_/g, "/"));
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    return null;
  }
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}

async function refusal(response) {
  let code = `http_${response.status}`;
  let message = `the server answered ${response.status}`;
  try {
    const body = await response.json();
    if (body?.error?.code) ({ code, message } = body.error);
  } catch {
    // no JSON body (HEAD, or a proxy's page): keep the status
  }
  return new UploadError(code, message, response.status);
}

class Retry extends Error {
  constructor(cause, restart = false) {
    super(cause.message);
    this.cause = cause;
    this.restart = restart; // the upload is gone on the server: create it again
  }
}

/**
 * One resumable upload.
 *   new Upload({endpoint, token, length, metadata, bytesAt, chunkSize, onProgress, onState,
 *               retryDelays, url})
 * `endpoint`: the tus collection URL; `url`: an upload created earlier (resume it);
 * `bytesAt(offset, length) -> Promise<Uint8Array>`; `onProgress(sent, total)`;
 * `onState(state, detail)` with state "creating" | "uploading" | "retrying" | "aborted" |
 * "done" | "failed". `start()` resolves to {url, receipt}; `abort()` stops it (the promise
 * rejects with code "aborted"); `resume()` carries on from the server's offset.
 */
export class Upload {
  constructor({ endpoint, token = null, length, metadata = {}, bytesAt, chunkSize = 2 * MiB,
    onProgress = () => {}, onState = () => {}, retryDelays = DELAYS, url = null } = {}) {
    if (!Number.isSafeInteger(length) || length < 0) throw new TypeError("length: bytes");
    if (typeof bytesAt !== "function") throw new TypeError("bytesAt must be a function");
    if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) throw new TypeError("chunkSize");
    this.endpoint = new URL(endpoint, location.href).href;
    this.token = token;
    this.length = length;
    this.metadata = metadata;
    this.bytesAt = bytesAt;
    this.chunkSize = chunkSize;
    this.onProgress = onProgress;
    this.onState = onState;
    this.retryDelays = retryDelays;
    this.url = url;
    this.offset = 0;
    this.receipt = null;
    this.state = "idle";
    this.retries = 0; // every retry so far, for the page and for tests
    this._controller = null;
    this._running = null;
  }

  /** Upload every byte: resolves to {url, receipt}. Calling it again while it runs returns
   *  the same promise. */
  start() {
    if (!this._running) {
      const controller = new AbortController();
      this._controller = controller;
      this._running = this._run(controller.signal).finally(() => {
        if (this._controller === controller) this._running = null;
      });
    }
    return this._running;
  }

  /** Carry on after abort() or a failure, from the offset the server holds. */
  resume() {
    return this.start();
  }

  /** Stop at once: the request in flight is cut; the server keeps what it received. */
  abort() {
    if (this._controller && !this._controller.signal.aborted) {
      this._controller.abort(new UploadError("aborted", "the upload was stopped"));
      this._running = null;
    }
  }

  _state(state, detail = {}) {
    this.state = state;
    this.onState(state, detail);
  }

  _headers(extra = {}) {
    const headers = { "Tus-Resumable": TUS, ...extra };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    return headers;
  }

  async _fetch(url, init, signal) {
    try {
      return await fetch(url, { ...init, signal, cache: "no-store" });
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw new Retry(new UploadError("network", `network error: ${err.message}`));
    }
  }

  async _check(response) {
    if (response.ok) return;
    const error = await refusal(response);
    if (RETRY_STATUS.has(response.status)) throw new Retry(error);
    throw error;
  }

  _offsetOf(response) {
    const offset = Number(response.headers.get("Upload-Offset"));
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > this.length) {
      throw new UploadError("bad_response", "the server sent no valid Upload-Offset",
        response.status);
    }
    this.offset = offset;
    this.receipt = parseReceipt(response.headers.get("Upload-Receipt")) ?? this.receipt;
    this.onProgress(offset, this.length);
  }

  async _create(signal) {
    this._state("creating");
    const headers = this._headers({ "Upload-Length": String(this.length) });
    const metadata = encodeMetadata(this.metadata);
    if (metadata) headers["Upload-Metadata"] = metadata;
    const response = await this._fetch(this.endpoint, { method: "POST", headers }, signal);
    await this._check(response);
    const location = response.headers.get("Location");
    if (!location) throw new UploadError("bad_response", "the server sent no Location", 201);
    this.url = new URL(location, this.endpoint).href;
    this.offset = 0;
    this.receipt = parseReceipt(response.headers.get("Upload-Receipt"));
  }

  async _head(signal) {
    const response = await this._fetch(this.url, { method: "HEAD", headers: this._headers() },
      signal);
    if (response.status === 404 || response.status === 410) {
      throw new Retry(await refusal(response), true);
    }
    await this._check(response);
    this._offsetOf(response);
  }

  async _patch(signal) {
    const want = Math.min(this.chunkSize, this.length - this.offset);
    const body = await this.bytesAt(this.offset, want);
    if (!(body instanceof Uint8Array) || body.length !== want) {
      throw new UploadError("bad_source", `bytesAt(${this.offset}, ${want}) gave the wrong bytes`);
    }
    const headers = this._headers({ "Upload-Offset": String(this.offset),
      "Content-Type": OCTETS });
    const response = await this._fetch(this.url, { method: "PATCH", headers, body }, signal);
    await this._check(response);
    this._offsetOf(response);
  }

  async _run(signal) {
    let attempt = 0;
    for (;;) {
      try {
        if (this.url === null) await this._create(signal);
        else await this._head(signal);
        this._state("uploading", { offset: this.offset });
        while (this.offset < this.length) {
          await this._patch(signal);
          attempt = 0;
        }
        this._state("done", { url: this.url, receipt: this.receipt });
        return { url: this.url, receipt: this.receipt };
      } catch (err) {
        if (signal.aborted) {
          this._state("aborted", { offset: this.offset });
          throw signal.reason;
        }
        const retry = err instanceof Retry;
        const cause = retry ? err.cause : err;
        if (!retry || attempt >= this.retryDelays.length) {
          this._state("failed", { error: cause });
          throw cause;
        }
        if (err.restart) this.url = null;
        const delay = this.retryDelays[attempt++];
        this.retries += 1;
        this._state("retrying", { attempt, delay, error: cause });
        try {
          await sleep(delay, signal);
        } catch {
          this._state("aborted", { offset: this.offset });
          throw signal.reason;
        }
      }
    }
  }
}
