// Sealed bids in the browser: bidenv/v1 envelopes and bidkey/v1 key backups, byte for byte
// as docs/sealed-bids.md specifies (the Python side reads what this writes, and back).
// Large documents are read from the Blob one chunk at a time, never whole: a 1 GiB file
// seals in bounded memory, and any byte range of the envelope can be produced again on
// demand (`sealedRange`), which is what a resumable upload needs.

import { HpkeError, concat, i2osp, importPublic, open, publicOf, seal, toHex } from "./hpke.js";

const subtle = globalThis.crypto.subtle;
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

export const CHUNK = 1048576;
export const VERSION = "bidenv/v1";
export const MAGIC = Uint8Array.of(0x42, 0x49, 0x44, 0x45, 0x4e, 0x56, 0x00, 0x01); // BIDENV 0 1
const TAG = 16;
const PREAMBLE = MAGIC.length + 4;
const MAX_HEADER = 65536;
const MAX_SIZE = 2 ** 40;
const MIN_ITERATIONS = 100000;
const MAX_ITERATIONS = 10000000; // a key file asking for more would freeze the page
const ID = /^[A-Za-z0-9_.-]{1,64}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const B64U = /^[A-Za-z0-9_-]*$/;
const PRICE = /^(0|[1-9][0-9]{0,14})(\.[0-9]{1,2})?$/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
// Header members in their one canonical (sorted) order, with the size of each b64u value.
const HEADER_KEYS = ["bidder", "chunk", "commit", "enc", "nonce", "recipient", "size", "tender",
  "v", "wrapped"];
const B64U_SIZES = { commit: 32, enc: 65, nonce: 7, wrapped: 48 };
const SUMMARY_TEXT = { manager: 100, note: 500, quality: 200 };
const SUMMARY_KEYS = ["duration_days", "manager", "note", "price", "quality"];

/** A refusal with a stable `.code`: not_an_envelope, bad_header, bad_length, wrong_key,
 *  bad_chunk, bad_summary, bad_document, bad_id, bad_public_key, too_large, bad_range,
 *  bad_input, weak_password, bad_key_file, wrong_password (the same codes as opening/). */
export class SealError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "SealError";
    this.code = code;
  }
}

// ---- encodings --------------------------------------------------------------------------

export function b64uEncode(bytes) {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Decode canonical base64url without padding; null when `text` is anything else. */
export function b64uDecode(text) {
  if (typeof text !== "string" || !B64U.test(text) || text.length % 4 === 1) return null;
  const bin = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return b64uEncode(bytes) === text ? bytes : null;
}

function u32(bytes, at) {
  return new DataView(bytes.buffer, bytes.byteOffset + at, 4).getUint32(0);
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

// JSON.parse keeps the last of duplicate members and reads 30.0 as 30; Python's reader
// refuses both, so a summary or key file must not mean one thing here and another there.
const JSON_TOKEN = /"(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*|[{}[\]:]/g;

/** Refusal text when already-parsed JSON `text` repeats a top-level member or holds a
 *  top-level number that is not a plain integer; null when it has neither. */
function strictJsonProblem(text, parsed) {
  const names = [];
  let depth = 0;
  let last = null;
  for (const [token] of text.matchAll(JSON_TOKEN)) {
    if (token === "{" || token === "[") depth += 1;
    else if (token === "}" || token === "]") depth -= 1;
    else if (token === ":" && depth === 1 && last !== null) names.push(JSON.parse(last));
    else if (depth === 1 && /[.eE]/.test(token) && token[0] !== "\"") {
      return "numbers must be whole and without an exponent";
    }
    last = token[0] === "\"" ? token : null;
  }
  if (new Set(names).size !== names.length || names.length !== Object.keys(parsed).length) {
    return "a member appears twice";
  }
  return null;
}

async function sha256(bytes) {
  return new Uint8Array(await subtle.digest("SHA-256", bytes));
}

// ---- keys -------------------------------------------------------------------------------

/** Lowercase hex SHA-256 of the 65-byte public key. */
export async function fingerprint(publicRaw) {
  return toHex(await sha256(publicRaw));
}

/** A fingerprint in groups of four, as pages show it. */
export function formatFingerprint(fp) {
  return fp.match(/.{1,4}/g).join(" ");
}

/** A new bidder key pair. The private key is extractable so it can be backed up. */
export async function generateKey() {
  const pair = await subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, true,
    ["deriveBits"]);
  const publicRaw = new Uint8Array(await subtle.exportKey("raw", pair.publicKey));
  return { privateKey: pair.privateKey, publicRaw, fingerprint: await fingerprint(publicRaw) };
}

async function passwordKey(password, salt, iterations) {
  const base = await subtle.importKey("raw", utf8.encode(password), "PBKDF2", false,
    ["deriveBits"]);
  const bits = await subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations },
    base, 256);
  return subtle.importKey("raw", bits, "AES-GCM", false, ["encrypt", "decrypt"]);
}

function keyAad(publicRaw) {
  return concat(utf8.encode("bidkey/v1"), publicRaw);
}

/** The bidkey/v1 backup file (JSON text) of a key pair, sealed with `password`. */
export async function backupKey(privateKey, publicRaw, bidder, password, iterations = 600000) {
  if (typeof bidder !== "string" || !ID.test(bidder)) {
    throw new SealError("bad_id", "the bidder id is 1-64 letters, digits or _.-");
  }
  if (typeof password !== "string" || password.length === 0) {
    throw new SealError("weak_password", "a password is required to protect the key file");
  }
  if (!Number.isSafeInteger(iterations) || iterations < MIN_ITERATIONS) {
    throw new SealError("weak_password", `PBKDF2 needs at least ${MIN_ITERATIONS} iterations`);
  }
  const pkcs8 = new Uint8Array(await subtle.exportKey("pkcs8", privateKey));
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const key = await passwordKey(password, salt, iterations);
  const sealed = new Uint8Array(await subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: keyAad(publicRaw) }, key, pkcs8));
  return JSON.stringify({
    v: "bidkey/v1", bidder, public: b64uEncode(publicRaw),
    fingerprint: await fingerprint(publicRaw), kdf: "PBKDF2-SHA256", iterations,
    salt: b64uEncode(salt), iv: b64uEncode(iv), sealed: b64uEncode(sealed),
  });
}

function badKeyFile(why) {
  return new SealError("bad_key_file", `this is not a usable bidkey/v1 key file: ${why}`);
}

/** Read a bidkey/v1 file: {privateKey, publicRaw, fingerprint, bidder}.
 *  Throws SealError "bad_key_file" or "wrong_password". */
export async function restoreKey(jsonText, password) {
  let file;
  try {
    file = JSON.parse(jsonText);
  } catch {
    throw badKeyFile("not JSON");
  }
  if (file === null || typeof file !== "object" || file.v !== "bidkey/v1") {
    throw badKeyFile("not a bidkey/v1 object");
  }
  const problem = strictJsonProblem(jsonText, file);
  if (problem) throw badKeyFile(problem);
  if (file.kdf !== "PBKDF2-SHA256") throw badKeyFile("unknown kdf");
  const { iterations } = file;
  if (!Number.isSafeInteger(iterations) || iterations < MIN_ITERATIONS
      || iterations > MAX_ITERATIONS) {
    throw badKeyFile("iterations out of range");
  }
  if (typeof file.bidder !== "string" || !ID.test(file.bidder)) throw badKeyFile("bad bidder");
  const publicRaw = b64uDecode(file.public);
  const salt = b64uDecode(file.salt);
  const iv = b64uDecode(file.iv);
  const sealed = b64uDecode(file.sealed);
  if (!publicRaw || publicRaw.length !== 65 || publicRaw[0] !== 4) throw badKeyFile("public");
  if (!salt || salt.length !== 16 || !iv || iv.length !== 12) throw badKeyFile("salt or iv");
  if (!sealed || sealed.length <= TAG) throw badKeyFile("sealed");
  const fp = await fingerprint(publicRaw);
  if (file.fingerprint !== fp) throw badKeyFile("the fingerprint does not match the key");
  if (typeof password !== "string" || password.length === 0) {
    throw new SealError("wrong_password", "the password is wrong");
  }
  let pkcs8;
  try {
    pkcs8 = await subtle.decrypt({ name: "AES-GCM", iv, additionalData: keyAad(publicRaw) },
      await passwordKey(password, salt, iterations), sealed);
  } catch {
    throw new SealError("wrong_password", "the password is wrong (or the file was altered)");
  }
  let privateKey;
  try {
    privateKey = await subtle.importKey("pkcs8", pkcs8, { name: "ECDH", namedCurve: "P-256" },
      true, ["deriveBits"]);
  } catch {
    throw badKeyFile("the private key is not a P-256 key");
  }
  if (!equalBytes(await publicOf(privateKey), publicRaw)) {
    throw badKeyFile("the private key does not belong to the public key");
  }
  return { privateKey, publicRaw, fingerprint: fp, bidder: file.bidder };
}

// ---- summary (开标一览表 entry) -----------------------------------------------------------

function badSummary(why) {
  return new SealError("bad_summary", `the bid summary is not valid: ${why}`);
}

/** Check a summary object against the spec; returns its canonical JSON bytes. */
export function summaryBytes(summary) {
  if (summary === null || typeof summary !== "object" || Array.isArray(summary)) {
    throw badSummary("it must be an object");
  }
  for (const key of Object.keys(summary)) {
    if (!SUMMARY_KEYS.includes(key)) throw badSummary(`unknown member "${key}"`);
  }
  if (typeof summary.price !== "string" || !PRICE.test(summary.price)) {
    throw badSummary("price must be decimal yuan with at most 2 decimals, e.g. \"1234.50\"");
  }
  const days = summary.duration_days;
  if (days !== undefined && !(Number.isInteger(days) && days >= 1 && days <= 100000)) {
    throw badSummary("duration_days must be a whole number from 1 to 100000");
  }
  for (const [key, max] of Object.entries(SUMMARY_TEXT)) {
    const value = summary[key];
    if (value === undefined) continue;
    if (typeof value !== "string" || LONE_SURROGATE.test(value)) {
      throw badSummary(`${key} must be text`);
    }
    if ([...value].length > max) throw badSummary(`${key} is longer than ${max} characters`);
  }
  const canonical = {};
  for (const key of SUMMARY_KEYS) if (summary[key] !== undefined) canonical[key] = summary[key];
  return utf8.encode(JSON.stringify(canonical));
}

// ---- header -----------------------------------------------------------------------------

function badHeader(why) {
  return new SealError("bad_header", `the envelope header is not valid: ${why}`);
}

function headerJson(header) {
  const ordered = {};
  for (const key of HEADER_KEYS) ordered[key] = header[key];
  return JSON.stringify(ordered);
}

/** Check a header object member by member; returns its canonical JSON text. */
export function checkHeader(header) {
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw badHeader("not a JSON object");
  }
  const keys = Object.keys(header).sort();
  if (keys.join() !== HEADER_KEYS.join()) throw badHeader("wrong set of members");
  if (header.v !== VERSION) throw badHeader(`v must be "${VERSION}"`);
  for (const key of ["bidder", "tender"]) {
    if (typeof header[key] !== "string" || !ID.test(header[key])) throw badHeader(key);
  }
  if (header.chunk !== CHUNK) throw badHeader(`chunk must be ${CHUNK}`);
  if (!Number.isSafeInteger(header.size) || header.size < 0 || header.size > MAX_SIZE) {
    throw badHeader("size");
  }
  if (typeof header.recipient !== "string" || !HEX64.test(header.recipient)) {
    throw badHeader("recipient");
  }
  for (const [key, length] of Object.entries(B64U_SIZES)) {
    const bytes = b64uDecode(header[key]);
    if (!bytes || bytes.length !== length) throw badHeader(`${key} must be ${length} bytes`);
  }
  if (b64uDecode(header.enc)[0] !== 4) throw badHeader("enc must be an uncompressed point");
  return headerJson(header);
}

function readPreamble(bytes) {
  if (!(bytes instanceof Uint8Array)) throw new SealError("not_an_envelope", "not bytes");
  if (bytes.length < MAGIC.length || !equalBytes(bytes.subarray(0, MAGIC.length), MAGIC)) {
    throw new SealError("not_an_envelope", "this file is not a sealed bid (bidenv/v1)");
  }
  if (bytes.length < PREAMBLE) throw badHeader("the header is incomplete");
  const hlen = u32(bytes, MAGIC.length);
  if (hlen < 2 || hlen > MAX_HEADER) throw badHeader("header length out of range");
  if (bytes.length < PREAMBLE + hlen) throw badHeader("the header is incomplete");
  const raw = bytes.subarray(PREAMBLE, PREAMBLE + hlen);
  let header;
  try {
    header = JSON.parse(strictUtf8.decode(raw));
  } catch {
    throw badHeader("not JSON");
  }
  // One encoding per envelope: what was read must be exactly what we would write.
  if (!equalBytes(utf8.encode(checkHeader(header)), raw)) throw badHeader("not canonical");
  return { header, preamble: bytes.subarray(0, PREAMBLE + hlen) };
}

/** The header of an envelope, from its first bytes (the whole preamble must be there). */
export function parseHeader(bytes) {
  return readPreamble(bytes).header;
}

function chunkCount(size) {
  return size === 0 ? 1 : Math.ceil(size / CHUNK);
}

/** Total envelope length for a plaintext of `size` bytes and a header JSON of `headerLength`
 *  bytes (with headerLength 0: the 12-byte preamble plus the chunks). */
export function envelopeLength(size, headerLength = 0) {
  return PREAMBLE + headerLength + size + TAG * chunkCount(size);
}

// ---- file key, commitment, chunks ---------------------------------------------------------

function hpkeInfo(tender, bidder) {
  return concat(utf8.encode(`${VERSION} ${tender}`), Uint8Array.of(0), utf8.encode(bidder));
}

async function subkey(fileKey, label) {
  const base = await subtle.importKey("raw", fileKey, "HKDF", false, ["deriveBits"]);
  return new Uint8Array(await subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: utf8.encode(label) },
    base, 256));
}

async function commitment(fileKey, nonce) {
  const key = await subtle.importKey("raw", await subkey(fileKey, `${VERSION} commit`),
    { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const data = concat(utf8.encode(`${VERSION} key commitment`), nonce);
  return new Uint8Array(await subtle.sign("HMAC", key, data));
}

async function contentKey(fileKey) {
  return subtle.importKey("raw", await subkey(fileKey, `${VERSION} content`), "AES-GCM", false,
    ["encrypt", "decrypt"]);
}

function chunkNonce(prefix, index, last) {
  return concat(prefix, i2osp(index, 4), Uint8Array.of(last ? 1 : 0));
}

/** Throws SealError "wrong_key" unless `fileKey` is the key the header commits to. */
export async function checkCommitment(header, fileKey) {
  if (!(fileKey instanceof Uint8Array) || fileKey.length !== 32) {
    throw new SealError("wrong_key", "a file key is 32 bytes");
  }
  const expected = b64uDecode(header.commit);
  if (!expected || !equalBytes(await commitment(fileKey, b64uDecode(header.nonce)), expected)) {
    throw new SealError("wrong_key", "this file key does not match the envelope's commitment");
  }
}

/** Unwrap the 32-byte file key with the bidder's private key (extractable ECDH P-256).
 *  Throws SealError "wrong_key" for any other key, tender or bidder. */
export async function unwrapFileKey(headerOrBytes, privateKey) {
  const header = headerOrBytes instanceof Uint8Array ? parseHeader(headerOrBytes)
    : headerOrBytes;
  checkHeader(header);
  let publicRaw;
  try {
    publicRaw = await publicOf(privateKey);
  } catch (err) {
    throw new SealError("wrong_key", `the private key cannot be used: ${err.message}`);
  }
  if ((await fingerprint(publicRaw)) !== header.recipient) {
    throw new SealError("wrong_key", "this envelope is sealed to another key");
  }
  let fileKey;
  try {
    fileKey = await open(privateKey, b64uDecode(header.enc), hpkeInfo(header.tender,
      header.bidder), new Uint8Array(0), b64uDecode(header.wrapped), { pkR: publicRaw });
  } catch (err) {
    if (!(err instanceof HpkeError)) throw err;
    throw new SealError("wrong_key", "the file key does not unwrap with this key");
  }
  await checkCommitment(header, fileKey);
  return fileKey;
}

// ---- sealing ------------------------------------------------------------------------------

function randomOr(given, length, what) {
  if (given === undefined) return crypto.getRandomValues(new Uint8Array(length));
  if (!(given instanceof Uint8Array) || given.length !== length) {
    throw new SealError("bad_input", `${what} must be ${length} bytes`);
  }
  return given;
}

/**
 * Prepare the envelope of one bid. Nothing is read or encrypted yet beyond the header;
 * `chunks()` yields the whole envelope piece by piece, `sealedRange(offset, length)` any
 * part of it again (same bytes every time). `fileKey`, `nonce` and `ikmE` fix the random
 * parts, for reproducible test vectors only.
 */
export async function createSealer({ publicRaw, tender, bidder, summary, document, fileKey,
  nonce, ikmE } = {}) {
  if (typeof tender !== "string" || !ID.test(tender)) {
    throw new SealError("bad_id", "the tender id is 1-64 letters, digits or _.-");
  }
  if (typeof bidder !== "string" || !ID.test(bidder)) {
    throw new SealError("bad_id", "the bidder id is 1-64 letters, digits or _.-");
  }
  const doc = document instanceof Uint8Array ? new Blob([document]) : document;
  if (!(doc instanceof Blob)) throw new SealError("bad_document", "the document must be a file");
  const summaryRaw = summaryBytes(summary);
  const lead = concat(i2osp(summaryRaw.length, 4), summaryRaw);
  const size = lead.length + doc.size;
  if (size > MAX_SIZE) throw new SealError("too_large", "the bid file is larger than 1 TiB");
  try {
    await importPublic(publicRaw);
  } catch {
    throw new SealError("bad_public_key", "the public key is not a P-256 point");
  }
  const key = randomOr(fileKey, 32, "fileKey");
  const prefix = randomOr(nonce, 7, "nonce");
  const wrapped = await seal(publicRaw, hpkeInfo(tender, bidder), new Uint8Array(0), key,
    { ikmE });
  const headerObject = {
    bidder, chunk: CHUNK, commit: b64uEncode(await commitment(key, prefix)),
    enc: b64uEncode(wrapped.enc), nonce: b64uEncode(prefix),
    recipient: await fingerprint(publicRaw), size, tender, v: VERSION,
    wrapped: b64uEncode(wrapped.ct),
  };
  const headerRaw = utf8.encode(headerJson(headerObject));
  const header = concat(MAGIC, i2osp(headerRaw.length, 4), headerRaw);
  const aad = await sha256(header);
  const aes = await contentKey(key);
  const count = chunkCount(size);
  const length = header.length + size + TAG * count;
  const cache = new Map(); // the two chunks read last: uploads read across chunk borders

  async function plaintext(start, end) {
    const parts = [];
    if (start < lead.length) parts.push(lead.subarray(start, Math.min(end, lead.length)));
    if (end > lead.length) {
      const from = Math.max(start - lead.length, 0);
      parts.push(new Uint8Array(await doc.slice(from, end - lead.length).arrayBuffer()));
    }
    return parts.length === 1 ? parts[0] : concat(...parts);
  }

  async function encryptChunk(index) {
    const start = index * CHUNK;
    const plain = await plaintext(start, Math.min(start + CHUNK, size));
    const iv = chunkNonce(prefix, index, index === count - 1);
    return new Uint8Array(await subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad },
      aes, plain));
  }

  function chunk(index) {
    let pending = cache.get(index);
    if (!pending) {
      pending = encryptChunk(index);
      cache.set(index, pending);
      pending.catch(() => cache.delete(index));
      if (cache.size > 2) cache.delete(cache.keys().next().value);
    }
    return pending;
  }

  async function sealedRange(offset, want) {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(want) || offset < 0 || want < 0
        || offset > length) {
      throw new SealError("bad_range", `no bytes at ${offset} in an envelope of ${length}`);
    }
    const end = Math.min(offset + want, length);
    const out = new Uint8Array(end - offset);
    if (offset < header.length) out.set(header.subarray(offset, Math.min(end, header.length)));
    const stride = CHUNK + TAG;
    for (let at = Math.max(offset, header.length); at < end;) {
      const index = Math.floor((at - header.length) / stride);
      const base = header.length + index * stride;
      const bytes = await chunk(index);
      const piece = bytes.subarray(at - base, Math.min(end - base, bytes.length));
      out.set(piece, at - offset);
      at += piece.length;
    }
    return out;
  }

  async function* chunks() {
    yield header;
    for (let i = 0; i < count; i++) yield await encryptChunk(i);
  }

  return { header, headerObject, length, size, sealedRange, chunks };
}

// ---- opening (self-check; small envelopes) ----------------------------------------------

/** Decrypt a whole envelope held in memory: {header, summary, summaryBytes, document}. */
export async function openEnvelope(bytes, fileKey) {
  const { header, preamble } = readPreamble(bytes);
  const count = chunkCount(header.size);
  if (bytes.length !== preamble.length + header.size + TAG * count) {
    throw new SealError("bad_length", "the envelope's length does not match its header");
  }
  await checkCommitment(header, fileKey);
  const aes = await contentKey(fileKey);
  const aad = await sha256(preamble);
  const prefix = b64uDecode(header.nonce);
  const plain = new Uint8Array(header.size);
  for (let i = 0, at = preamble.length; i < count; i++) {
    const ctLength = Math.min(CHUNK, header.size - i * CHUNK) + TAG;
    try {
      plain.set(new Uint8Array(await subtle.decrypt(
        { name: "AES-GCM", iv: chunkNonce(prefix, i, i === count - 1), additionalData: aad },
        aes, bytes.subarray(at, at + ctLength))), i * CHUNK);
    } catch {
      throw new SealError("bad_chunk", `chunk ${i} of the envelope fails authentication`);
    }
    at += ctLength;
  }
  if (plain.length < 4) throw badSummary("the plaintext is too short");
  const slen = u32(plain, 0);
  if (slen < 2 || slen > MAX_HEADER || 4 + slen > plain.length) throw badSummary("length");
  const raw = plain.subarray(4, 4 + slen);
  let summary;
  let text;
  try {
    text = strictUtf8.decode(raw);
    summary = JSON.parse(text);
  } catch {
    throw badSummary("not JSON");
  }
  summaryBytes(summary);
  const problem = strictJsonProblem(text, summary);
  if (problem) throw badSummary(problem);
  return { header, summary, summaryBytes: raw, document: plain.subarray(4 + slen) };
}
