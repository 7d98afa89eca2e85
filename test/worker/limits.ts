import { z } from "zod";
import { Or, PayloadTooLargeError } from "@spindle/worker-sdk";
import { gated } from "./liveness";
import { count, spindle } from "./workflows";

/** Workflows of the size-limit tests (`test/integration/limits.test.ts`). */

const KB4 = "x".repeat(4096);

export const leaf4k = spindle.task({
  name: "l-leaf-4k",
  input: z.object({ i: z.number() }),
  fn: (input) => ({ i: input.i, pad: KB4 }),
});

/** A durable fan-out whose children's results add up to n × 4 KB. */
export const fanout4k = spindle.durableTask({
  name: "l-fanout-4k",
  executionTimeout: "5m",
  scheduleTimeout: "5m",
  input: z.object({ n: z.number() }),
  fn: async (input, ctx) => {
    const outs = await ctx.spawnChildren(Array.from({ length: input.n }, (_, i) => ({ task: leaf4k, input: { i } })));
    return { n: outs.length, inOrder: outs.every((o, i) => o.i === i), bytes: outs.reduce((s, o) => s + o.pad.length, 0) };
  },
});

/** Three tasks of 0.9 MB each: 2.7 MB of outputs in one run. */
export const bigDag = spindle.workflow({ name: "l-big-dag" });
for (const name of ["one", "two", "three"]) {
  bigDag.task({ name, fn: () => ({ name, pad: name[0]!.repeat(900_000) }) });
}

/** Returns an output over the payload limit; it has retries, which must not be used. */
export const bigOutput = spindle.task({
  name: "l-big-output",
  retries: 3,
  fn: (_input: unknown, ctx) => {
    count(`l-big-output:${ctx.workflowRunId()}`);
    return { pad: "z".repeat(1_100_000) };
  },
});

/** A memo whose result is over the limit: the memo throws the typed error, which the task reports. */
export const bigMemo = spindle.durableTask({
  name: "l-big-memo",
  fn: async (_input: unknown, ctx) => {
    try {
      await ctx.memo(() => ({ pad: "m".repeat(1_100_000) }));
      return { threw: false };
    } catch (err) {
      return {
        threw: true,
        typed: err instanceof PayloadTooLargeError,
        code: (err as PayloadTooLargeError).code,
        message: (err as Error).message,
      };
    }
  },
});

/** A durable parent waiting on one child: the child's report is what the dead-letter test blocks. */
export const lonelyParent = spindle.durableTask({
  name: "l-lonely-parent",
  fn: async (_input: unknown, ctx) => {
    const out = await ctx.runChild(leaf4k, { i: 7 });
    return { i: out.i };
  },
});

/**
 * Runs until the test releases it (by run id), so the test can answer for it first. It polls: a
 * promise resolved from the test's own context could not wake the worker's.
 */
export const released = new Set<string>();
export const held = spindle.task({
  name: "l-held",
  retries: 3,
  executionTimeout: "1m",
  fn: async (_input: unknown, ctx) => {
    count(`l-held:${ctx.workflowRunId()}`);
    while (!released.has(ctx.workflowRunId())) await new Promise((r) => setTimeout(r, 20));
    return { late: true };
  },
});

/** 25 parents of 1.04 MB each (26 MB): together more than one assignment may carry to their child. */
export const wideDag = spindle.workflow({ name: "l-wide-dag" });
const wideParents = Array.from({ length: 25 }, (_, i) =>
  wideDag.task({ name: `p${i}`, fn: (_input, ctx) => ({ pad: String(i % 10).repeat(1_040_000), run: ctx.workflowRunId() }) }),
);
wideDag.task({
  name: "gather",
  parents: wideParents,
  fn: (_input, ctx) => {
    count(`l-wide-dag:gather:${ctx.workflowRunId()}`);
    return { n: wideParents.length };
  },
});

/** Memo results of 1 MB until the event log is full: the memo that would overfill it is refused. */
export const memoHoarder = spindle.durableTask({
  name: "l-memo-hoarder",
  retries: 2,
  executionTimeout: "2m",
  fn: async (_input: unknown, ctx) => {
    count(`l-memo-hoarder:${ctx.workflowRunId()}`);
    let kept = 0;
    try {
      for (let i = 0; i < 40; i++) {
        await ctx.memo(() => ({ i, pad: "h".repeat(1_000_000) }), [i]);
        kept++;
      }
      return { kept, refused: null };
    } catch (err) {
      return { kept, refused: { code: (err as { code?: string }).code, message: (err as Error).message } };
    }
  },
});

/**
 * Two waits in a row: an event (or, after `firstSleep`, a sleep), then another event. The
 * dead-letter tests block the messages of one wait and check what that does to the other.
 */
export const twoWaits = spindle.durableTask({
  name: "l-two-waits",
  executionTimeout: "30s",
  input: z.object({ tag: z.string(), firstSleep: z.string() }),
  fn: async (input, ctx) => {
    const first = await ctx.waitFor([Or({ eventKey: "l:first", expression: `input.tag == "${input.tag}"` }, { sleepFor: input.firstSleep })]);
    const second = await ctx.waitForEvent<{ tag: string; n: number }>("l:second", `input.tag == "${input.tag}"`);
    return { first: Object.keys(first), second: second.n };
  },
});

/** A durable parent waiting on one child that holds at its gate: what a cancel must reach. */
export const heldChild = spindle.durableTask({
  name: "l-held-child",
  executionTimeout: "5m",
  input: z.object({ tag: z.string() }),
  fn: async (input, ctx) => ctx.runChild(gated, { tag: input.tag, hold: true }),
});

export const limitsWorkflows = [leaf4k, fanout4k, bigDag, bigOutput, bigMemo, lonelyParent, held, wideDag, memoHoarder, twoWaits, heldChild];
