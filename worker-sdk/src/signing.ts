/**
 * Signed HTTP between the engine and a worker served over HTTPS (`spindle.serve()`), both ways.
 * Each request carries a timestamp, a random nonce and an HMAC-SHA256 over `v1:<timestamp>:<nonce>:<body>`
 * with a key derived from the tenant's API token, plus the token's SHA-256 (which tenant's key).
 * The receiver recomputes it with WebCrypto's constant-time `verify`, refuses a timestamp more than
 * SIGNATURE_WINDOW_MS away from its clock, and refuses a nonce it has already accepted. Plain
 * WebCrypto: runs in Workers, Node 20+, Deno, Bun and browsers.
 */
export const SIGNATURE_WINDOW_MS = 5 * 60_000;
export const SIGNATURE_HEADERS = {
  timestamp: "x-spindle-timestamp",
  nonce: "x-spindle-nonce",
  signature: "x-spindle-signature",
  /** SHA-256 (hex) of the token whose derived key signed the request. */
  key: "x-spindle-key",
} as const;

const encoder = new TextEncoder();
const keys = new Map<string, Promise<CryptoKey>>();

/** The signing key is HMAC(token, "spindle-signing-v1"): the token itself never signs anything. */
function signingKey(token: string): Promise<CryptoKey> {
  let key = keys.get(token);
  if (!key) {
    key = (async () => {
      const root = await crypto.subtle.importKey("raw", encoder.encode(token), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
      const derived = await crypto.subtle.sign("HMAC", root, encoder.encode("spindle-signing-v1"));
      return crypto.subtle.importKey("raw", derived, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
    })();
    if (keys.size > 100) keys.clear();
    keys.set(token, key);
  }
  return key;
}

export async function tokenHash(token: string): Promise<string> {
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(token))));
}

const hex = (bytes: Uint8Array) => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");

function unhex(text: string): Uint8Array | null {
  if (!/^(?:[0-9a-f]{2})+$/.test(text)) return null;
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** The headers that sign `body`, sent with it. */
export async function signRequest(token: string, body: string, nowMs = Date.now()): Promise<Record<string, string>> {
  const timestamp = String(nowMs);
  const nonce = hex(crypto.getRandomValues(new Uint8Array(16)));
  const mac = await crypto.subtle.sign("HMAC", await signingKey(token), encoder.encode(`v1:${timestamp}:${nonce}:${body}`));
  return {
    [SIGNATURE_HEADERS.timestamp]: timestamp,
    [SIGNATURE_HEADERS.nonce]: nonce,
    [SIGNATURE_HEADERS.signature]: `v1=${hex(new Uint8Array(mac))}`,
    [SIGNATURE_HEADERS.key]: await tokenHash(token),
  };
}

/**
 * Nonces accepted within the window, so a captured request sent again is refused. Kept by the
 * receiving isolate: a replay that lands on another isolate of the same deployment is caught by
 * the window only (every signed operation is also idempotent on the engine's side).
 */
export class ReplayGuard {
  private readonly seen = new Map<string, number>();

  /** True the first time a nonce is offered within the window. */
  accept(nonce: string, timestampMs: number, nowMs: number): boolean {
    for (const [n, expires] of this.seen) {
      if (expires > nowMs) break; // insertion order is close to expiry order
      this.seen.delete(n);
    }
    if (this.seen.has(nonce)) return false;
    this.seen.set(nonce, timestampMs + SIGNATURE_WINDOW_MS);
    return true;
  }
}

export type Verification = { ok: true } | { ok: false; code: "signature.missing" | "signature.invalid" | "signature.expired" | "signature.replayed"; message: string };

/** Checks a signed request's headers against its body with `token`'s key. */
export async function verifyRequest(
  token: string,
  headers: { get(name: string): string | null },
  body: string,
  guard: ReplayGuard,
  nowMs = Date.now(),
): Promise<Verification> {
  const timestamp = headers.get(SIGNATURE_HEADERS.timestamp);
  const nonce = headers.get(SIGNATURE_HEADERS.nonce);
  const signature = headers.get(SIGNATURE_HEADERS.signature);
  if (!timestamp || !nonce || !signature) {
    return { ok: false, code: "signature.missing", message: "the request is not signed (x-spindle-timestamp, x-spindle-nonce, x-spindle-signature)" };
  }
  const mac = signature.startsWith("v1=") ? unhex(signature.slice(3)) : null;
  const at = Number(timestamp);
  if (!mac || !Number.isSafeInteger(at) || !/^[0-9a-f]{32}$/.test(nonce)) {
    return { ok: false, code: "signature.invalid", message: "the request's signature headers are malformed" };
  }
  const valid = await crypto.subtle.verify("HMAC", await signingKey(token), mac, encoder.encode(`v1:${timestamp}:${nonce}:${body}`));
  if (!valid) return { ok: false, code: "signature.invalid", message: "the request's signature does not match: the two sides hold different tokens" };
  if (Math.abs(nowMs - at) > SIGNATURE_WINDOW_MS) {
    return { ok: false, code: "signature.expired", message: `the request was signed ${Math.round((nowMs - at) / 1000)} s from now; the window is ${SIGNATURE_WINDOW_MS / 1000} s` };
  }
  if (!guard.accept(nonce, at, nowMs)) return { ok: false, code: "signature.replayed", message: "the request was already received once (replayed)" };
  return { ok: true };
}
