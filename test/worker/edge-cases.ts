import { NonRetryableError, Or, ParentCondition } from "@spindle/worker-sdk";
import { z } from "zod";
import { opened } from "./pools";
import { allowed, count, leaf, spindle } from "./workflows";

/**
 * Workflows for the fault and edge-case tests found in review (parallel memos, memo errors, replays
 * of spawning tasks, conditional decisions, outbox recovery). They run on the `test` worker.
 */

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Two independent memo chains in parallel; the left one's first memo is slow. */
export const memoRace = spindle.durableTask({
  name: "rv-memo-race",
  executionTimeout: "30s",
  fn: async (_input, ctx) => {
    const body = (tag: string) => {
      count(`rv-memo-race:${tag}:${ctx.workflowRunId()}`);
      return tag;
    };
    const [left, right] = await Promise.all([
      ctx.memo(async () => {
        await pause(200);
        return body("a");
      }).then(() => ctx.memo(() => body("c"))),
      ctx.memo(() => body("b")).then(() => ctx.memo(() => body("d"))),
    ]);
    await ctx.sleepFor("1s");
    return { left, right };
  },
});

/** A wait and, in parallel, two memos one after the other; the second has a side effect. */
export const lateMemo = spindle.durableTask({
  name: "rv-late-memo",
  executionTimeout: "30s",
  fn: async (_input, ctx) => {
    const runId = ctx.workflowRunId();
    const [, n] = await Promise.all([
      ctx.sleepFor("1h"),
      ctx.memo(() => 1).then(() => ctx.memo(() => count(`rv-late-memo:${runId}`))),
    ]);
    return { n };
  },
});

/** A memo whose body throws NonRetryableError, on a task with retries. */
export const memoNonRetryable = spindle.durableTask({
  name: "rv-memo-nonretryable",
  retries: 2,
  executionTimeout: "30s",
  fn: async (_input, ctx) =>
    ctx.memo(() => {
      count(`rv-memo-nonretryable:${ctx.workflowRunId()}`);
      throw new NonRetryableError("permanent");
    }),
});

/** A memo whose body fails once (a transient error), on a task with retries. */
export const memoTransient = spindle.durableTask({
  name: "rv-memo-transient",
  retries: 2,
  executionTimeout: "30s",
  fn: async (_input, ctx) => ({
    v: await ctx.memo(() => {
      if (count(`rv-memo-transient:${ctx.workflowRunId()}`) === 1) throw new Error("transient");
      return "ok";
    }),
  }),
});

/** Fans out to two leaves, then fails until the test allows it (for API replay). */
export const fanThenFail = spindle.durableTask({
  name: "rv-fan-then-fail",
  executionTimeout: "30s",
  fn: async (_input, ctx) => {
    const outs = await ctx.spawnChildren([1, 2].map((i) => ({ task: leaf, input: { i } })));
    if (!allowed.has(ctx.workflowRunId())) throw new NonRetryableError("not yet");
    return { squares: outs.map((o) => o.square) };
  },
});

/** A child that runs until its tag is opened (or its abort signal fires). */
export const gated = spindle.task({
  name: "rv-gated",
  executionTimeout: "30s",
  input: z.object({ tag: z.string() }),
  fn: async (input, ctx) => {
    const until = Date.now() + 20_000;
    while (!opened.has(input.tag) && !ctx.abortSignal.aborted && Date.now() < until) await pause(10);
    return { tag: input.tag };
  },
});

/** Fans out to gated children. */
export const fanGated = spindle.durableTask({
  name: "rv-fan-gated",
  executionTimeout: "30s",
  input: z.object({ tag: z.string(), n: z.number() }),
  fn: async (input, ctx) => {
    const outs = await ctx.spawnChildren(Array.from({ length: input.n }, () => ({ task: gated, input: { tag: input.tag } })));
    return { n: outs.length };
  },
});

/** Runs one leaf child and returns its square. */
export const lostParent = spindle.durableTask({
  name: "rv-lost-parent",
  executionTimeout: "30s",
  fn: async (_input, ctx) => ({ square: (await ctx.runChild(leaf, { i: 3 })).square }),
});

/** Waits for either of two events (two keys, so two event buses). */
export const orWaits = spindle.durableTask({
  name: "rv-or-waits",
  executionTimeout: "30s",
  input: z.object({ id: z.string() }),
  fn: async (input, ctx) => {
    const fired = await ctx.waitFor([Or({ eventKey: "rv:k1", expression: `input.id == "${input.id}"` }, { eventKey: "rv:k2", expression: `input.id == "${input.id}"` })]);
    return { fired };
  },
});

/** root → (cond: skipped at once by a parent condition, plain) */
export const siblings = spindle.workflow({ name: "rv-siblings" });
const root = siblings.task({ name: "root", fn: () => ({ skip: true }) });
siblings.task({
  name: "cond",
  parents: [root],
  skipIf: [new ParentCondition({ parent: root, expression: "output.skip == true" })],
  fn: () => ({ ran: true }),
});
siblings.task({
  name: "plain",
  parents: [root],
  fn: (_input, ctx) => {
    count(`rv-siblings:plain:${ctx.workflowRunId()}`);
    return { ok: true };
  },
});

/** root → gated: waitFor a parent condition that is false once root has completed. */
export const parentWait = spindle.workflow({ name: "rv-parent-wait" });
const first = parentWait.task({ name: "first", fn: () => ({ go: false }) });
parentWait.task({
  name: "second",
  parents: [first],
  waitFor: [new ParentCondition({ parent: first, expression: "output.go == true" })],
  fn: () => ({ ran: true }),
});

/** root → checked (a skipIf that fails to evaluate) and gated (an event waitFor keyed by the run). */
export const condErrors = spindle.workflow<{ key: string }>({ name: "rv-cond-errors" });
const source = condErrors.task({ name: "source", fn: () => ({ n: "not a number" }) });
condErrors.task({
  name: "checked",
  parents: [source],
  skipIf: [new ParentCondition({ parent: source, expression: "output.n > 1" })],
  fn: () => ({ ran: true }),
});
condErrors.task({
  name: "gated",
  parents: [source],
  waitFor: [{ eventKey: "rv-cond-errors:go", expression: "input.key == 'k' + input.v" }],
  fn: () => ({ ran: true }),
});

export const edgeCaseWorkflows = [condErrors, parentWait, memoRace, lateMemo, memoNonRetryable, memoTransient, fanThenFail, gated, fanGated, lostParent, orWaits, siblings];
