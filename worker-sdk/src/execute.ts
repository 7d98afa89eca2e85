import type { EngineClient } from "./client.js";
import { Context } from "./context.js";
import { DurableContext, Suspension } from "./durable-context.js";
import { checkPayloadSize, DEFAULT_MAX_PAYLOAD_BYTES, NonRetryableError, SpindleError, TaskCancelledError, TaskTimeoutError, toErrorData } from "./errors.js";
import type { Assignment, TaskOutcome, WatchResult } from "./protocol.js";
import type { Runnable } from "./runnable.js";
import { currentTask } from "./scope.js";

/** A task that runs longer than this starts watching its attempt for cancellation. */
export const WATCH_DELAY_MS = 200;
const WATCH_RETRY_MS = 1_000;

/**
 * Runs one dispatched attempt (or durable invocation): parses the input, gives the function its
 * context, and turns what happens into an outcome. The abort signal fires at the execution timeout
 * and when the engine says the run was cancelled or the attempt superseded; either way the attempt
 * ends at once, even if the function ignores the signal (and a durable task's checkpoint calls
 * throw). A durable task that reaches a wait ends its invocation `suspended`.
 */
export async function executeAssignment(
  runnables: ReadonlyMap<string, Runnable<unknown, unknown>>,
  assignment: Assignment,
  client: () => EngineClient,
): Promise<TaskOutcome> {
  const runnable = runnables.get(assignment.workflowName);
  const impl = runnable?.implementation(assignment.taskName);
  if (!runnable || !impl) {
    const error = new NonRetryableError(`this worker has no task '${assignment.taskName}' in '${assignment.workflowName}'`);
    return { status: "failed", error: { ...toErrorData(error), code: "task.unknown" }, logs: [] };
  }
  const controller = new AbortController();
  const remaining = Math.max(0, assignment.startedAt + assignment.executionTimeoutMs - Date.now());
  const timeout = setTimeout(
    () => controller.abort(new TaskTimeoutError(`task '${assignment.taskName}' exceeded its execution timeout of ${assignment.executionTimeoutMs}ms`)),
    remaining,
  );
  const stopWatching = watchAttempt(client, assignment, controller);
  const suspension = impl.definition.kind === "durable" ? new Suspension() : null;
  let ctx: Context<unknown> | undefined;
  try {
    const input = await runnable.parseInput(assignment.input);
    ctx = suspension
      ? new DurableContext(assignment, input, controller.signal, client, suspension)
      : new Context(assignment, input, controller.signal, client);
    const context = ctx;
    const work = currentTask.run(context, () => Promise.resolve().then(() => impl.fn(input, context as never)));
    const ended = await untilAborted(
      Promise.race([work.then((output: unknown) => ({ done: true as const, output })), suspension ? suspension.requested.then(() => ({ done: false as const })) : new Promise<never>(() => {})]),
      controller.signal,
    );
    if (suspension) {
      // Let the calls already on their way to the engine land, so every wait is recorded.
      await untilAborted(suspension.settle(), controller.signal);
      if (suspension.fatal) throw suspension.fatal;
      // Returned is returned: a wait it started and did not await does not hold the task.
      if (!ended.done) return { status: "suspended", waitingOn: [...suspension.waitingOn], logs: ctx.logs };
      // A task that returns without making every recorded call again has left its log's path.
      const diverged = await (ctx as DurableContext<unknown>).divergence();
      if (diverged) throw diverged;
    }
    const output = serializable(ended.done ? ended.output : null);
    // Checked here, before it is sent; the engine checks again and fails the task the same way.
    checkPayloadSize("output", output, assignment.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES);
    return { status: "completed", output, logs: ctx.logs };
  } catch (err) {
    return { status: "failed", error: toErrorData(suspension?.fatal ?? err), logs: ctx?.logs ?? [] };
  } finally {
    // The stream is complete before the run can end: its chunks land before the outcome.
    if (ctx) await untilAborted(ctx.flushed(), controller.signal).catch(() => {});
    clearTimeout(timeout);
    stopWatching();
  }
}

function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}

/** Outputs are stored as JSON; refuse what JSON cannot hold instead of storing something else. */
function serializable(output: unknown): unknown {
  if (output === undefined) return null;
  try {
    return JSON.parse(JSON.stringify(output)) as unknown;
  } catch (err) {
    throw new NonRetryableError(`the task's output is not JSON-serializable: ${(err as Error).message}`);
  }
}

/**
 * Watches the attempt on the engine once the task has run for WATCH_DELAY_MS, so a short task pays
 * nothing; aborts the signal when the run is cancelled or the engine times the attempt out.
 */
function watchAttempt(client: () => EngineClient, a: Assignment, controller: AbortController): () => void {
  let stopped = false;
  const loop = async () => {
    while (!stopped) {
      let result: WatchResult;
      try {
        result = await client().watchTask(a.runId, { task: a.taskName, attempt: a.attempt, invocation: a.invocation });
      } catch (err) {
        if ((err as { code?: string }).code?.startsWith("config.")) return; // no engine to watch (HTTPS mode)
        await new Promise((r) => setTimeout(r, WATCH_RETRY_MS));
        continue;
      }
      if (stopped) return;
      if (result.reason === "cancelled") controller.abort(new TaskCancelledError());
      else if (result.reason === "timeout") {
        controller.abort(new TaskTimeoutError(`task '${a.taskName}' exceeded its execution timeout of ${a.executionTimeoutMs}ms`));
      } else if (result.reason === "superseded") {
        // Another dispatch of the task runs now: this one may act no more (a durable context refuses its calls).
        controller.abort(new SpindleError("task.superseded", `attempt ${a.attempt} invocation ${a.invocation} of task '${a.taskName}' was superseded`));
      }
      if (result.reason !== "pending") return;
    }
  };
  const timer = setTimeout(() => void loop(), WATCH_DELAY_MS);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
