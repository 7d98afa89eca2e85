import { SpindleError } from "./errors";
import { fnv1a, sha256Hex } from "./ids";

/**
 * Idempotency keys: a client that retries a trigger or a push with the same `Idempotency-Key` gets
 * the first answer's id back instead of a second run or event. A key is bound, per tenant and per
 * kind of request, to the fingerprint of the request that first used it and to the id chosen for
 * it, for IDEMPOTENCY_TTL_MS.
 */
export const IDEMPOTENCY_TTL_MS = 24 * 3_600_000;
/** Keys are spread over this many objects per tenant (by a hash of kind and key). */
export const IDEMPOTENCY_SHARDS = 8;
export const MAX_IDEMPOTENCY_KEY_LENGTH = 256;

/** Which route a key belongs to: a run's key and an event's key never collide. */
export type IdempotencyScope = "run" | "event";

/** A key to reserve for `id`, unless the key already holds an id. */
export interface IdempotencyClaim {
  scope: IdempotencyScope;
  key: string;
  fingerprint: string;
  id: string;
}

/**
 * Either every claim holds (each key is bound to `id`: the claim's own if `existing` is false, the
 * first request's if true) or none was recorded, and `conflicts` lists the claims (by position)
 * whose key is bound to a different request.
 */
export type ReserveReply = { ok: true; ids: { id: string; existing: boolean }[] } | { ok: false; conflicts: number[] };

/** Checks a key's shape; `path` names where it came from (`header.Idempotency-Key`, `events[2].idempotencyKey`). */
export function checkIdempotencyKey(key: unknown, path: string): string {
  if (typeof key !== "string" || key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY_LENGTH || /[^\x20-\x7e]/.test(key)) {
    const message = `must be 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters`;
    throw new SpindleError("request.invalid", `${path}: ${message}`, { fields: [{ path, message }] });
  }
  return key;
}

export function idempotencyConflict(key: string, path: string): SpindleError {
  const message = `the idempotency key '${key}' was already used with a different request in the last 24 hours; send the same request again, or use a new key`;
  return new SpindleError("idempotency.conflict", message, { fields: [{ path, message: `key '${key}' is bound to a different request` }] });
}

/** The hash of a request as its key remembers it: the same JSON whatever the order of object keys. */
export function fingerprint(request: unknown): Promise<string> {
  return sha256Hex(canonicalJson(request));
}

/** JSON with object keys sorted at every level; `undefined` members are left out, as JSON.stringify does. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === "function") return canonicalJson(toJSON.call(value));
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? "null" : canonicalJson(v))).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

export function idempotencyShard(scope: IdempotencyScope, key: string): number {
  return fnv1a(`${scope}\u0000${key}`) % IDEMPOTENCY_SHARDS;
}
