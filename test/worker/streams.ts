import { z } from "zod";
import { spindle } from "./workflows";

/**
 * Workflows of the stream, live-log, live-channel and bulk-action tests. A task that waits at a
 * gate goes on when the test opens it (this module shares the isolate with the tests).
 */
// Polled, not awaited as a promise: a promise made in the task's request and resolved from the
// test's would cross I/O contexts, which workerd refuses.
const opened = new Set<string>();
export const openGate = (key: string): void => void opened.add(key);
async function atGate(key: string, signal: AbortSignal): Promise<void> {
  while (!opened.has(key) && !signal.aborted) await new Promise((resolve) => setTimeout(resolve, 10));
}

/** Puts `n` chunks `chunk i`; before chunk `pauseAt` it waits at the gate `stream:<runId>`. */
export const streamer = spindle.task({
  name: "t-stream",
  input: z.object({ n: z.number().int().min(0), pauseAt: z.number().int().optional() }),
  fn: async (input, ctx) => {
    for (let i = 0; i < input.n; i++) {
      if (i === input.pauseAt) await atGate(`stream:${ctx.workflowRunId()}`, ctx.abortSignal);
      await ctx.putStream(`chunk ${i}`);
    }
    return { chunks: input.n };
  },
});

/** Streams a multi-line chunk and a big one without awaiting them: the run ends only after they are recorded. */
export const streamUnawaited = spindle.task({
  name: "t-stream-unawaited",
  fn: (_input, ctx) => {
    void ctx.putStream("line one\nline two");
    void ctx.putStream("x".repeat(60_000));
    return { ok: true };
  },
});

/** Streams and logs before and after a sleep: the replay after the sleep puts the first chunk again. */
export const durableStreamer = spindle.durableTask({
  name: "t-stream-durable",
  fn: async (_input, ctx) => {
    await ctx.putStream("before the sleep");
    ctx.logger.info("before the sleep");
    await ctx.sleepFor("50ms");
    await ctx.putStream("after the sleep");
    ctx.logger.info("after the sleep");
    return { done: true };
  },
});

/** Logs two lines, waits at the gate `log:<runId>`, logs a third. */
export const liveLogger = spindle.task({
  name: "t-log-live",
  fn: async (_input, ctx) => {
    ctx.logger.info("one");
    ctx.logger.warn("two", { n: 2 });
    await atGate(`log:${ctx.workflowRunId()}`, ctx.abortSignal);
    ctx.logger.error("three");
    return { logged: 3 };
  },
});

/** Waits at the gate `hold:<runId>` (or until cancelled), then returns. */
export const holder = spindle.task({
  name: "t-hold",
  executionTimeout: "2m",
  fn: async (_input, ctx) => {
    await atGate(`hold:${ctx.workflowRunId()}`, ctx.abortSignal);
    return { released: !ctx.abortSignal.aborted };
  },
});

/** Fails at once (for bulk replay). */
export const failer = spindle.task({
  name: "t-fail-once",
  fn: (_input, ctx) => {
    if (ctx.retryCount() === 0 && !replayable.has(ctx.workflowRunId())) throw new Error("first time fails");
    return { ok: true };
  },
});
export const replayable = new Set<string>();

/** Tries to put a chunk over the limit; returns what the SDK answered. */
export const tooBig = spindle.task({
  name: "t-stream-too-big",
  fn: async (_input, ctx) => {
    const err = await ctx.putStream("x".repeat(64 * 1024 + 1)).catch((e: unknown) => e);
    return { code: (err as { code?: string }).code ?? null };
  },
});

export const streamWorkflows = [tooBig, streamer, streamUnawaited, durableStreamer, liveLogger, holder, failer];
