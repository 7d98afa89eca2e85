import type { WorkerEntrypoint } from "cloudflare:workers";
import type { EngineClient } from "./client.js";
import { SpindleError } from "./errors.js";
import { executeAssignment } from "./execute.js";
import { workers } from "./runtime.js";
import type { Assignment, TaskOutcome, WorkerDescription, WorkerRegistration } from "./protocol.js";
import type { Runnable } from "./runnable.js";

export const SDK_VERSION = "0.1.0";
export const DEFAULT_SLOTS = 100;
export const DEFAULT_DURABLE_SLOTS = 1_000;

export interface WorkerOptions {
  /** The worker's name; the engine reaches it through the service binding `WORKER_<NAME>` (or at the URL it was registered with). */
  name: string;
  /** Regular tasks this worker runs at once (default 100). */
  slots?: number;
  /** Durable tasks this worker runs at once, a separate pool (default 1000). */
  durableSlots?: number;
  /**
   * Task queues per pool (default 1, at most 16): each takes a share of the slots and the runs
   * hashed to it, so no one object is on the path of every task of a busy pool. Changing it
   * strands the tasks already queued in a queue it no longer has: change it while the pool is idle.
   */
  queueShards?: number;
  workflows: Runnable<any, any>[];
}

/** The class `spindle.worker()` returns: export it (as default or by name) from your worker. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the worker's own Env, whatever it is
export type SpindleWorkerClass = new (ctx: ExecutionContext, env: any) => WorkerEntrypoint & {
  describe(): Promise<WorkerDescription>;
  execute(assignment: Assignment): Promise<TaskOutcome>;
};

/** Checks a worker's options and builds what it registers, so a bad declaration fails when the worker loads. */
export function buildWorker(options: WorkerOptions): { registration: WorkerRegistration; runnables: Map<string, Runnable<unknown, unknown>> } {
  const runnables = new Map<string, Runnable<unknown, unknown>>();
  for (const r of options.workflows) {
    if (runnables.has(r.name)) throw new SpindleError("config.invalid", `worker '${options.name}' lists '${r.name}' twice`);
    runnables.set(r.name, r);
  }
  const registration: WorkerRegistration = {
    name: options.name,
    slots: options.slots ?? DEFAULT_SLOTS,
    durableSlots: options.durableSlots ?? DEFAULT_DURABLE_SLOTS,
    ...(options.queueShards !== undefined ? { queueShards: options.queueShards } : {}),
    workflows: options.workflows.map((w) => w.definition()),
    sdkVersion: SDK_VERSION,
  };
  return { registration, runnables };
}

export function createWorker(
  options: WorkerOptions,
  client: () => EngineClient,
  tokenHash: () => Promise<string>,
): SpindleWorkerClass {
  const { registration, runnables } = buildWorker(options);
  if (!workers) {
    throw new SpindleError("config.unsupported", "spindle.worker() builds a Workers entrypoint and needs the Workers runtime; elsewhere use spindle.serve()");
  }

  return class SpindleWorker extends workers.WorkerEntrypoint {
    /** The engine asks this to learn the worker's workflows (no manual registration step). */
    async describe(): Promise<WorkerDescription> {
      return { registration, tokenHash: await tokenHash() };
    }

    /** The engine dispatches a task attempt here. */
    async execute(assignment: Assignment): Promise<TaskOutcome> {
      return executeAssignment(runnables, assignment, client);
    }

    override async fetch(): Promise<Response> {
      return Response.json({ worker: registration.name, workflows: registration.workflows.map((w) => w.name) });
    }
  };
}
