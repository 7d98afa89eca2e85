import { ConcurrencyLimitStrategy } from "@spindle/worker-sdk";
import { spindle } from "./workflows";

/**
 * Workflows under flow control. Every start and end is recorded here with the time taken inside
 * the task (this module shares the isolate with the tests), so a test can check the limits were
 * never exceeded at any instant.
 */
export interface FlowStart {
  workflow: string;
  runId: string;
  keys: string[];
  startedAt: number;
  endedAt: number | null;
  aborted: boolean;
}
export const flowLog: FlowStart[] = [];
/** Runs (by a tag in their input) allowed to finish: plain values, resolvers cannot cross requests. */
export const flowOpened = new Set<string>();

const wait = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

async function held(workflow: string, runId: string, keys: string[], ms: number, signal: AbortSignal, tag?: string) {
  const entry: FlowStart = { workflow, runId, keys, startedAt: Date.now(), endedAt: null, aborted: false };
  flowLog.push(entry);
  if (tag !== undefined) {
    const until = Date.now() + 20_000;
    while (!flowOpened.has(tag) && !signal.aborted && Date.now() < until) await wait(10, signal);
  } else await wait(ms, signal);
  entry.endedAt = Date.now();
  entry.aborted = signal.aborted;
  return { startedAt: entry.startedAt, endedAt: entry.endedAt };
}

type Group = { group: string; ms?: number; tag?: string };

const rr = spindle.workflow<Group>({
  name: "f-rr",
  concurrency: { expression: "input.group", maxRuns: 2, limitStrategy: ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN },
});
rr.task({ name: "work", executionTimeout: "60s", fn: async (input, ctx) => ({ group: input.group, ...(await held("f-rr", ctx.workflowRunId(), [input.group], input.ms ?? 100, ctx.abortSignal, input.tag)) }) });

/** A task-level key on a standalone task, on a pool of one slot: round-robin order is visible. */
export const rrSerial = spindle.task({
  name: "f-rr-serial",
  concurrency: { expression: "input.group", maxRuns: 100 },
  executionTimeout: "60s",
  fn: async (input: Group, ctx) => ({ group: input.group, ...(await held("f-rr-serial", ctx.workflowRunId(), [input.group], input.ms ?? 20, ctx.abortSignal, input.tag)) }),
});

function strategyWorkflow(name: string, limitStrategy: ConcurrencyLimitStrategy) {
  const wf = spindle.workflow<Group>({ name, concurrency: { expression: "input.group", maxRuns: 1, limitStrategy } });
  wf.task({
    name: "work",
    executionTimeout: "60s",
    fn: async (input, ctx) => {
      await held(name, ctx.workflowRunId(), [input.group], input.ms ?? 3000, ctx.abortSignal, input.tag);
      return { done: true };
    },
  });
  return wf;
}
const cancelInProgress = strategyWorkflow("f-cancel-in-progress", ConcurrencyLimitStrategy.CANCEL_IN_PROGRESS);
const cancelNewest = strategyWorkflow("f-cancel-newest", ConcurrencyLimitStrategy.CANCEL_NEWEST);
const debounce = strategyWorkflow("f-debounce", ConcurrencyLimitStrategy.CANCEL_QUEUED_EXCEPT_NEWEST);

const multi = spindle.workflow<{ group: string; user: string; ms?: number }>({
  name: "f-multi",
  concurrency: [
    { expression: "input.group", maxRuns: 3, limitStrategy: "GROUP_ROUND_ROBIN" },
    { expression: "input.user", maxRuns: 1, limitStrategy: "GROUP_ROUND_ROBIN" },
  ],
});
multi.task({ name: "work", fn: async (input, ctx) => held("f-multi", ctx.workflowRunId(), [`g:${input.group}`, `u:${input.user}`], input.ms ?? 100, ctx.abortSignal) });

/** Per-key limits from the input. */
export const dynamicMax = spindle.task({
  name: "f-dynamic-max",
  concurrency: { expression: "input.group", maxRuns: "input.tier == 'pro' ? 3 : 1" },
  fn: async (input: { group: string; tier: string; ms?: number }, ctx) => held("f-dynamic-max", ctx.workflowRunId(), [input.group], input.ms ?? 100, ctx.abortSignal),
});

export const rate = spindle.task({
  name: "f-rate",
  rateLimits: [{ dynamicKey: "input.userId", units: 1, limit: 2, duration: "second" }],
  fn: async (input: { userId: string }, ctx) => {
    const entry = await held("f-rate", ctx.workflowRunId(), [input.userId], 0, ctx.abortSignal);
    return { userId: input.userId, startedAt: entry.startedAt };
  },
});

export const rateStatic = spindle.task({
  name: "f-rate-static",
  rateLimits: [{ staticKey: "f-static-api", units: 1 }],
  fn: async (_input: unknown, ctx) => ({ startedAt: (await held("f-rate-static", ctx.workflowRunId(), ["f-static-api"], 0, ctx.abortSignal)).startedAt }),
});

export const rateUndefined = spindle.task({
  name: "f-rate-undefined",
  rateLimits: [{ staticKey: "f-never-defined" }],
  scheduleTimeout: "1h",
  fn: () => ({ ran: true }),
});

export const unitsTooBig = spindle.task({
  name: "f-units-too-big",
  rateLimits: [{ dynamicKey: "'f-too-big'", units: "input.units", limit: 2, duration: "minute" }],
  retries: 3,
  fn: () => ({ ran: true }),
});

/** Under a concurrency key and a rate limit at once, each with its own maxima. */
export const both = spindle.task({
  name: "f-both",
  concurrency: { expression: "input.group", maxRuns: 3 },
  rateLimits: [{ dynamicKey: "'f-both-rate'", units: 1, limit: 40, duration: "second" }],
  executionTimeout: "60s",
  scheduleTimeout: "10m",
  fn: async (input: { group: string; ms?: number }, ctx) => held("f-both", ctx.workflowRunId(), [input.group], input.ms ?? 50, ctx.abortSignal),
});

/** On a pool of 3 slots: two of these never run at once. */
export const slotCost = spindle.task({
  name: "f-slot-cost",
  slotCost: 2,
  fn: async (input: { ms?: number }, ctx) => held("f-slot-cost", ctx.workflowRunId(), ["slots"], input.ms ?? 300, ctx.abortSignal),
});
export const slotCostOne = spindle.task({
  name: "f-slot-one",
  fn: async (input: { ms?: number }, ctx) => held("f-slot-one", ctx.workflowRunId(), ["slots"], input.ms ?? 300, ctx.abortSignal),
});

export const flowWorkflows = [rr, cancelInProgress, cancelNewest, debounce, multi, dynamicMax, rate, rateStatic, rateUndefined, unitsTooBig, both];
export const flowSerialWorker = spindle.worker({ name: "flowserial", slots: 1, workflows: [rrSerial] });
/** A pool of 3 slots served by 2 task queues (2 + 1 slots). */
export const sharded = spindle.task({
  name: "f-sharded",
  fn: async (input: { ms?: number }, ctx) => held("f-sharded", ctx.workflowRunId(), ["pool"], input.ms ?? 100, ctx.abortSignal),
});
export const flowShardedWorker = spindle.worker({ name: "flowsharded", slots: 3, queueShards: 2, workflows: [sharded] });
export const flowSlotsWorker = spindle.worker({ name: "flowslots", slots: 3, workflows: [slotCost, slotCostOne] });
