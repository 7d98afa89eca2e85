import type {
  ConcurrencyData,
  ConcurrencyLimitStrategyName,
  RateLimitData,
  RateLimitDuration,
  TaskDefinition,
  WorkflowDefinition,
} from "@spindle/worker-sdk/protocol";
import { evaluateValue } from "./cel";
import { fnv1a } from "./ids";

/**
 * Flow control, as one attempt needs it: the concurrency keys it must hold and the rate-limit units
 * it must take before it starts. Pure: evaluated by the run from its definition, input and metadata
 * (the same every time, so the run can name what to release without storing it), enforced by the
 * `FlowLimits` objects that hold each key, and taken all at once by the task queue that admits it.
 */

/** Limits live in this many objects per tenant, by hash of the key: no one object is on every task's path. */
export const FLOW_SHARDS = 32;
export const MAX_FLOW_KEY_LENGTH = 256;

export const DURATION_MS: Record<RateLimitDuration, number> = {
  second: 1_000,
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000,
  week: 7 * 86_400_000,
  month: 30 * 86_400_000,
  year: 365 * 86_400_000,
};

export interface ConcurrencyNeed {
  kind: "concurrency";
  /** The key's identity: workflow, declaring task (empty for the workflow), declaration index, value. */
  id: string;
  key: string;
  workflow: string;
  task: string | null;
  /** The run (workflow-level key) or the attempt (`runId/task/attempt`) that holds it. */
  holder: string;
  maxRuns: number;
  strategy: ConcurrencyLimitStrategyName;
}

export interface RateNeed {
  kind: "rate";
  key: string;
  /** The attempt that takes the units: taking them again for it takes nothing more. */
  holder: string;
  units: number;
  /** A dynamic key's own limit; a static key's is defined with `PUT /api/v1/rate-limits/{key}`. */
  dynamic: { limit: number; duration: RateLimitDuration } | null;
}

export type Need = ConcurrencyNeed | RateNeed;

export type FlowResolution = { needs: Need[]; group: string | null } | { error: string };

export const flowShardOf = (need: Need): number => fnv1a(needId(need)) % FLOW_SHARDS;
export const needId = (need: Need): string => (need.kind === "concurrency" ? need.id : `rate\u0000${need.key}`);
export const flowLimitsName = (tenant: string, shard: number): string => `flow:${tenant}:${shard}`;

interface Scope {
  workflow: WorkflowDefinition;
  task: TaskDefinition;
  runId: string;
  attempt: number;
  input: unknown;
  metadata: Record<string, string>;
}

/**
 * What an attempt needs. `group` is the key its task queue takes turns by (its first round-robin
 * key). An expression that fails, or a dynamic `units` above its `limit`, is an error: the task can
 * never run.
 */
export function resolveFlow(scope: Scope): FlowResolution {
  const context = { input: scope.input ?? null, additional_metadata: scope.metadata };
  const needs: Need[] = [];
  try {
    const taskHolder = `${scope.runId}/${scope.task.name}/${scope.attempt}`;
    const declared: [ConcurrencyData, string | null, number][] = [
      ...(scope.workflow.concurrency ?? []).map((c, i): [ConcurrencyData, string | null, number] => [c, null, i]),
      ...(scope.task.concurrency ?? []).map((c, i): [ConcurrencyData, string | null, number] => [c, scope.task.name, i]),
    ];
    for (const [c, task, i] of declared) {
      const where = `${task === null ? "workflow" : `task '${task}'`} concurrency[${i}]`;
      const key = keyValue(c.expression, context, `${where}.expression`);
      const maxRuns = count(c.maxRuns, context, `${where}.maxRuns`);
      needs.push({
        kind: "concurrency",
        id: `${scope.workflow.name}\u0000${task ?? ""}\u0000${i}\u0000${key}`,
        key,
        workflow: scope.workflow.name,
        task,
        holder: task === null ? scope.runId : taskHolder,
        maxRuns,
        strategy: c.limitStrategy,
      });
    }
    for (const [i, r] of (scope.task.rateLimits ?? []).entries()) needs.push(rateNeed(r, context, taskHolder, `task '${scope.task.name}' rateLimits[${i}]`));
  } catch (err) {
    if (err instanceof FlowError) return { error: err.message };
    throw err;
  }
  const group = needs.find((n): n is ConcurrencyNeed => n.kind === "concurrency" && n.strategy === "GROUP_ROUND_ROBIN")?.id ?? null;
  return { needs, group };
}

class FlowError extends Error {}

function rateNeed(r: RateLimitData, context: Record<string, unknown>, holder: string, where: string): RateNeed {
  const units = count(r.units, context, `${where}.units`);
  if ("staticKey" in r) return { kind: "rate", key: r.staticKey, holder, units, dynamic: null };
  const key = keyValue(r.dynamicKey, context, `${where}.dynamicKey`);
  const limit = count(r.limit, context, `${where}.limit`);
  if (units > limit) throw new FlowError(`${where}: ${units} units can never fit in rate limit '${key}' of ${limit} per ${r.duration}`);
  return { kind: "rate", key, holder, units, dynamic: { limit, duration: r.duration } };
}

function keyValue(expression: string, context: Record<string, unknown>, where: string): string {
  const result = evaluateValue(expression, context);
  if ("error" in result) throw new FlowError(`${where}: ${JSON.stringify(expression)} failed: ${result.error}`);
  const v = result.value;
  if (typeof v !== "string" && typeof v !== "number" && typeof v !== "bigint" && typeof v !== "boolean") {
    throw new FlowError(`${where}: ${JSON.stringify(expression)} gave ${v === null ? "null" : typeof v}, not a string`);
  }
  const key = String(v);
  if (key.length === 0 || key.length > MAX_FLOW_KEY_LENGTH) {
    throw new FlowError(`${where}: ${JSON.stringify(expression)} gave a key of ${key.length} characters; a key has 1 to ${MAX_FLOW_KEY_LENGTH}`);
  }
  return key;
}

function count(value: number | string, context: Record<string, unknown>, where: string): number {
  if (typeof value === "number") return value;
  const result = evaluateValue(value, context);
  if ("error" in result) throw new FlowError(`${where}: ${JSON.stringify(value)} failed: ${result.error}`);
  const n = typeof result.value === "bigint" ? Number(result.value) : result.value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1) {
    throw new FlowError(`${where}: ${JSON.stringify(value)} gave ${JSON.stringify(typeof n === "number" ? n : String(n))}, not an integer of at least 1`);
  }
  return n;
}

/** What an attempt holds until it ends, by flow object: its task-level keys (rate units are spent, not held). */
export function heldBy(needs: Need[], workflowLevel: boolean): Need[] {
  return needs.filter((n) => n.kind === "concurrency" && (n.task === null) === workflowLevel);
}

/** `rate limit 'user:42' exhausted (10/minute)` and friends: the reasons a queued task shows. */
export const reasons = {
  concurrency: (n: { key: string; maxRuns: number; strategy: string }, running: number) =>
    `concurrency key '${n.key}' at ${running}/${n.maxRuns} (${n.strategy})`,
  rateExhausted: (key: string, limit: number, duration: string) => `rate limit '${key}' exhausted (${limit}/${duration})`,
  rateUndefined: (key: string) => `rate limit '${key}' is not defined (PUT /api/v1/rate-limits/${encodeURIComponent(key)})`,
  rateTooBig: (key: string, units: number, limit: number, duration: string) =>
    `rate limit '${key}' (${limit}/${duration}) can never give the ${units} units this task takes`,
};
