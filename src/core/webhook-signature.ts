/**
 * Verifying a third party's webhook signature: HMAC-SHA256 over the raw body (or, timestamped,
 * over `<timestamp>.<body>` as Stripe signs), compared in constant time. Web Crypto only: runs in
 * workerd and in Node.
 */

export interface SignatureConfig {
  /** The header that carries the signature (`X-Hub-Signature-256`, `Stripe-Signature`). */
  header: string;
  algorithm: "hmac-sha256";
  encoding: "hex" | "base64";
  /** Stripped from the header before decoding (`sha256=` for GitHub). */
  prefix?: string;
  /**
   * Stripe style: the header is `t=<unix seconds>,v1=<signature>[,v1=...]`, the signed content is
   * `<t>.<raw body>`, and a timestamp further than `toleranceSeconds` from now is refused (a replay).
   */
  timestamped?: boolean;
  /** How old (or how far ahead) a timestamp may be; default 300 s. */
  toleranceSeconds?: number;
}

export const DEFAULT_SIGNATURE_TOLERANCE_SECONDS = 300;

export type Verdict = { ok: true } | { ok: false; reason: string };

const encoder = new TextEncoder();

export async function verifySignature(config: SignatureConfig, secret: string, rawBody: Uint8Array, headerValue: string | null, nowMs: number): Promise<Verdict> {
  if (!headerValue) return { ok: false, reason: `missing ${config.header} header` };
  let signed: Uint8Array = rawBody;
  let candidates: string[];
  if (config.timestamped) {
    const parts = headerValue.split(",").map((p) => p.trim());
    const t = parts.find((p) => p.startsWith("t="))?.slice(2);
    candidates = parts.filter((p) => p.startsWith("v1=")).map((p) => p.slice(3));
    if (!t || !/^\d{1,12}$/.test(t) || candidates.length === 0) return { ok: false, reason: `${config.header} must be t=<seconds>,v1=<signature>` };
    const tolerance = config.toleranceSeconds ?? DEFAULT_SIGNATURE_TOLERANCE_SECONDS;
    if (Math.abs(nowMs / 1000 - Number(t)) > tolerance) return { ok: false, reason: `the signature's timestamp is more than ${tolerance} s from now (a replay?)` };
    signed = concat(encoder.encode(`${t}.`), rawBody);
  } else {
    const value = headerValue.trim();
    if (config.prefix && !value.startsWith(config.prefix)) return { ok: false, reason: `${config.header} must start with '${config.prefix}'` };
    candidates = [config.prefix ? value.slice(config.prefix.length) : value];
  }
  const key = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const expected = new Uint8Array(await crypto.subtle.sign("HMAC", key, signed));
  let matched = false;
  for (const candidate of candidates) {
    const given = decode(candidate, config.encoding);
    // Every candidate is compared in full, whatever the others gave.
    if (given && constantTimeEqual(given, expected)) matched = true;
  }
  return matched ? { ok: true } : { ok: false, reason: "the signature does not match the body" };
}

/** Signs as a sender would: for tests and for documenting the exact format. */
export async function sign(config: SignatureConfig, secret: string, rawBody: string, timestampSeconds?: number): Promise<string> {
  const content = config.timestamped ? `${timestampSeconds}.${rawBody}` : rawBody;
  const key = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(content)));
  const encoded = config.encoding === "hex" ? [...mac].map((b) => b.toString(16).padStart(2, "0")).join("") : btoa(String.fromCharCode(...mac));
  return config.timestamped ? `t=${timestampSeconds},v1=${encoded}` : `${config.prefix ?? ""}${encoded}`;
}

/** Compares every byte whatever the first difference, so the time taken says nothing about where. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

function decode(text: string, encoding: "hex" | "base64"): Uint8Array | null {
  if (encoding === "hex") {
    if (!/^[0-9a-fA-F]*$/.test(text) || text.length % 2 !== 0) return null;
    const out = new Uint8Array(text.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(i * 2, i * 2 + 2), 16);
    return out;
  }
  try {
    const binary = atob(text);
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
