import { parse } from "@marcbachmann/cel-js";
import { FlowDeclarationError } from "./errors.js";
import {
  CONCURRENCY_LIMIT_STRATEGIES,
  RATE_LIMIT_DURATIONS,
  type ConcurrencyData,
  type ConcurrencyLimitStrategyName,
  type RateLimitData,
  type RateLimitDuration,
} from "./protocol.js";

/**
 * What a concurrency key does with a run that finds it full:
 * - `GROUP_ROUND_ROBIN`: it waits; keys take turns, then first come, first served within a key.
 * - `CANCEL_IN_PROGRESS`: the newest is admitted once the oldest running one of its key, cancelled, ends.
 * - `CANCEL_NEWEST`: it is cancelled at once.
 * - `CANCEL_QUEUED_EXCEPT_NEWEST`: only the newest waits; older waiting ones are cancelled (a debounce).
 */
export const ConcurrencyLimitStrategy = {
  GROUP_ROUND_ROBIN: "GROUP_ROUND_ROBIN",
  CANCEL_IN_PROGRESS: "CANCEL_IN_PROGRESS",
  CANCEL_NEWEST: "CANCEL_NEWEST",
  CANCEL_QUEUED_EXCEPT_NEWEST: "CANCEL_QUEUED_EXCEPT_NEWEST",
} as const satisfies Record<ConcurrencyLimitStrategyName, ConcurrencyLimitStrategyName>;
export type ConcurrencyLimitStrategy = ConcurrencyLimitStrategyName;

/**
 * A concurrency key: `expression` is CEL over `input` and `additional_metadata` giving the group key
 * (`"'global'"` caps everything); `maxRuns` is a number or CEL (`"input.tier == 'pro' ? 10 : 1"`).
 */
export interface ConcurrencyOptions {
  expression: string;
  maxRuns: number | string;
  /** Default GROUP_ROUND_ROBIN. */
  limitStrategy?: ConcurrencyLimitStrategy;
}

/** `5` is short for `{ expression: "'global'", maxRuns: 5, limitStrategy: GROUP_ROUND_ROBIN }`. */
export type ConcurrencyDeclaration = number | ConcurrencyOptions | ConcurrencyOptions[];

/**
 * A rate limit an attempt takes `units` of (default 1) before it starts: a static key defined with
 * `spindle.rateLimits.upsert`, or a dynamic key (CEL) with its own `limit` per `duration`.
 */
export type RateLimitDeclaration =
  | { staticKey: string; units?: number | string }
  | { dynamicKey: string; units?: number | string; limit: number | string; duration: RateLimitDuration };

/** The flow-control options of a task or workflow. */
export interface FlowOptions {
  concurrency?: ConcurrencyDeclaration;
  rateLimits?: RateLimitDeclaration[];
}

const parsed = new Set<string>();

function cel(expression: unknown, path: string): string {
  if (typeof expression !== "string" || expression.trim() === "") throw new FlowDeclarationError(path, "must be a non-empty CEL expression");
  if (parsed.has(expression)) return expression;
  try {
    parse(expression);
  } catch (err) {
    throw new FlowDeclarationError(path, `CEL expression ${JSON.stringify(expression)} does not parse: ${(err as Error).message.split("\n")[0]}`);
  }
  parsed.add(expression);
  return expression;
}

/** A positive integer, or a CEL expression giving one when the task is queued. */
function countOrCel(value: unknown, path: string, what: string): number | string {
  if (typeof value === "string") return cel(value, path);
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new FlowDeclarationError(path, `${what} must be an integer of at least 1 or a CEL expression, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Checks and normalises `concurrency`; `path` names the declaration (`task 'x'.concurrency`). */
export function concurrencyData(declaration: ConcurrencyDeclaration | undefined, path: string): ConcurrencyData[] | undefined {
  if (declaration === undefined) return undefined;
  if (typeof declaration === "number") {
    countOrCel(declaration, path, "concurrency");
    return [{ expression: "'global'", maxRuns: declaration, limitStrategy: "GROUP_ROUND_ROBIN" }];
  }
  const list = Array.isArray(declaration) ? declaration : [declaration];
  if (list.length === 0) throw new FlowDeclarationError(path, "an empty list declares no key; leave concurrency out instead");
  return list.map((c, i) => {
    const at = Array.isArray(declaration) ? `${path}[${i}]` : path;
    if (typeof c !== "object" || c === null) throw new FlowDeclarationError(at, "must be { expression, maxRuns, limitStrategy }");
    const strategy = c.limitStrategy ?? "GROUP_ROUND_ROBIN";
    if (!(CONCURRENCY_LIMIT_STRATEGIES as readonly string[]).includes(strategy)) {
      throw new FlowDeclarationError(`${at}.limitStrategy`, `unknown strategy ${JSON.stringify(strategy)}; one of ${CONCURRENCY_LIMIT_STRATEGIES.join(", ")}`);
    }
    return { expression: cel(c.expression, `${at}.expression`), maxRuns: countOrCel(c.maxRuns, `${at}.maxRuns`, "maxRuns"), limitStrategy: strategy };
  });
}

/** Checks and normalises `rateLimits`. */
export function rateLimitData(declaration: RateLimitDeclaration[] | undefined, path: string): RateLimitData[] | undefined {
  if (declaration === undefined) return undefined;
  if (!Array.isArray(declaration)) throw new FlowDeclarationError(path, "must be a list of { staticKey } or { dynamicKey, limit, duration }");
  return declaration.map((r, i) => {
    const at = `${path}[${i}]`;
    const units = countOrCel(r.units ?? 1, `${at}.units`, "units");
    if ("staticKey" in r && r.staticKey !== undefined) {
      if (typeof r.staticKey !== "string" || r.staticKey === "") throw new FlowDeclarationError(`${at}.staticKey`, "must be a non-empty string");
      return { staticKey: r.staticKey, units };
    }
    if (!("dynamicKey" in r)) throw new FlowDeclarationError(at, "needs a staticKey or a dynamicKey");
    const limit = countOrCel(r.limit, `${at}.limit`, "limit");
    if (!(RATE_LIMIT_DURATIONS as readonly string[]).includes(r.duration)) {
      throw new FlowDeclarationError(`${at}.duration`, `unknown duration ${JSON.stringify(r.duration)}; one of ${RATE_LIMIT_DURATIONS.join(", ")}`);
    }
    if (typeof units === "number" && typeof limit === "number" && units > limit) {
      throw new FlowDeclarationError(`${at}.units`, `${units} units can never fit in a limit of ${limit} per ${r.duration}`);
    }
    return { dynamicKey: cel(r.dynamicKey, `${at}.dynamicKey`), units, limit, duration: r.duration };
  });
}

export function slotCostOf(value: unknown, path: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new FlowDeclarationError(path, `slotCost must be an integer of at least 1, got ${JSON.stringify(value)}`);
  }
  return value;
}
