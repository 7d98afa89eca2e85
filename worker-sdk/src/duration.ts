import type { Duration } from "./protocol.js";
import { SpindleError } from "./errors.js";

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PATTERN = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/;

/** `"500ms"`, `"10s"`, `"5m"`, `"1h"`, `"2d"` or a number of milliseconds → milliseconds. */
export function toMs(duration: Duration, field = "duration"): number {
  if (typeof duration === "number") {
    if (!Number.isFinite(duration) || duration < 0) throw invalid(field, duration);
    return Math.round(duration);
  }
  const match = PATTERN.exec(duration);
  if (!match) throw invalid(field, duration);
  return Math.round(Number(match[1]) * UNITS[match[2]!]!);
}

function invalid(field: string, value: unknown): SpindleError {
  return new SpindleError(
    "config.invalid",
    `${field}: ${JSON.stringify(value)} is not a duration; use milliseconds or a string like "10s", "5m", "1h"`,
    { fields: [{ path: field, message: "not a duration" }] },
  );
}
