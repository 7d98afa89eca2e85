import { SpindleError } from "./errors";

/**
 * Size limits, enforced where data enters: a value over its limit is refused before anything is
 * stored, naming the field and the limit. They exist because of Cloudflare's own: a SQLite string,
 * BLOB or row holds at most 2 MB, and an RPC carries at most 32 MiB. Every row the engine writes
 * holds at most one payload (an input, one task's output, one child's result, one memo result, one
 * event's payload) beside small, bounded columns, so these limits keep every row under 2 MB.
 */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;
/** The run row holds the definition, the input and the metadata: their limits add up under 2 MB. */
export const MAX_PAYLOAD_BYTES_CEILING = 1024 * 1024;
/** Metadata rides in the same row as the input (and in every index entry and event): kept small. */
export const MAX_METADATA_BYTES = 64 * 1024;
/** A workflow's definition is one value in each run's row, read on every transition. */
export const MAX_DEFINITION_BYTES = 512 * 1024;
/** One spawn call starts at most this many children (their ids are one value in the event log). */
export const MAX_CHILDREN_PER_CALL = 10_000;
/**
 * What one assignment may carry in outputs and results. An assignment is one RPC (at most 32 MiB on
 * Cloudflare) holding the task's input, its parents' outputs (a role task: every task's) and, for a
 * durable task, its whole event log (memo results, children's outputs): held under this, with room
 * for the rest.
 */
export const MAX_ASSIGNMENT_PAYLOAD_BYTES = 24 * 1024 * 1024;

export interface Limits {
  maxPayloadBytes: number;
}

/** The limits an engine runs with: `SPINDLE_MAX_PAYLOAD_BYTES` may lower the payload limit, never raise it past the ceiling. */
export function limitsOf(env: { SPINDLE_MAX_PAYLOAD_BYTES?: string }): Limits {
  const configured = Number(env.SPINDLE_MAX_PAYLOAD_BYTES);
  const maxPayloadBytes =
    env.SPINDLE_MAX_PAYLOAD_BYTES && Number.isInteger(configured) && configured > 0 ? Math.min(configured, MAX_PAYLOAD_BYTES_CEILING) : DEFAULT_MAX_PAYLOAD_BYTES;
  return { maxPayloadBytes };
}

/** The size of a value as stored: the UTF-8 bytes of its JSON. */
export function jsonBytes(value: unknown): number {
  const json = JSON.stringify(value ?? null) ?? "null";
  return utf8Bytes(json);
}

export function utf8Bytes(s: string): number {
  return new TextEncoder().encode(s).byteLength;
}

export interface SizeProblem {
  path: string;
  message: string;
}

/** The problem with `value` at `path` if its JSON is over `limit` bytes. */
export function sizeProblem(path: string, value: unknown, limit: number): SizeProblem | null {
  if (value === undefined || value === null) return null;
  const bytes = jsonBytes(value);
  return bytes > limit ? { path, message: `is ${bytes} bytes; the limit is ${limit} bytes` } : null;
}

/** Throws `payload.too_large` (HTTP 413) naming every field over its limit. */
export function refuseOversized(problems: (SizeProblem | null)[]): void {
  const fields = problems.filter((p): p is SizeProblem => p !== null);
  if (fields.length === 0) return;
  throw new SpindleError("payload.too_large", fields.map((f) => `${f.path}: ${f.message}`).join("; "), { fields });
}
