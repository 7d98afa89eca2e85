import { z } from "zod";
import { ConcurrencyLimitStrategy } from "@spindle/worker-sdk";
import { spindle } from "./spindle";

/** Waits `ms`, or until the abort signal fires (a cancel), whichever comes first. */
const wait = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

/** At most 2 runs per group at once; groups take turns. */
export const concurrencyRr = spindle.workflow<{ group: string; ms?: number }>({
  name: "concurrency-rr",
  input: z.object({ group: z.string(), ms: z.number().int().nonnegative().optional() }),
  concurrency: { expression: "input.group", maxRuns: 2, limitStrategy: ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN },
});
concurrencyRr.task({
  name: "concurrency-rr",
  fn: async (input, ctx) => {
    const startedAt = Date.now();
    await wait(input.ms ?? 1000, ctx.abortSignal);
    return { group: input.group, startedAt, endedAt: Date.now() };
  },
});

const group = z.object({ group: z.string() });

/** One run per group: a new run cancels the one in progress. */
export const concurrencyCancelInProgress = spindle.task({
  name: "concurrency-cancel-in-progress",
  input: group,
  concurrency: { expression: "input.group", maxRuns: 1, limitStrategy: ConcurrencyLimitStrategy.CANCEL_IN_PROGRESS },
  fn: async (_input, ctx) => {
    await wait(3000, ctx.abortSignal);
    return { done: true };
  },
});

/** One run per group: a run that finds its group busy is cancelled. */
export const concurrencyCancelNewest = spindle.task({
  name: "concurrency-cancel-newest",
  input: group,
  concurrency: { expression: "input.group", maxRuns: 1, limitStrategy: ConcurrencyLimitStrategy.CANCEL_NEWEST },
  fn: async (_input, ctx) => {
    await wait(3000, ctx.abortSignal);
    return { done: true };
  },
});

/** Up to 3 runs per group, and 1 per user: every key must admit a run. */
export const concurrencyMultipleKeys = spindle.task({
  name: "concurrency-multiple-keys",
  input: z.object({ group: z.string(), user: z.string() }),
  concurrency: [
    { expression: "input.group", maxRuns: 3, limitStrategy: ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN },
    { expression: "input.user", maxRuns: 1, limitStrategy: ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN },
  ],
  fn: async (input, ctx) => {
    const startedAt = Date.now();
    await wait(500, ctx.abortSignal);
    return { group: input.group, user: input.user, startedAt, endedAt: Date.now() };
  },
});

/** At most 2 starts per second per user. */
export const rateLimit = spindle.task({
  name: "rate-limit",
  input: z.object({ userId: z.string() }),
  rateLimits: [{ dynamicKey: "input.userId", units: 1, limit: 2, duration: "second" }],
  fn: (input) => ({ userId: input.userId, startedAt: Date.now() }),
});

/** One unit of the static limit `external-api` (define it with PUT /api/v1/rate-limits/external-api). */
export const rateLimitStatic = spindle.task({
  name: "rate-limit-static",
  rateLimits: [{ staticKey: "external-api", units: 1 }],
  fn: () => ({ startedAt: Date.now() }),
});

/** Takes two of the worker's slots. */
export const slotCost = spindle.task({
  name: "slot-cost",
  slotCost: 2,
  fn: async (_input: unknown, ctx) => {
    const startedAt = Date.now();
    await wait(500, ctx.abortSignal);
    return { startedAt, endedAt: Date.now() };
  },
});
