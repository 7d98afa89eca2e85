import { DurableObject, WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "cloudflare:workers";
import type { EventPush, Reply, RunView, TriggerRequest, TriggerResult } from "@spindle/worker-sdk/protocol";
import { FLOW_VARIANTS, flowBench, type FlowVariant } from "./flow";
import { measureRunsPage, seedRuns } from "./dashboard";
import { durableBench, type DurableEnv } from "./durable";

export { BenchSpindleWorker, StepsWorkflow } from "./durable";
export { BenchShardedWorker } from "./flow";

/**
 * The benchmark worker behind `npm run bench`. It runs in the same `wrangler dev` (the same workerd)
 * as the Spindle engine and the example worker, and measures three ways of doing the `simple` job
 * (lower-case "Hello World" durably and tell someone it is done), each timed inside the runtime from
 * just before the trigger until a waiter has observed the result:
 *
 * - `spindle`: the engine's RPC entrypoint, `trigger` then `waitForRun` (returns when the run ends).
 * - `floor`: one Queue message; the consumer lower-cases it and writes one row to a SQLite Durable
 *   Object (`FloorSink`), which wakes the waiter blocked in `FloorSink.waitFor`.
 * - `workflows`: a Cloudflare Workflow instance whose `run()` does one `step.do` that lower-cases the
 *   message, then records the step's output in the same `FloorSink`, waited on the same way.
 * - `object`: not a way to do the job but the least a design with one Durable Object per run (Spindle's)
 *   must pay for each: a fresh SQLite object, addressed by name as a run's is, that creates its table
 *   and commits one row. The call returns once the row is durable.
 *
 * Endpoints (all GET, JSON): `/` (health), `/latency?system=&n=` (n runs one after another),
 * `/throughput?system=&n=&concurrency=` (n runs, at most `concurrency` in flight), `/dashboard/seed?runs=&expect=`
 * and `/dashboard/measure?samples=` (the dashboard's runs page with that many runs in the tenant).
 */

export type System = "spindle" | "floor" | "workflows" | "object";
const SYSTEMS: readonly System[] = ["spindle", "floor", "workflows", "object"];

const INPUT = { Message: "Hello World" } as const;
const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
const EXPECTED = JSON.stringify({ TransformedMessage: "hello world" });
/**
 * A single run that takes longer than this is an error, not a sample. Generous: under the
 * 1,000-run load a run can wait tens of seconds on a slow machine, and that is a sample.
 */
const RUN_TIMEOUT_MS = 120_000;
/** The engine answers one `waitForRun` after at most 60 s (MAX_WAIT_MS); ask again until the deadline. */
const SPINDLE_WAIT_MS = 60_000;
/** Spindle aside, the systems record into one sink object, waited on there (the floor and Workflows); `object` makes a new one per run. */
const SINK_NAME = "sink";

interface FloorMessage {
  id: string;
  Message: string;
}

interface LowerParams {
  Message: string;
}

/** The engine's RPC entrypoint (src/rpc/engine.ts), as seen through the SPINDLE service binding. */
export interface EngineRpc {
  trigger(token: string, req: TriggerRequest): Promise<Reply<TriggerResult>>;
  waitForRun(token: string, runId: string, waitMs: number): Promise<Reply<RunView>>;
  getRun(token: string, runId: string): Promise<Reply<RunView>>;
  pushEvent(token: string, event: EventPush): Promise<Reply<{ eventId: string }>>;
  triggerMany(token: string, reqs: TriggerRequest[]): Promise<Reply<TriggerResult[]>>;
  fetch(input: string, init?: RequestInit): Promise<Response>;
}

export interface Env extends DurableEnv {
  SINK: DurableObjectNamespace<FloorSink>;
  FLOOR_QUEUE: Queue<FloorMessage>;
  WF: Workflow<LowerParams>;
  SPINDLE: EngineRpc;
  SPINDLE_API_TOKEN?: string;
}

// ---------------------------------------------------------------------------------------------
// The sink: one SQLite row per finished job, and waiters woken the moment their row is written
// ---------------------------------------------------------------------------------------------

export class FloorSink extends DurableObject<Env> {
  private readonly waiters = new Map<string, Set<(output: string) => void>>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS done (id TEXT PRIMARY KEY, output TEXT NOT NULL, at INTEGER NOT NULL)");
  }

  /**
   * Writes the row, then wakes its waiters. The waiters' replies leave this object only once the
   * write is durable (the output gate), so "observed" means "written".
   */
  async record(id: string, output: string): Promise<void> {
    this.ctx.storage.sql.exec(
      "INSERT INTO done (id, output, at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
      id,
      output,
      Date.now(),
    );
    const set = this.waiters.get(id);
    if (!set) return;
    this.waiters.delete(id);
    for (const wake of set) wake(output);
  }

  /** The row's output, as soon as it exists (at once if it already does). */
  async waitFor(id: string, timeoutMs: number): Promise<string> {
    const row = this.ctx.storage.sql.exec<{ output: string }>("SELECT output FROM done WHERE id = ?", id).toArray()[0];
    if (row) return row.output;
    return new Promise<string>((resolve, reject) => {
      let set = this.waiters.get(id);
      if (!set) this.waiters.set(id, (set = new Set()));
      const timer = setTimeout(() => {
        set.delete(wake);
        reject(new Error(`no row for '${id}' after ${timeoutMs} ms`));
      }, timeoutMs);
      const wake = (output: string) => {
        clearTimeout(timer);
        resolve(output);
      };
      set.add(wake);
    });
  }
}

export function sink(env: Pick<Env, "SINK">) {
  return env.SINK.getByName(SINK_NAME);
}

// ---------------------------------------------------------------------------------------------
// The Workflow: one step, then record completion in the sink
// ---------------------------------------------------------------------------------------------

export class LowerWorkflow extends WorkflowEntrypoint<Env, LowerParams> {
  override async run(event: Readonly<WorkflowEvent<LowerParams>>, step: WorkflowStep) {
    const output = await step.do("lower", async () => ({ TransformedMessage: event.payload.Message.toLowerCase() }));
    // Idempotent: a replay of run() writes nothing new.
    await sink(this.env).record(event.instanceId, JSON.stringify(output));
    return output;
  }
}

// ---------------------------------------------------------------------------------------------
// One run of each system, timed from just before the trigger to the waiter seeing the result
// ---------------------------------------------------------------------------------------------

interface Sample {
  /** Trigger → result observed by the waiter. */
  ms: number;
  /** Trigger → the trigger call (`send`, `create`, `trigger`) returned. */
  triggerMs: number;
  /** Spindle only: where the time went, from the run's own timestamps (ms, wall clock). */
  parts?: SpindleParts;
}

/** Consecutive stretches of one Spindle run; they add up to its `ms`. */
interface SpindleParts {
  /** Caller → the run's object has created the run and queued its task (auth, resolve, create). */
  toQueued: number;
  /** Task queued → started (outbox → task queue → dispatch Queue → consumer → startTask). */
  queuedToStarted: number;
  /** Task started → run finished (execute on the example worker, completeTask, end of run). */
  startedToFinished: number;
  /** Run finished → `waitForRun` returned to the caller. */
  finishedToObserved: number;
}

async function runOnce(env: Env, system: System): Promise<Sample> {
  const t0 = Date.now();
  switch (system) {
    case "floor": {
      const id = crypto.randomUUID();
      await env.FLOOR_QUEUE.send({ id, Message: INPUT.Message }, { contentType: "json" });
      const t1 = Date.now();
      check(system, await sink(env).waitFor(id, RUN_TIMEOUT_MS));
      return { ms: Date.now() - t0, triggerMs: t1 - t0 };
    }
    case "object": {
      // A new name each time: a new object, created by this very call (FloorSink's constructor makes
      // its table), its row written in one commit.
      const id = crypto.randomUUID();
      await env.SINK.getByName(`object:${id}`).record(id, JSON.stringify({ TransformedMessage: INPUT.Message.toLowerCase() }));
      const t1 = Date.now();
      return { ms: t1 - t0, triggerMs: t1 - t0 };
    }
    case "workflows": {
      const instance = await env.WF.create({ params: { Message: INPUT.Message } });
      const t1 = Date.now();
      check(system, await sink(env).waitFor(instance.id, RUN_TIMEOUT_MS));
      return { ms: Date.now() - t0, triggerMs: t1 - t0 };
    }
    case "spindle": {
      const token = env.SPINDLE_API_TOKEN ?? "";
      const triggered = await env.SPINDLE.trigger(token, { workflow: "simple", input: INPUT });
      if (!triggered.ok) throw new Error(`spindle trigger: ${triggered.error.code}: ${triggered.error.message}`);
      const t1 = Date.now();
      let run: RunView;
      for (;;) {
        const ended = await env.SPINDLE.waitForRun(
          token,
          triggered.value.runId,
          Math.min(SPINDLE_WAIT_MS, Math.max(1, t0 + RUN_TIMEOUT_MS - Date.now())),
        );
        if (!ended.ok) throw new Error(`spindle waitForRun: ${ended.error.code}: ${ended.error.message}`);
        run = ended.value;
        if (TERMINAL.has(run.status) || Date.now() - t0 >= RUN_TIMEOUT_MS) break;
      }
      const t2 = Date.now();
      if (run.status !== "COMPLETED") {
        throw new Error(`spindle run ${run.runId} is ${run.status}${run.error ? `: ${run.error.message}` : ""}`);
      }
      check(system, JSON.stringify(run.output));
      const task = run.tasks[0];
      const at = (iso: string | null | undefined) => (iso ? Date.parse(iso) : NaN);
      return {
        ms: t2 - t0,
        triggerMs: t1 - t0,
        parts: {
          toQueued: at(task?.queuedAt) - t0,
          queuedToStarted: at(task?.startedAt) - at(task?.queuedAt),
          startedToFinished: at(run.finishedAt) - at(task?.startedAt),
          finishedToObserved: t2 - at(run.finishedAt),
        },
      };
    }
  }
}

function check(system: System, output: string): void {
  if (output !== EXPECTED) throw new Error(`${system}: expected ${EXPECTED}, got ${output}`);
}

/** Runs `n` jobs with at most `concurrency` in flight; errors are counted, not thrown. */
async function runMany(env: Env, system: System, n: number, concurrency: number) {
  const samples: Sample[] = [];
  const errors: string[] = [];
  let next = 0;
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) {
        next++;
        try {
          samples.push(await runOnce(env, system));
        } catch (err) {
          errors.push(String((err as Error)?.message ?? err));
        }
      }
    }),
  );
  return { elapsedMs: Date.now() - t0, samples, errors };
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

function int(url: URL, name: string, fallback: number, max: number): number {
  const raw = url.searchParams.get(name);
  const value = raw === null ? fallback : Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > max) throw new Error(`?${name} must be an integer from 1 to ${max}`);
  return value;
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    try {
      if (url.pathname === "/") return Response.json({ ok: true, systems: SYSTEMS });
      if (url.pathname.startsWith("/durable/")) return Response.json(await durableBench(env, url));
      if (url.pathname === "/flow") {
        const variant = url.searchParams.get("variant") as FlowVariant;
        if (!FLOW_VARIANTS.includes(variant)) throw new Error(`?variant must be one of ${FLOW_VARIANTS.join(", ")}`);
        return Response.json(await flowBench(env, variant, int(url, "n", 1_000, 10_000), int(url, "keys", 100, 10_000)));
      }
      if (url.pathname === "/dashboard/seed") {
        const expect = Number(url.searchParams.get("expect") ?? "0");
        return Response.json(await seedRuns(env, int(url, "runs", 10_000, 100_000), Number.isInteger(expect) ? expect : 0));
      }
      if (url.pathname === "/dashboard/measure") return Response.json(await measureRunsPage(env, int(url, "samples", 20, 1_000)));
      const system = url.searchParams.get("system") as System;
      if (!SYSTEMS.includes(system)) throw new Error(`?system must be one of ${SYSTEMS.join(", ")}`);
      if (system === "spindle" && !env.SPINDLE_API_TOKEN) throw new Error("SPINDLE_API_TOKEN is not set (bench/.dev.vars)");
      if (url.pathname === "/latency") {
        // One after another: each sample is the latency of a run with nothing else in flight.
        const n = int(url, "n", 20, 1_000);
        const result = await runMany(env, system, n, 1);
        return Response.json({ system, n, ...result });
      }
      if (url.pathname === "/throughput") {
        const n = int(url, "n", 1_000, 10_000);
        const concurrency = int(url, "concurrency", n, 10_000);
        const result = await runMany(env, system, n, concurrency);
        return Response.json({ system, n, concurrency, ...result });
      }
      return Response.json({ error: `no route ${url.pathname}` }, { status: 404 });
    } catch (err) {
      return Response.json({ error: String((err as Error)?.stack ?? err) }, { status: 500 });
    }
  },

  /** The floor's consumer: one row per message, written to the sink (one write RPC per message). */
  async queue(batch, env) {
    await Promise.all(
      batch.messages.map((m) =>
        sink(env).record(m.body.id, JSON.stringify({ TransformedMessage: m.body.Message.toLowerCase() })),
      ),
    );
  },
} satisfies ExportedHandler<Env, FloorMessage>;
