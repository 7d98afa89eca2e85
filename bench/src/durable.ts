import { WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "cloudflare:workers";
import { z } from "zod";
import { Spindle } from "@spindle/worker-sdk";
import type { RunView } from "@spindle/worker-sdk/protocol";
import { flowPlain, flowRr } from "./flow";
import { sink, type Env } from "./index";

/**
 * The durable side of the benchmark (issue 3): what a checkpoint costs, what a resume after
 * eviction costs, how long an event takes to wake a task, and a 1,000-child fan-out. Spindle's
 * durable tasks are declared here and run by this worker (the engine reaches it as WORKER_BENCH in
 * the bench-only engine config that bench/run.mjs writes); the Workflows side is `StepsWorkflow`.
 */

export interface DurableEnv {
  STEPS: Workflow<{ n: number }>;
}

const spindle = Spindle.init();

/** `n` sequential memo checkpoints. */
const memoChain = spindle.durableTask({
  name: "bench-memo",
  executionTimeout: "10m",
  input: z.object({ n: z.number().int() }),
  fn: async (input, ctx) => {
    let sum = 0;
    for (let i = 0; i < input.n; i++) sum += await ctx.memo(() => i, [i]);
    return { sum };
  },
});

/** `n` memos, then a wait: pushing its event measures a resume that replays `n` checkpoints. */
const replay = spindle.durableTask({
  name: "bench-replay",
  executionTimeout: "10m",
  input: z.object({ n: z.number().int(), id: z.string() }),
  fn: async (input, ctx) => {
    for (let i = 0; i < input.n; i++) await ctx.memo(() => i, [i]);
    await ctx.waitForEvent("bench:resume", `input.id == ${JSON.stringify(input.id)}`);
    return { replayed: input.n };
  },
});

/** Waits for an event, then records the time of its next checkpoint. */
const wake = spindle.durableTask({
  name: "bench-wake",
  input: z.object({ id: z.string() }),
  fn: async (input, ctx) => {
    await ctx.waitForEvent("bench:wake", `input.id == ${JSON.stringify(input.id)}`);
    return { wokeAt: await ctx.memo(() => Date.now()) };
  },
});

const leaf = spindle.task({
  name: "bench-leaf",
  input: z.object({ i: z.number() }),
  fn: (input) => ({ i: input.i }),
});

const fanout = spindle.durableTask({
  name: "bench-fanout",
  executionTimeout: "10m",
  input: z.object({ n: z.number().int() }),
  fn: async (input, ctx) => {
    const outs = await ctx.spawnChildren(Array.from({ length: input.n }, (_, i) => ({ task: leaf, input: { i } })));
    return { sum: outs.reduce((s, o) => s + o.i, 0) };
  },
});

export class BenchSpindleWorker extends spindle.worker({
  name: "bench",
  slots: 100,
  durableSlots: 1_000,
  workflows: [memoChain, replay, wake, leaf, fanout, flowRr, flowPlain],
}) {}

/** The Workflows counterpart of `bench-memo`: `n` sequential `step.do` calls. */
export class StepsWorkflow extends WorkflowEntrypoint<Env, { n: number }> {
  override async run(event: Readonly<WorkflowEvent<{ n: number }>>, step: WorkflowStep) {
    let sum = 0;
    for (let i = 0; i < event.payload.n; i++) sum += await step.do(`step-${i}`, async () => i);
    await sink(this.env).record(event.instanceId, JSON.stringify({ sum }));
    return { sum };
  }
}

// ---------------------------------------------------------------------------------------------

const token = (env: Env) => env.SPINDLE_API_TOKEN ?? "";

async function run(env: Env, workflow: string, input: unknown): Promise<string> {
  const r = await env.SPINDLE.trigger(token(env), { workflow, input });
  if (!r.ok) throw new Error(`${workflow}: ${r.error.code}: ${r.error.message}`);
  return r.value.runId;
}

async function ended(env: Env, runId: string): Promise<RunView> {
  const deadline = Date.now() + 600_000;
  for (;;) {
    const r = await env.SPINDLE.waitForRun(token(env), runId, 60_000);
    if (!r.ok) throw new Error(`waitForRun: ${r.error.message}`);
    if (["COMPLETED", "FAILED", "CANCELLED"].includes(r.value.status)) {
      if (r.value.status !== "COMPLETED") throw new Error(`run ${runId} ${r.value.status}: ${r.value.error?.message}`);
      return r.value;
    }
    if (Date.now() > deadline) throw new Error(`run ${runId} did not end`);
  }
}

/** Polls until the run's only task is evicted (waiting, no invocation running). */
async function untilEvicted(env: Env, runId: string): Promise<void> {
  const deadline = Date.now() + 600_000;
  for (;;) {
    const r = await env.SPINDLE.getRun(token(env), runId);
    if (!r.ok) throw new Error(`getRun: ${r.error.message}`);
    if (r.value.tasks[0]?.evicted) return;
    if (r.value.status !== "RUNNING" && r.value.status !== "QUEUED") throw new Error(`run ${runId} is ${r.value.status}`);
    if (Date.now() > deadline) throw new Error(`run ${runId} never waited`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function push(env: Env, key: string, payload: unknown): Promise<void> {
  const r = await env.SPINDLE.pushEvent(token(env), { key, payload });
  if (!r.ok) throw new Error(`pushEvent: ${r.error.message}`);
}

/** `/durable/memo`, `/durable/replay`, `/durable/wake`, `/durable/fanout`: one measurement each. */
export async function durableBench(env: Env, url: URL): Promise<Record<string, unknown>> {
  const n = Number(url.searchParams.get("n") ?? "1000");
  switch (url.pathname) {
    case "/durable/memo": {
      const system = url.searchParams.get("system");
      const t0 = Date.now();
      if (system === "workflows") {
        const instance = await env.STEPS.create({ params: { n } });
        const out = await sink(env).waitFor(instance.id, 600_000);
        if (out !== JSON.stringify({ sum: (n * (n - 1)) / 2 })) throw new Error(`steps workflow returned ${out}`);
      } else {
        const runId = await run(env, "bench-memo", { n });
        const view = await ended(env, runId);
        if ((view.output as { sum: number }).sum !== (n * (n - 1)) / 2) throw new Error("bench-memo returned the wrong sum");
      }
      return { system, n, ms: Date.now() - t0 };
    }
    case "/durable/replay": {
      const id = crypto.randomUUID();
      const runId = await run(env, "bench-replay", { n, id });
      await untilEvicted(env, runId);
      const t0 = Date.now();
      await push(env, "bench:resume", { id });
      await ended(env, runId);
      return { n, ms: Date.now() - t0 };
    }
    case "/durable/wake": {
      const id = crypto.randomUUID();
      const runId = await run(env, "bench-wake", { id });
      await untilEvicted(env, runId);
      const t0 = Date.now();
      await push(env, "bench:wake", { id });
      const view = await ended(env, runId);
      return { ms: (view.output as { wokeAt: number }).wokeAt - t0 };
    }
    case "/durable/fanout": {
      const t0 = Date.now();
      const runId = await run(env, "bench-fanout", { n });
      const view = await ended(env, runId);
      if ((view.output as { sum: number }).sum !== (n * (n - 1)) / 2) throw new Error("bench-fanout returned the wrong sum");
      return { n, ms: Date.now() - t0 };
    }
    default:
      throw new Error(`no route ${url.pathname}`);
  }
}
