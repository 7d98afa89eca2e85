import { z } from "zod";
import { count, leaf, spindle } from "./workflows";

/**
 * Tasks for the liveness tests: each counts its executions in `effects` and can be held at a gate
 * the test opens, so a test can keep an execution running (or hanging, as if its runner had died).
 */

/** Tags whose held execution may go on. Plain values: a resolver cannot cross request contexts. */
export const gates = new Set<string>();
/** The order in which the tight-pool tasks below got to run. */
export const tightOrder: string[] = [];

/** Waits at the gate of `tag` (timers keep workerd from taking the wait for a hung promise). */
async function gate(tag: string): Promise<void> {
  const until = Date.now() + 120_000;
  while (!gates.has(tag) && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
}

/** Its first execution (or every one) waits at the gate when asked to; each says which one it was. */
export const gated = spindle.task({
  name: "t-gated",
  retries: 2,
  executionTimeout: "5m",
  input: z.object({ tag: z.string(), hold: z.boolean().optional(), holdEvery: z.boolean().optional() }),
  fn: async (input, ctx) => {
    const execution = count(`t-gated:${input.tag}`);
    if ((input.hold && execution === 1) || input.holdEvery) await gate(input.tag);
    ctx.logger.info(`execution ${execution}`);
    return { execution };
  },
});

/** A durable fan-out: spawns `n` leaves and sums their squares. */
export const lostSpawn = spindle.durableTask({
  name: "d-lost-spawn",
  executionTimeout: "5m",
  input: z.object({ n: z.number() }),
  fn: async (input, ctx) => {
    count(`d-lost-spawn:invoked:${ctx.workflowRunId()}`);
    const outs = await ctx.spawnChildren(Array.from({ length: input.n }, (_, i) => ({ task: leaf, input: { i } })));
    return { sum: outs.reduce((s, o) => s + o.square, 0) };
  },
});

/** On the tight worker (one durable slot): holds the slot until its gate opens. */
export const tightHold = spindle.durableTask({
  name: "d-tight-hold",
  executionTimeout: "5m",
  input: z.object({ tag: z.string() }),
  fn: async (input) => {
    tightOrder.push(`hold:${input.tag}`);
    await gate(input.tag);
    return { held: input.tag };
  },
});

/** On the tight worker: waits for an event; it may only wait 2 s for a slot to start. */
export const tightResume = spindle.durableTask({
  name: "d-tight-resume",
  executionTimeout: "5m",
  scheduleTimeout: "2s",
  input: z.object({ tag: z.string() }),
  fn: async (input, ctx) => {
    const got = await ctx.waitForEvent<{ n: number }>("d-tight-resume:go", `input.tag == "${input.tag}"`);
    tightOrder.push(`resumed:${input.tag}`);
    return { n: got.n };
  },
});

/** On the tight worker: new work that asks for the durable slot. */
export const tightNew = spindle.durableTask({
  name: "d-tight-new",
  executionTimeout: "5m",
  input: z.object({ tag: z.string() }),
  fn: async (input) => {
    tightOrder.push(`new:${input.tag}`);
    return { tag: input.tag };
  },
});

export const livenessWorkflows = [gated, lostSpawn];
export const tightLivenessWorkflows = [tightHold, tightResume, tightNew];
