import { z } from "zod";
import { ChildRunError, Or, ParentCondition, SleepCondition, UserEventCondition } from "@spindle/worker-sdk";
import { gates, tightLivenessWorkflows } from "./liveness";
import { count, effects, leaf, spindle } from "./workflows";

/**
 * Durable test workflows. Memo bodies count their runs in `effects`, so a test can check that a
 * replay never runs a recorded call again.
 */

/** Crash points the test arms: `${runId}:${step}` crashes the task once right after that step. */
export const crashAt = new Set<string>();
const crashOnce = (runId: string, step: string) => {
  const key = `${runId}:${step}`;
  if (crashAt.has(key)) {
    crashAt.delete(key);
    throw new Error(`injected crash after ${step}`);
  }
};

/** memo → sleep → memo → event → memo → children → memo: every kind of checkpoint, in order. */
export const steps = spindle.durableTask({
  name: "d-steps",
  retries: 20,
  executionTimeout: "30s",
  input: z.object({ tag: z.string() }),
  fn: async (input, ctx) => {
    const runId = ctx.workflowRunId();
    const a = await ctx.memo(() => count(`d-steps:a:${runId}`) * 0 + 1);
    crashOnce(runId, "a");
    const slept = await ctx.sleepFor("2s");
    crashOnce(runId, "sleep");
    const b = await ctx.memo(async () => {
      count(`d-steps:b:${runId}`);
      return a + 10;
    });
    crashOnce(runId, "b");
    const event = await ctx.waitForEvent<{ tag: string; n: number }>("d-steps:go", `input.tag == "${input.tag}"`);
    crashOnce(runId, "event");
    const c = await ctx.memo(() => {
      count(`d-steps:c:${runId}`);
      return b + event.n;
    });
    crashOnce(runId, "c");
    const squares = await ctx.spawnChildren([1, 2, 3].map((i) => ({ task: leaf, input: { i } })));
    crashOnce(runId, "children");
    const d = await ctx.memo(() => {
      count(`d-steps:d:${runId}`);
      return c + squares.reduce((s, o) => s + o.square, 0);
    });
    return { a, b, c, d, slept: slept.durationMs, invocations: ctx.invocationCount() >= 1 };
  },
});

export const sleeper = spindle.durableTask({
  name: "d-sleep",
  executionTimeout: "30s",
  input: z.object({ duration: z.union([z.string(), z.number()]) }),
  fn: async (input, ctx) => {
    const started = await ctx.now();
    const { durationMs } = await ctx.sleepFor(input.duration);
    return { sleptMs: durationMs, since: started.toISOString() };
  },
});

export const eventWaiter = spindle.durableTask({
  name: "d-event",
  executionTimeout: "30s",
  input: z.object({ userId: z.string(), lookback: z.string().optional(), scope: z.string().optional() }),
  fn: async (input, ctx) => {
    count(`d-event:invoked:${ctx.workflowRunId()}`);
    const payload = await ctx.waitForEvent("d:update", `input.userId == "${input.userId}"`, { lookback: input.lookback, scope: input.scope });
    return { payload };
  },
});

export const orWaiter = spindle.durableTask({
  name: "d-or",
  executionTimeout: "30s",
  fn: async (_input, ctx) => {
    const fired = await ctx.waitFor([Or({ eventKey: "d:approve" }, { sleepFor: "10s" })]);
    return { fired: Object.keys(fired), values: fired };
  },
});

export const andWaiter = spindle.durableTask({
  name: "d-and",
  executionTimeout: "30s",
  fn: async (_input, ctx) => {
    const fired = await ctx.waitFor([new UserEventCondition("d:left"), new UserEventCondition("d:right", "input.ok == true")]);
    return { fired };
  },
});

export const fanoutParent = spindle.durableTask({
  name: "d-fanout",
  executionTimeout: "1m",
  input: z.object({ n: z.number(), failAt: z.number().optional() }),
  fn: async (input, ctx) => {
    try {
      const outs = await ctx.spawnChildren(
        Array.from({ length: input.n }, (_, i) => ({ task: i === input.failAt ? failingLeaf : leaf, input: { i } })),
      );
      return { sum: outs.reduce((s, o) => s + o.i, 0) };
    } catch (err) {
      if (err instanceof ChildRunError) return { caught: err.message, failed: err.results.filter((r) => r.status === "FAILED").length };
      throw err;
    }
  },
});

export const failingLeaf = spindle.task({
  name: "t-failing-leaf",
  input: z.object({ i: z.number() }),
  fn: (input) => {
    throw new RangeError(`leaf ${input.i} refuses`);
  },
});

/** `leaf.run()` inside a durable task: a checkpointed child, not a plain trigger. */
export const runInside = spindle.durableTask({
  name: "d-run-inside",
  executionTimeout: "30s",
  fn: async (_input, ctx) => {
    const out = await leaf.run({ i: 7 });
    count(`d-run-inside:after:${ctx.workflowRunId()}`);
    return { square: out.square };
  },
});

/** Calls memo then sleep the first time, sleep first after the test flips the switch. */
export const reorder = new Set<string>();
export const nondet = spindle.durableTask({
  name: "d-nondet",
  executionTimeout: "30s",
  fn: async (_input, ctx) => {
    if (reorder.has(ctx.workflowRunId())) {
      await ctx.sleepFor("1s");
      await ctx.memo(() => 1);
    } else {
      await ctx.memo(() => 1);
      await ctx.sleepFor("1s");
    }
    return { ok: true };
  },
});

/** A loop of 1,000 memos, then a wait: the replay cost of a long log. */
export const memoLoop = spindle.durableTask({
  name: "d-memo-loop",
  executionTimeout: "2m",
  input: z.object({ n: z.number(), wait: z.boolean().optional() }),
  fn: async (input, ctx) => {
    let sum = 0;
    for (let i = 0; i < input.n; i++) sum += await ctx.memo(() => i, [i]);
    if (input.wait) await ctx.waitForEvent("d-memo-loop:go", `input.runId == "${ctx.workflowRunId()}"`);
    return { sum };
  },
});

/** A DAG that branches on its first task's number and waits for an event or a sleep. */
export const conditional = spindle.workflow<{ n: number; tag: string }>({ name: "t-conditions" });
const start = conditional.task({ name: "start", fn: (input) => ({ n: input.n }) });
const big = conditional.task({
  name: "big",
  parents: [start],
  skipIf: [new ParentCondition({ parent: start, expression: "output.n <= 50" })],
  fn: (_input, ctx) => ({ big: ctx.parentOutput(start).n }),
});
const small = conditional.task({
  name: "small",
  parents: [start],
  skipIf: [new ParentCondition(start, "output.n > 50")],
  fn: (_input, ctx) => ({ small: ctx.parentOutput(start).n }),
});
const waitStep = conditional.task({
  name: "wait",
  parents: [big, small],
  waitFor: [Or(new SleepCondition("5s"), new UserEventCondition("t-conditions:go", "input.tag == 'go'"))],
  cancelIf: [new UserEventCondition("t-conditions:stop")],
  fn: (_input, ctx) => ({ bigSkipped: ctx.wasSkipped(big), smallSkipped: ctx.wasSkipped(small) }),
});
conditional.task({
  name: "end",
  parents: [waitStep],
  fn: (_input, ctx) => ({ saw: ctx.parentOutput(waitStep) }),
});

/** On a worker with one durable slot and two regular ones. */
export const tightLeaf = spindle.task({
  name: "t-tight-leaf",
  input: z.object({ i: z.number() }),
  fn: (input) => ({ i: input.i }),
});
export const tightParent = spindle.durableTask({
  name: "d-tight-parent",
  executionTimeout: "5m",
  input: z.object({ n: z.number() }),
  fn: async (input, ctx) => {
    const outs = await ctx.spawnChildren(Array.from({ length: input.n }, (_, i) => ({ task: tightLeaf, input: { i } })));
    return { count: outs.length, sum: outs.reduce((s, o) => s + o.i, 0) };
  },
});
export const tightWaiter = spindle.durableTask({
  name: "d-tight-waiter",
  executionTimeout: "30s",
  input: z.object({ key: z.string() }),
  fn: async (input, ctx) => ({ got: await ctx.waitForEvent("d-tight:go", `input.key == "${input.key}"`) }),
});
export const tightQuick = spindle.durableTask({
  name: "d-tight-quick",
  executionTimeout: "30s",
  fn: async (_input, ctx) => ({ one: await ctx.memo(() => 1) }),
});

/** Sleeps until a moment given in its input. */
export const sleepUntil = spindle.durableTask({
  name: "d-sleep-until",
  executionTimeout: "30s",
  input: z.object({ at: z.string() }),
  fn: async (input, ctx) => ctx.sleepUntil(new Date(input.at)),
});

/** memo keys include their deps; now() is recorded once. */
export const memoKeys = spindle.durableTask({
  name: "d-memo-keys",
  executionTimeout: "30s",
  input: z.object({ dep: z.string() }),
  fn: async (input, ctx) => {
    const first = await ctx.now();
    const value = await ctx.memo(() => {
      count(`d-memo-keys:body:${ctx.workflowRunId()}`);
      return `computed for ${input.dep}`;
    }, [input.dep]);
    await ctx.sleepFor("1s");
    const second = await ctx.now();
    return { value, first: first.toISOString(), second: second.toISOString() };
  },
});

/** A durable task inside a DAG, between two regular tasks. */
export const mixed = spindle.workflow<{ x: number }>({ name: "t-mixed" });
const before = mixed.task({ name: "before", fn: (input) => ({ x: input.x }) });
const middle = mixed.durableTask({
  name: "middle",
  parents: [before],
  executionTimeout: "30s",
  fn: async (_input, ctx) => {
    const x = ctx.parentOutput(before).x;
    const got = await ctx.waitForEvent<{ add: number }>("t-mixed:add", `input.x == ${x}`);
    return { x: x + got.add };
  },
});
mixed.task({ name: "after", parents: [middle], fn: (_input, ctx) => ({ final: ctx.parentOutput(middle).x * 2 }) });

/** Builds its expression at run time, and builds it wrong. */
export const badCel = spindle.durableTask({
  name: "d-bad-cel",
  retries: 3,
  executionTimeout: "30s",
  fn: async (_input, ctx) => ctx.waitForEvent("anything", "input.x == == 1"),
});

/** Counts each invocation; its invocation after the sleep waits at its gate (`gates` has its run id). */
export const gatedSleeper = spindle.durableTask({
  name: "d-gated-sleep",
  executionTimeout: "1m",
  fn: async (_input, ctx) => {
    const runId = ctx.workflowRunId();
    count(`d-gated-sleep:invoked:${runId}`);
    await ctx.sleepFor("1s");
    count(`d-gated-sleep:resumed:${runId}`);
    const until = Date.now() + 60_000;
    while (!gates.has(runId) && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    return { ok: true };
  },
});

export const durableWorkflows = [gatedSleeper, sleepUntil, badCel, memoKeys, mixed, steps, sleeper, eventWaiter, orWaiter, andWaiter, fanoutParent, failingLeaf, runInside, nondet, memoLoop, conditional];
export const tightWorker = spindle.worker({
  name: "tight",
  slots: 2,
  durableSlots: 1,
  workflows: [tightLeaf, tightParent, tightWaiter, tightQuick, ...tightLivenessWorkflows],
});

export { effects };
