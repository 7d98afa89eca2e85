import type { Assignment, Reply, TaskOutcome } from "@spindle/worker-sdk/protocol";
import { errorData } from "../core/errors";
import { registryName, runObjectName, taskQueueName, workerBindingName } from "../core/names";
import type { Env } from "../env";
import { HEARTBEAT_INTERVAL_MS } from "../run/liveness";
import type { DispatchRef, StartReply } from "../run/workflow-run";
import type { DispatchMessage } from "./messages";
import { executeOverHttps, WorkerCallError, type HttpsEndpoint } from "./https-worker";
import type { WorkerService } from "./worker-service";

const COMPLETE_RETRY_BASE_MS = 200;
const COMPLETE_RETRY_MAX_MS = 5_000;

export type RunStub = {
  completeTask: (ref: DispatchRef, outcome: TaskOutcome) => Promise<Reply<{ accepted: boolean }>>;
  heartbeat: (ref: DispatchRef) => Promise<void>;
};

/**
 * The dispatch queues' consumer. For each message it asks the run to start the attempt (a duplicate
 * or stale message is refused there), acknowledges the message, and then runs the attempt on the
 * worker in the background: the engine is configured with `queue_consumer_no_wait_for_wait_until`,
 * so a long task does not hold up the batches behind it. If starting fails (the run's object is
 * unavailable) the message is retried by the queue.
 *
 * From the start until the outcome is recorded, the consumer sends the run a heartbeat every
 * HEARTBEAT_INTERVAL_MS: it is the one that will record the outcome, so when it dies the run stops
 * hearing from the claim and dispatches it again (`run/liveness.ts`).
 */
export async function consumeDispatch(batch: MessageBatch<DispatchMessage>, env: Env, ctx: ExecutionContext): Promise<void> {
  await Promise.all(
    batch.messages.map(async (message) => {
      const m = message.body;
      const ref: DispatchRef = { task: m.task, attempt: m.attempt, invocation: m.invocation };
      // A stub whose call threw may stay broken (its object was reset): each retry takes a new one.
      const runObject = () => env.RUNS.getByName(runObjectName(m.tenant, m.runId));
      const run = runObject();
      const queue = env.TASK_QUEUES.getByName(taskQueueName(m.tenant, m.worker, m.pool, m.shard ?? 0));
      let started: Reply<StartReply>;
      try {
        // The stub's mapped return type loses the union's discriminant; the value is ours.
        started = (await run.startTask(ref, message.id)) as Reply<StartReply>;
      } catch (err) {
        console.error(`dispatch ${m.key}: could not start, retrying`, err);
        message.retry({ delaySeconds: 1 });
        return;
      }
      message.ack();
      const start = started.ok ? started.value : null;
      if (!start || start.kind === "stale") {
        // A duplicate of a running attempt holds nothing of its own: its lease is the running one's.
        if (!start || start.release) ctx.waitUntil(queue.release(m.key));
        return;
      }
      ctx.waitUntil(runClaim(env, m, start.assignment, runObject, ctx));
    }),
  );
}

/** The dispatch queue of a slot pool: durable tasks have their own. */
export const dispatchQueueOf = (env: Env, pool: DispatchMessage["pool"]): Queue<DispatchMessage> => (pool === "durable" ? env.DISPATCH_DURABLE : env.DISPATCH);

/**
 * Runs a started claim on its worker and records its outcome: what the dispatch consumer does for a
 * message, and what a run object does for a dispatch its task queue handed it directly. `run` is
 * the claim's run (a new stub per call, or the object itself). Heartbeats go to the run from the
 * start until the outcome is recorded; the slot is given back the moment the worker answers.
 */
export async function runClaim(env: Env, m: DispatchMessage, assignment: Assignment, run: () => RunStub, ctx: Pick<ExecutionContext, "waitUntil">): Promise<void> {
  const ref: DispatchRef = { task: m.task, attempt: m.attempt, invocation: m.invocation };
  const stopBeating = heartbeat(run, ref);
  try {
    let outcome: TaskOutcome;
    try {
      outcome = await execute(env, m.tenant, m.worker, assignment, ctx);
    } finally {
      // The worker is free the moment it answers: give the slot back while the run records
      // the outcome (a slow parent or index must not hold the pool).
      ctx.waitUntil(env.TASK_QUEUES.getByName(taskQueueName(m.tenant, m.worker, m.pool, m.shard ?? 0)).release(m.key));
    }
    await recordOutcome(run, ref, outcome);
  } finally {
    stopBeating();
  }
}

/**
 * Delivers the attempt to its worker: over its service binding when the engine has one, else over
 * signed HTTPS to the URL it was registered with. Either way the answer is the worker's outcome,
 * and a worker that could not be reached or crashed fails the attempt as retryable.
 */
async function execute(env: Env, tenant: string, worker: string, assignment: Assignment, ctx: Pick<ExecutionContext, "waitUntil">): Promise<TaskOutcome> {
  const binding = env[workerBindingName(worker) as `WORKER_${string}`] as WorkerService | undefined;
  if (binding) {
    try {
      return await binding.execute(assignment);
    } catch (err) {
      // The worker threw outside the task (it crashed, ran out of CPU, was redeployed mid-call).
      return crashed(worker, err);
    }
  }
  const endpoint = await httpsEndpoint(env, tenant, worker);
  if (!endpoint) {
    return unreachable(`the engine has no service binding ${workerBindingName(worker)} and no URL for worker '${worker}'`);
  }
  try {
    return await executeOverHttps(env, tenant, endpoint, assignment);
  } catch (err) {
    if (err instanceof WorkerCallError) {
      endpoints.delete(`${tenant}\u0000${worker}`);
      ctx.waitUntil(registry(env, tenant).reportFailure(worker, err.kind, err.message).catch(() => undefined));
      return unreachable(err.message);
    }
    return crashed(worker, err);
  }
}

const unreachable = (message: string): TaskOutcome => ({
  status: "failed",
  error: errorData("worker.unreachable", "WorkerUnreachableError", message, { retryable: true }),
  logs: [],
});

function crashed(worker: string, err: unknown): TaskOutcome {
  const e = err instanceof Error ? err : new Error(String(err));
  return {
    status: "failed",
    error: errorData("worker.crashed", e.name, `worker '${worker}' failed while running the task: ${e.message}`, { retryable: true }),
    logs: [],
  };
}

/** Where HTTPS workers are, as the registry last said (kept briefly: one registry call per worker, not per task). */
const endpoints = new Map<string, { endpoint: HttpsEndpoint | null; at: number }>();
const ENDPOINT_CACHE_MS = 10_000;

const registry = (env: Env, tenant: string) => env.REGISTRY.getByName(registryName(tenant));

async function httpsEndpoint(env: Env, tenant: string, worker: string): Promise<HttpsEndpoint | null> {
  const key = `${tenant}\u0000${worker}`;
  const cached = endpoints.get(key);
  if (cached && Date.now() - cached.at < ENDPOINT_CACHE_MS) return cached.endpoint;
  const endpoint = await registry(env, tenant).endpoint(worker);
  endpoints.set(key, { endpoint, at: Date.now() });
  return endpoint;
}

/** Tells the run every HEARTBEAT_INTERVAL_MS that this claim still has a consumer; returns the stop. */
function heartbeat(run: () => RunStub, ref: DispatchRef): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const beat = () => {
    timer = setTimeout(() => {
      // A heartbeat that fails is just missed; the next one may land.
      run().heartbeat(ref).catch(() => undefined);
      if (!stopped) beat();
    }, HEARTBEAT_INTERVAL_MS);
  };
  beat();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/**
 * Records the outcome, trying again (backing off up to COMPLETE_RETRY_MAX_MS) for as long as it
 * takes: an outcome is never dropped. It stops once the run has answered, whether it accepted the
 * outcome or says the claim is no longer current (superseded, or the run ended).
 */
async function recordOutcome(run: () => RunStub, ref: DispatchRef, outcome: TaskOutcome): Promise<void> {
  for (let tries = 0; ; tries++) {
    try {
      const reply = await run().completeTask(ref, outcome);
      if (!reply.ok) console.error(`the outcome of ${ref.task}#${ref.attempt}.${ref.invocation} has no run to go to: ${reply.error.message}`);
      return;
    } catch (err) {
      console.error(`could not record the outcome of ${ref.task}#${ref.attempt}.${ref.invocation} (try ${tries + 1}), retrying`, err);
      await new Promise((r) => setTimeout(r, Math.min(COMPLETE_RETRY_MAX_MS, COMPLETE_RETRY_BASE_MS * 2 ** tries)));
    }
  }
}
