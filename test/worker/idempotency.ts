import { z } from "zod";
import { count, spindle } from "./workflows";

/** Workflows of the idempotency tests: each counts its executions in `effects`, by the test's tag. */

export const idemCount = spindle.task({
  name: "t-idem-count",
  input: z.object({ tag: z.string(), n: z.number() }),
  fn: (input) => ({ n: input.n, ran: count(`t-idem-count:${input.tag}:${input.n}`) }),
});

/** Waits for two events of one key, one after the other, and returns both payloads. */
export const idemTwice = spindle.durableTask({
  name: "d-idem-twice",
  executionTimeout: "30s",
  input: z.object({ key: z.string() }),
  fn: async (input, ctx) => {
    const runId = ctx.workflowRunId();
    const first = await ctx.waitForEvent(input.key);
    await ctx.memo(() => count(`d-idem-twice:${runId}:after-first`));
    const second = await ctx.waitForEvent(input.key);
    await ctx.memo(async () => count(`d-idem-twice:${runId}:after-second`));
    return { first, second };
  },
});

export const idempotencyWorkflows = [idemCount, idemTwice];
