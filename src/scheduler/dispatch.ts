import type { Reply, TaskOutcome } from "@spindle/worker-sdk/protocol";
import { errorData } from "../core/errors";
import { runObjectName, taskQueueName, workerBindingName } from "../core/names";
import type { Env } from "../env";
import { HEARTBEAT_INTERVAL_MS } from "../run/liveness";
import type { DispatchRef, StartReply } from "../run/workflow-run";
import type { DispatchMessage } from "./messages";
import type { WorkerService } from "./worker-service";

const COMPLETE_RETRY_BASE_MS = 200;
const COMPLETE_RETRY_MAX_MS = 5_000;

type RunStub = {
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
      const assignment = start.assignment;
      ctx.waitUntil(
        (async () => {
          const stopBeating = heartbeat(runObject, ref);
          try {
            let outcome: TaskOutcome;
            try {
              outcome = await execute(env, m.worker, assignment);
            } finally {
              // The worker is free the moment it answers: give the slot back while the run records
              // the outcome (a slow parent or index must not hold the pool).
              ctx.waitUntil(queue.release(m.key));
            }
            await recordOutcome(runObject, ref, outcome);
          } finally {
            stopBeating();
          }
        })(),
      );
    }),
  );
}

async function execute(env: Env, worker: string, assignment: Parameters<WorkerService["execute"]>[0]): Promise<TaskOutcome> {
  const binding = env[workerBindingName(worker) as `WORKER_${string}`] as WorkerService | undefined;
  if (!binding) {
    return {
      status: "failed",
      error: errorData("worker.unreachable", "WorkerUnreachableError", `the engine has no service binding ${workerBindingName(worker)} for worker '${worker}'`, {
        retryable: true,
      }),
      logs: [],
    };
  }
  try {
    return await binding.execute(assignment);
  } catch (err) {
    // The worker threw outside the task (it crashed, ran out of CPU, was redeployed mid-call).
    const e = err instanceof Error ? err : new Error(String(err));
    return {
      status: "failed",
      error: errorData("worker.crashed", e.name, `worker '${worker}' failed while running the task: ${e.message}`, { retryable: true }),
      logs: [],
    };
  }
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
