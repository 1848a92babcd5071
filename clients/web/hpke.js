// HPKE (RFC 9180) base mode on WebCrypto: DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-GCM.
// Single-shot Seal/Open (sequence number 0), which is all a sealed bid needs: it wraps one
// 32-byte file key. The AEAD is a parameter so the RFC's own AES-128-GCM vectors can check
// this code; bid envelopes use AES-256-GCM (id 0x0002).

const subtle = globalThis.crypto.subtle;
const utf8 = new TextEncoder();

const KEM_ID = 0x0010; // DHKEM(P-256, HKDF-SHA256)
const KDF_ID = 0x0001; // HKDF-SHA256
const NH = 32; // HKDF-SHA256 output
const NSECRET = 32;
const NPK = 65; // SEC1 uncompressed point
const NN = 12;
const MODE_BASE = 0x00;
// P-256 group order: DeriveKeyPair rejects candidates at or above it.
const ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

export const AEADS = Object.freeze({
  aes128gcm: { id: 0x0001, nk: 16 },
  aes256gcm: { id: 0x0002, nk: 32 },
});

/** A refusal from HPKE: `.code` is "bad_public_key", "bad_private_key", "bad_enc",
 *  "bad_input" or "open_failed". */
export class HpkeError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "HpkeError";
    this.code = code;
  }
}

// ---- bytes -----------------------------------------------------------------------------

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function i2osp(value, length) {
  const out = new Uint8Array(length);
  let v = value;
  for (let i = length - 1; i >= 0; i--) {
    out[i] = v & 0xff;
    v = Math.floor(v / 256);
  }
  return out;
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function fromHex(text) {
  if (text.length % 2 || /[^0-9a-fA-F]/.test(text)) throw new HpkeError("bad_input", "not hex");
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function asBytes(value, what) {
  if (value instanceof Uint8Array) return value;
  if (typeof value === "string") return utf8.encode(value);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw new HpkeError("bad_input", `${what} must be bytes (Uint8Array) or a string`);
}

// ---- HKDF with HPKE labels (RFC 9180 §4) ------------------------------------------------

async function hmac(key, data) {
  // An empty HKDF salt means HashLen zero bytes (RFC 5869 §2.2); WebCrypto refuses an
  // empty HMAC key, and HMAC pads keys with zeros anyway, so both give the same MAC.
  const raw = key.length ? key : new Uint8Array(NH);
  const k = await subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false,
    ["sign"]);
  return new Uint8Array(await subtle.sign("HMAC", k, data));
}

async function expand(prk, info, length) {
  const out = new Uint8Array(length);
  let block = new Uint8Array(0);
  for (let i = 1, at = 0; at < length; i++) {
    block = await hmac(prk, concat(block, info, Uint8Array.of(i)));
    out.set(block.subarray(0, Math.min(block.length, length - at)), at);
    at += block.length;
  }
  return out;
}

const HPKE_V1 = utf8.encode("HPKE-v1");

function labeledExtract(suite, salt, label, ikm) {
  return hmac(salt, concat(HPKE_V1, suite, utf8.encode(label), ikm));
}

function labeledExpand(suite, prk, label, info, length) {
  return expand(prk, concat(i2osp(length, 2), HPKE_V1, suite, utf8.encode(label), info), length);
}

const KEM_SUITE = concat(utf8.encode("KEM"), i2osp(KEM_ID, 2));

function hpkeSuite(aead) {
  return concat(utf8.encode("HPKE"), i2osp(KEM_ID, 2), i2osp(KDF_ID, 2), i2osp(aead.id, 2));
}

function aeadOf(name) {
  const aead = AEADS[name];
  if (!aead) throw new HpkeError("bad_input", `unknown AEAD ${name}`);
  return aead;
}

// ---- DHKEM(P-256, HKDF-SHA256) (RFC 9180 §4.1, §7.1) ------------------------------------

const PKCS8_P256_PREFIX = Uint8Array.of(
  0x30, 0x41, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02,
  0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x27, 0x30, 0x25,
  0x02, 0x01, 0x01, 0x04, 0x20,
);

/** Import a raw 32-byte P-256 scalar as an ECDH private CryptoKey (extractable, so its
 *  public key can be read back). */
export async function importPrivateScalar(scalar) {
  if (!(scalar instanceof Uint8Array) || scalar.length !== 32) {
    throw new HpkeError("bad_private_key", "a P-256 private key is 32 bytes");
  }
  try {
    return await subtle.importKey("pkcs8", concat(PKCS8_P256_PREFIX, scalar),
      { name: "ECDH", namedCurve: "P-256" }, true, ["deriveBits"]);
  } catch {
    throw new HpkeError("bad_private_key", "not a valid P-256 private key");
  }
}

function b64uToBytes(text) {
  const bin = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** The 65-byte SEC1 uncompressed public key of an extractable ECDH P-256 private key. */
export async function publicOf(privateKey) {
  let jwk;
  try {
    jwk = await subtle.exportKey("jwk", privateKey);
  } catch {
    throw new HpkeError("bad_private_key", "the private key cannot be read (not extractable)");
  }
  if (jwk.crv !== "P-256") throw new HpkeError("bad_private_key", "not a P-256 key");
  return concat(Uint8Array.of(4), b64uToBytes(jwk.x), b64uToBytes(jwk.y));
}

export async function importPublic(raw) {
  if (!(raw instanceof Uint8Array) || raw.length !== NPK || raw[0] !== 4) {
    throw new HpkeError("bad_public_key", "a P-256 public key is a 65-byte uncompressed point");
  }
  try {
    return await subtle.importKey("raw", raw, { name: "ECDH", namedCurve: "P-256" }, true, []);
  } catch {
    throw new HpkeError("bad_public_key", "the public key is not a P-256 point");
  }
}

/** DeriveKeyPair(ikm) for P-256 (RFC 9180 §7.1.3): rejection sampling on the scalar. */
export async function deriveKeyPair(ikm) {
  const prk = await labeledExtract(KEM_SUITE, new Uint8Array(0), "dkp_prk", ikm);
  for (let counter = 0; counter < 256; counter++) {
    const bytes = await labeledExpand(KEM_SUITE, prk, "candidate", Uint8Array.of(counter), 32);
    const sk = BigInt(`0x${toHex(bytes)}`);
    if (sk !== 0n && sk < ORDER) {
      const privateKey = await importPrivateScalar(bytes);
      return { privateKey, publicRaw: await publicOf(privateKey) };
    }
  }
  throw new HpkeError("bad_input", "DeriveKeyPair found no key");
}

async function dh(privateKey, publicKey) {
  return new Uint8Array(await subtle.deriveBits({ name: "ECDH", public: publicKey },
    privateKey, 256));
}

async function extractAndExpand(dhBytes, kemContext) {
  const prk = await labeledExtract(KEM_SUITE, new Uint8Array(0), "eae_prk", dhBytes);
  return labeledExpand(KEM_SUITE, prk, "shared_secret", kemContext, NSECRET);
}

async function encap(pkRm, ikmE) {
  const pkR = await importPublic(pkRm);
  let skE;
  let enc;
  if (ikmE) {
    ({ privateKey: skE, publicRaw: enc } = await deriveKeyPair(asBytes(ikmE, "ikmE")));
  } else {
    const pair = await subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, false,
      ["deriveBits"]);
    skE = pair.privateKey;
    enc = new Uint8Array(await subtle.exportKey("raw", pair.publicKey));
  }
  const sharedSecret = await extractAndExpand(await dh(skE, pkR), concat(enc, pkRm));
  return { sharedSecret, enc };
}

async function decap(enc, skR, pkRm) {
  let pkE;
  try {
    pkE = await importPublic(enc);
  } catch {
    throw new HpkeError("bad_enc", "the encapsulated key is not a P-256 point");
  }
  return extractAndExpand(await dh(skR, pkE), concat(enc, pkRm));
}

// ---- key schedule, Seal, Open (RFC 9180 §5) --------------------------------------------

async function keySchedule(aead, sharedSecret, info) {
  const suite = hpkeSuite(aead);
  const empty = new Uint8Array(0);
  const pskIdHash = await labeledExtract(suite, empty, "psk_id_hash", empty);
  const infoHash = await labeledExtract(suite, empty, "info_hash", info);
  const context = concat(Uint8Array.of(MODE_BASE), pskIdHash, infoHash);
  const secret = await labeledExtract(suite, sharedSecret, "secret", empty);
  const key = await labeledExpand(suite, secret, "key", context, aead.nk);
  // seq 0: the nonce is base_nonce itself.
  const nonce = await labeledExpand(suite, secret, "base_nonce", context, NN);
  const cryptoKey = await subtle.importKey("raw", key, "AES-GCM", false, ["encrypt", "decrypt"]);
  return { key: cryptoKey, nonce };
}

/**
 * SealBase(pkR, info, aad, pt) with sequence number 0.
 * pkR: 65-byte uncompressed P-256 point; info, aad, pt: Uint8Array (or string, as UTF-8).
 * Options: aead "aes256gcm" (default) or "aes128gcm"; ikmE: fixed ephemeral seed, for test
 * vectors only. Returns {enc (65 bytes), ct}.
 */
export async function seal(pkR, info, aad, pt, { aead = "aes256gcm", ikmE } = {}) {
  const suite = aeadOf(aead);
  const { sharedSecret, enc } = await encap(pkR, ikmE);
  const ctx = await keySchedule(suite, sharedSecret, asBytes(info, "info"));
  const ct = new Uint8Array(await subtle.encrypt(
    { name: "AES-GCM", iv: ctx.nonce, additionalData: asBytes(aad, "aad") }, ctx.key,
    asBytes(pt, "pt")));
  return { enc, ct };
}

/**
 * OpenBase(enc, skR, info, aad, ct) with sequence number 0.
 * skR: ECDH P-256 private CryptoKey (extractable, unless opts.pkR gives its public key).
 * Throws HpkeError "open_failed" when the ciphertext does not authenticate.
 */
export async function open(skR, enc, info, aad, ct, { aead = "aes256gcm", pkR } = {}) {
  const suite = aeadOf(aead);
  const pkRm = pkR ?? await publicOf(skR);
  const sharedSecret = await decap(asBytes(enc, "enc"), skR, pkRm);
  const ctx = await keySchedule(suite, sharedSecret, asBytes(info, "info"));
  try {
    return new Uint8Array(await subtle.decrypt(
      { name: "AES-GCM", iv: ctx.nonce, additionalData: asBytes(aad, "aad") }, ctx.key,
      asBytes(ct, "ct")));
  } catch {
    throw new HpkeError("open_failed", "the ciphertext does not open with this key");
  }
}
