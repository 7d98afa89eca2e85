import { z } from "zod";
import { NonRetryableError, Spindle } from "@spindle/worker-sdk";

/**
 * Workflows the workerd tests run. Side effects are counted in `effects` (this module shares the
 * isolate with the tests), so a test can see how many times a task body really ran.
 */
export const spindle = Spindle.init();

export const effects = new Map<string, number>();
export const count = (key: string): number => {
  const n = (effects.get(key) ?? 0) + 1;
  effects.set(key, n);
  return n;
};
export const timeline = new Map<string, number[]>();
const mark = (key: string) => timeline.set(key, [...(timeline.get(key) ?? []), Date.now()]);

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

export const echo = spindle.task({
  name: "t-echo",
  fn: (input: unknown, ctx) => {
    count(`t-echo:${ctx.workflowRunId()}`);
    return { input, metadata: ctx.additionalMetadata(), runId: ctx.workflowRunId(), taskRunId: ctx.taskRunId() };
  },
});

export const typed = spindle.task({
  name: "t-typed",
  input: z.object({ Message: z.string(), user: z.object({ email: z.string().email() }).optional() }),
  fn: (input) => ({ upper: input.Message.toUpperCase() }),
});

/** A diamond: a → (b, c) → d; each task records when it started and what its parents gave it. */
export const diamond = spindle.workflow<{ x: number }>({ name: "t-diamond" });
const a = diamond.task({
  name: "a",
  fn: async (input, ctx) => {
    mark(`${ctx.workflowRunId()}:a:start`);
    await sleep(50);
    mark(`${ctx.workflowRunId()}:a:end`);
    return { v: input.x + 1 };
  },
});
const b = diamond.task({
  name: "b",
  parents: [a],
  fn: async (_input, ctx) => {
    mark(`${ctx.workflowRunId()}:b:start`);
    await sleep(150);
    mark(`${ctx.workflowRunId()}:b:end`);
    return { v: ctx.parentOutput(a).v * 10 };
  },
});
const c = diamond.task({
  name: "c",
  parents: [a],
  fn: async (_input, ctx) => {
    mark(`${ctx.workflowRunId()}:c:start`);
    await sleep(10);
    mark(`${ctx.workflowRunId()}:c:end`);
    return { v: ctx.parentOutput(a).v * 100 };
  },
});
diamond.task({
  name: "d",
  parents: [b, c],
  fn: (_input, ctx) => {
    mark(`${ctx.workflowRunId()}:d:start`);
    return { sum: ctx.parentOutput(b).v + ctx.parentOutput(c).v };
  },
});

/** Fails until its `succeedOn`-th retry; logs each attempt. */
export const flaky = spindle.task({
  name: "t-flaky",
  retries: 3,
  backoff: { factor: 2, maxSeconds: 3 },
  input: z.object({ succeedOn: z.number() }),
  fn: (input, ctx) => {
    count(`t-flaky:${ctx.workflowRunId()}`);
    mark(`t-flaky:${ctx.workflowRunId()}`);
    ctx.logger.info(`attempt with retryCount ${ctx.retryCount()}`);
    if (ctx.retryCount() < input.succeedOn) throw new TypeError(`boom ${ctx.retryCount()}`);
    return { retryCount: ctx.retryCount() };
  },
});

export const noRetry = spindle.task({
  name: "t-non-retryable",
  retries: 5,
  fn: (_input, ctx) => {
    count(`t-non-retryable:${ctx.workflowRunId()}`);
    throw new NonRetryableError("stop now");
  },
});

/** Ignores its abort signal and answers long after its timeout. */
export const slow = spindle.task({
  name: "t-slow",
  executionTimeout: "300ms",
  retries: 1,
  fn: async (_input, ctx) => {
    const n = count(`t-slow:${ctx.workflowRunId()}`);
    ctx.logger.info(`slow attempt ${n}`);
    await sleep(1_500);
    count(`t-slow:finished:${ctx.workflowRunId()}`);
    return { late: true };
  },
});

export const waiter = spindle.task({
  name: "t-wait-abort",
  executionTimeout: "1m",
  fn: async (_input, ctx) => {
    count(`t-wait-abort:${ctx.workflowRunId()}`);
    await sleep(30_000, ctx.abortSignal);
    count(`t-wait-abort:after:${ctx.workflowRunId()}`);
    return { aborted: ctx.abortSignal.aborted, reason: String(ctx.abortSignal.reason) };
  },
});

/** A two-step DAG whose first step waits on its signal, for cancelling mid-run (unless its run is `allowed`). */
export const twoStep = spindle.workflow({ name: "t-two-step" });
const first = twoStep.task({
  name: "first",
  executionTimeout: "1m",
  fn: async (_input, ctx) => {
    count(`t-two-step:first:${ctx.workflowRunId()}`);
    if (!allowed.has(ctx.workflowRunId())) await sleep(30_000, ctx.abortSignal);
    return { done: true };
  },
});
twoStep.task({
  name: "second",
  parents: [first],
  fn: (_input, ctx) => {
    count(`t-two-step:second:${ctx.workflowRunId()}`);
    return { ran: true };
  },
});

export const hooks = spindle.workflow<{ fail: boolean }>({ name: "t-hooks" });
const step = hooks.task({
  name: "step",
  fn: (input) => {
    if (input.fail) throw new RangeError("step failed on purpose");
    return { ok: true };
  },
});
hooks.task({ name: "after", parents: [step], fn: () => ({ after: true }) });
hooks.onFailure({ name: "cleanup", fn: (_input, ctx) => ({ errors: ctx.errors() }) });
hooks.onSuccess({ name: "celebrate", fn: (_input, ctx) => ({ saw: ctx.parentOutput(step) }) });

export const leaf = spindle.task({
  name: "t-leaf",
  input: z.object({ i: z.number() }),
  fn: (input, ctx) => {
    count(`t-leaf:${ctx.workflowRunId()}`);
    return { i: input.i, square: input.i * input.i };
  },
});

export const fanout = spindle.task({
  name: "t-fanout",
  executionTimeout: "2m",
  input: z.object({ n: z.number() }),
  fn: async (input, ctx) => {
    const outs = await ctx.bulkRunChildren(Array.from({ length: input.n }, (_, i) => ({ task: leaf, input: { i } })));
    const one = await ctx.runChild(leaf, { i: 100 });
    return { sum: outs.reduce((s, o) => s + o.square, 0), one: one.square };
  },
});

/** `leaf.run()` inside a regular task: a linked child, waited for while the task holds its slot. */
export const runInsideRegular = spindle.task({
  name: "t-run-inside",
  fn: async () => ({ square: (await leaf.run({ i: 9 })).square }),
});

export const logs = spindle.task({
  name: "t-logs",
  fn: (_input, ctx) => {
    ctx.logger.info("hello", { n: 1 });
    ctx.logger.warn("careful");
    ctx.logger.error("bad thing");
    return { ok: true };
  },
});

export const prio = spindle.task({
  name: "t-prio",
  fn: async (input: { tag: string }) => {
    mark(`t-prio:order`);
    count(`t-prio:${input.tag}`);
    await sleep(20);
    return { tag: input.tag };
  },
});

/** x → y; y fails until the test lets it succeed (for replay). */
export const allowed = new Set<string>();
export const replayable = spindle.workflow({ name: "t-replay" });
const x = replayable.task({
  name: "x",
  fn: (_input, ctx) => {
    count(`t-replay:x:${ctx.workflowRunId()}`);
    return { x: 1 };
  },
});
replayable.task({
  name: "y",
  parents: [x],
  fn: (_input, ctx) => {
    count(`t-replay:y:${ctx.workflowRunId()}`);
    if (!allowed.has(ctx.workflowRunId())) throw new Error("not yet");
    return { y: ctx.parentOutput(x).x + 1 };
  },
});

export const regularWorkflows = [runInsideRegular, echo, typed, diamond, flaky, noRetry, slow, waiter, twoStep, hooks, leaf, fanout, logs, prio, replayable];
