import { z } from "zod";
import { leaf, count, spindle } from "./workflows";

/**
 * Workflows for replay matching (a call gets its own record, whatever the order and timing) and for
 * stale invocations (a cancelled, timed-out or superseded copy of a task acts no more). Bodies count
 * their runs in `effects`; what a stale copy saw is kept in `staleOutcomes` for the test to read.
 */

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** A non-durable await of a random length: replays see other timings than the first run. */
const jitter = () => pause(Math.floor(Math.random() * 12));

/** What the code of a stale attempt got when it tried to act, by `${runId}`. */
export const staleOutcomes = new Map<string, string>();
/** Gates the tests open, by `${runId}:${attempt}`. */
export const gates = new Set<string>();
const gate = async (key: string) => {
  while (!gates.has(key)) await pause(10);
};
const codeOf = (err: unknown) => (err as { code?: string }).code ?? `${(err as Error).name}: ${(err as Error).message}`;

/** Two chains of unnamed memos in parallel, random pauses between calls, then a sleep (so it replays). */
export const parallelMemos = spindle.durableTask({
  name: "rv-parallel-memos",
  executionTimeout: "1m",
  fn: async (_input, ctx) => {
    const runId = ctx.workflowRunId();
    const body = (tag: string) => {
      count(`rv-parallel-memos:${tag}:${runId}`);
      return tag;
    };
    const [left, right] = await Promise.all([
      (async () => {
        await jitter();
        const a = await ctx.memo(() => body("L1"));
        await jitter();
        const b = await ctx.memo(() => body("L2"));
        await jitter();
        const c = await ctx.memo(() => body("L3"));
        return [a, b, c];
      })(),
      (async () => {
        await jitter();
        const a = await ctx.memo(() => body("R1"));
        await jitter();
        const b = await ctx.memo(() => body("R2"));
        await jitter();
        const c = await ctx.memo(() => body("R3"));
        return [a, b, c];
      })(),
    ]);
    await ctx.sleepFor("1s");
    return { left, right, invocation: ctx.invocationCount() };
  },
});

/** Two unnamed memos, then a sleep; the replay calls them in the other order. */
export const memoReorder = spindle.durableTask({
  name: "rv-memo-reorder",
  executionTimeout: "30s",
  fn: async (_input, ctx) => {
    const runId = ctx.workflowRunId();
    const one = () => {
      count(`rv-memo-reorder:one:${runId}`);
      return "one";
    };
    const two = () => {
      count(`rv-memo-reorder:two:${runId}`);
      return "two";
    };
    let a: string, b: string;
    if (ctx.invocationCount() === 1) {
      a = await ctx.memo(one);
      b = await ctx.memo(two);
    } else {
      b = await ctx.memo(two);
      a = await ctx.memo(one);
    }
    await ctx.sleepFor("1s");
    return { a, b };
  },
});

/** Two memos with the same body, told apart by their names only; the replay calls them in the other order. */
export const namedReorder = spindle.durableTask({
  name: "rv-named-reorder",
  executionTimeout: "30s",
  fn: async (_input, ctx) => {
    const runId = ctx.workflowRunId();
    const step = (name: string) =>
      ctx.memo(name, () => {
        count(`rv-named-reorder:${name}:${runId}`);
        return `${name} at ${Date.now()}`;
      });
    let a: string, b: string;
    if (ctx.invocationCount() === 1) {
      a = await step("a");
      b = await step("b");
    } else {
      b = await step("b");
      a = await step("a");
    }
    await ctx.sleepFor("1s");
    return { a, b };
  },
});

/**
 * Waits until its invocation is no longer current (the run cancelled, or its execution timeout
 * passed: the abort signal is how the code sees the SDK learnt it), then calls a memo.
 */
export const staleMemo = spindle.durableTask({
  name: "rv-stale-memo",
  executionTimeout: "3s",
  fn: async (_input, ctx) => {
    const runId = ctx.workflowRunId();
    await ctx.memo(() => count(`rv-stale-memo:before:${runId}`));
    if (!ctx.abortSignal.aborted) await new Promise((resolve) => ctx.abortSignal.addEventListener("abort", resolve, { once: true }));
    try {
      await ctx.memo(() => count(`rv-stale-memo:after:${runId}`));
      staleOutcomes.set(runId, "memo returned");
    } catch (err) {
      staleOutcomes.set(runId, codeOf(err));
    }
  },
});

/**
 * A regular task whose first attempt fails (a retryable error) and whose retry spawns a child once
 * the test opens its gate: in between, the first attempt is stale and the retry current.
 */
export const staleSpawn = spindle.task({
  name: "rv-stale-spawn",
  retries: 1,
  executionTimeout: "30s",
  fn: async (_input, ctx) => {
    const runId = ctx.workflowRunId();
    const attempt = ctx.retryCount() + 1;
    count(`rv-stale-spawn:attempt${attempt}:${runId}`);
    if (attempt === 1) throw new Error("first attempt fails");
    await gate(`${runId}:${attempt}`);
    const child = await ctx.runNoWaitChild(leaf, { i: attempt });
    return { child: child.runId };
  },
});

/** Records one memo, then holds its invocation open until the test opens its gate (or cancels it). */
export const held = spindle.durableTask({
  name: "rv-held",
  executionTimeout: "1m",
  fn: async (_input, ctx) => {
    const runId = ctx.workflowRunId();
    await ctx.memo("held", () => 1);
    while (!gates.has(runId) && !ctx.abortSignal.aborted) await pause(10);
    return { done: true };
  },
});

/**
 * Two unnamed memos (one with deps), a wait, then a named memo. The upgrade test rewrites the first
 * two records, while the task waits, into the form an SDK from before memo identities wrote.
 */
export const legacyLog = spindle.durableTask({
  name: "rv-legacy-log",
  executionTimeout: "1m",
  input: z.object({ tag: z.string() }),
  fn: async (input, ctx) => {
    const runId = ctx.workflowRunId();
    const a = await ctx.memo(() => count(`rv-legacy-log:a:${runId}`) * 10);
    const b = await ctx.memo(() => count(`rv-legacy-log:b:${runId}`) + a, [a]);
    await ctx.waitForEvent("rv:legacy", `input.tag == "${input.tag}"`);
    const c = await ctx.memo("c", () => count(`rv-legacy-log:c:${runId}`) + b);
    return { a, b, c };
  },
});

export const replayMatchingWorkflows = [parallelMemos, memoReorder, namedReorder, staleMemo, staleSpawn, held, legacyLog];
