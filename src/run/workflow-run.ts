import { DurableObject } from "cloudflare:workers";
import type {
  Assignment,
  ErrorData,
  ParentLink,
  Reply,
  RunView,
  TaskDefinition,
  TaskOutcome,
  TaskView,
  TriggerResult,
  WatchResult,
  WorkflowDefinition,
} from "@spindle/worker-sdk/protocol";
import { clock } from "../core/clock";
import { descendants, isTerminal } from "../core/dag";
import { errorData, SpindleError, toErrorData } from "../core/errors";
import { ulid } from "../core/ids";
import { fnv1a } from "../core/ids";
import { runIndexName, runObjectName, RUN_INDEX_SHARDS, taskQueueName, type Pool } from "../core/names";
import { decideRetry } from "../core/retry";
import { planRun, runOutput } from "../core/run-machine";
import type { Env } from "../env";
import { dispatchKey, type EnqueueItem } from "../scheduler/messages";
import { migrate } from "../storage/migrate";
import { Outbox, type OutboxMessage } from "./outbox";
import { deliver, type ChildEnded, type OutboxPayloads } from "./outbox-delivery";
import type { IndexEntry } from "./run-index";
import { RunStore, type RunRecord } from "./run-store";
import { buildRunView } from "./run-view";
import { RUN_MIGRATIONS } from "./schema";
import { TaskStore, type TaskRecord } from "./task-store";
import { TimerStore, type Timer } from "./timer-store";

/** How long past its execution timeout a slot stays leased before the task queue takes it back. */
export const LEASE_GRACE_MS = 30_000;
/** A task's watch on its attempt returns after this long with `pending`, and the SDK watches again. */
export const WATCH_MAX_MS = 60_000;

export interface RunInit {
  tenant: string;
  runId: string;
  definition: WorkflowDefinition;
  worker: string;
  input: unknown;
  additionalMetadata: Record<string, string>;
  priority: number;
  parent: ParentLink | null;
}

export interface DispatchRef {
  task: string;
  attempt: number;
  invocation: number;
}

export type StartReply = { kind: "started"; assignment: Assignment } | { kind: "stale"; reason: string };

const ok = <T>(value: T): Reply<T> => ({ ok: true, value });
const fail = (error: SpindleError): Reply<never> => ({ ok: false, error: error.toData() });

/**
 * One run: its tasks, their attempts, outputs, logs and timers, in this object's SQLite. Every
 * state change of the run happens here (one writer per run). Each transition checks the attempt and
 * invocation it is about, so a duplicate delivery or a late result changes nothing.
 */
export class WorkflowRun extends DurableObject<Env> {
  private readonly runs: RunStore;
  private readonly tasks: TaskStore;
  private readonly timers: TimerStore;
  private readonly outbox: Outbox;
  private readonly endWaiters = new Set<() => void>();
  private readonly watchers = new Map<string, Set<(result: WatchResult) => void>>();
  /** Watch results decided inside a transaction, delivered once it has committed. */
  private pendingWatch: { key: string; result: WatchResult }[] = [];
  private runEnded = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.runs = new RunStore(ctx.storage.sql);
    this.tasks = new TaskStore(ctx.storage.sql);
    this.timers = new TimerStore(ctx.storage);
    this.outbox = new Outbox(ctx.storage.sql);
    void ctx.blockConcurrencyWhile(async () => {
      migrate(ctx.storage, RUN_MIGRATIONS);
    });
  }

  // -------------------------------------------------------------------------------------------
  // RPC
  // -------------------------------------------------------------------------------------------

  /** Creates the run (idempotent: a second create with the same id returns the first). */
  async create(init: RunInit): Promise<Reply<TriggerResult>> {
    const existing = this.runs.get();
    if (existing) return ok({ runId: existing.runId, status: existing.status });
    const now = clock.now();
    this.ctx.storage.transactionSync(() => {
      this.runs.insert({
        runId: init.runId,
        tenant: init.tenant,
        workflow: init.definition.name,
        worker: init.worker,
        definition: init.definition,
        input: init.input,
        metadata: init.additionalMetadata,
        priority: init.priority,
        createdAt: now,
        parent: init.parent,
      });
      init.definition.tasks.forEach((t, i) => this.tasks.insert(t.name, i, ulid(now)));
      const run = this.runs.get()!;
      this.reportToIndex(run, now);
      if (init.parent) {
        this.outbox.add(
          "link_child",
          runObjectName(init.tenant, init.parent.runId),
          { runId: init.runId, task: init.parent.taskName, position: init.parent.index } satisfies OutboxPayloads["link_child"],
          now,
        );
      }
      this.advance(run, now);
    });
    await this.afterWrite();
    const run = this.runs.get()!;
    return ok({ runId: run.runId, status: run.status });
  }

  /** The consumer is about to deliver a dispatch: start the attempt, or say why not. */
  async startTask(ref: DispatchRef): Promise<Reply<StartReply>> {
    const run = this.runs.get();
    if (!run) return fail(new SpindleError("run.not_found", "run not found"));
    const task = this.tasks.get(ref.task);
    const stale = this.staleness(run, task, ref);
    if (stale) return ok({ kind: "stale", reason: stale });
    const now = clock.now();
    const def = this.taskDef(run, ref.task);
    this.ctx.storage.transactionSync(() => {
      this.tasks.start(ref.task, ref.attempt, now);
      this.timers.clear("schedule_timeout", ref.task, ref.attempt);
      this.timers.set("exec_timeout", ref.task, ref.attempt, now + def.executionTimeoutMs, String(ref.invocation));
      if (this.runs.markStarted(now)) this.reportToIndex(this.runs.get()!, now);
    });
    await this.afterWrite();
    return ok({ kind: "started", assignment: this.assignment(this.runs.get()!, this.tasks.get(ref.task)!, def) });
  }

  /** The worker answered. Recorded once, and only for the attempt that is still running. */
  async completeTask(ref: DispatchRef, outcome: TaskOutcome): Promise<Reply<{ accepted: boolean }>> {
    const run = this.runs.get();
    if (!run) return fail(new SpindleError("run.not_found", "run not found"));
    const task = this.tasks.get(ref.task);
    if (!task) return ok({ accepted: false });
    // Logs of a late attempt are still worth keeping: they say what the attempt did.
    this.tasks.appendLogs(ref.task, ref.attempt, ref.invocation, outcome.logs);
    if (
      task.attempt !== ref.attempt ||
      task.invocation !== ref.invocation ||
      task.status !== "RUNNING" ||
      isTerminal(run.status)
    ) {
      return ok({ accepted: false });
    }
    const now = clock.now();
    this.ctx.storage.transactionSync(() => {
      this.timers.clear("exec_timeout", ref.task, ref.attempt);
      if (outcome.status === "completed") {
        this.tasks.finish(ref.task, ref.attempt, "COMPLETED", now, { output: outcome.output ?? null });
        this.advance(run, now);
      } else if (outcome.status === "failed") {
        this.failAttempt(run, task, outcome.error, now);
      } else {
        throw new SpindleError("task.invalid_outcome", `task '${ref.task}' is not durable and cannot suspend`);
      }
      this.pendingWatch.push({ key: watchKey(ref), result: { reason: "ended" } });
    });
    await this.afterWrite();
    return ok({ accepted: true });
  }

  async cancel(): Promise<Reply<RunView>> {
    const run = this.runs.get();
    if (!run) return fail(new SpindleError("run.not_found", "run not found"));
    if (isTerminal(run.status)) return ok(this.view(run));
    const now = clock.now();
    const cancelled = errorData("run.cancelled", "CancelledError", "the run was cancelled");
    this.ctx.storage.transactionSync(() => {
      for (const task of this.tasks.all()) {
        if (isTerminal(task.status)) continue;
        if (task.status === "QUEUED") this.dequeue(run, task);
        if (task.status === "PENDING") this.tasks.settle(task.name, "CANCELLED", now, cancelled);
        else this.tasks.finish(task.name, task.attempt, "CANCELLED", now, { error: cancelled });
        this.timers.clearTask(task.name);
        this.pendingWatch.push({ key: watchKey(task), result: { reason: "cancelled" } });
      }
      for (const child of this.runs.children()) this.outbox.add("cancel_run", runObjectName(run.tenant, child), {}, now);
      this.endRun(run, "CANCELLED", now);
    });
    await this.afterWrite();
    return ok(this.view(this.runs.get()!));
  }

  /** Re-runs the failed and cancelled tasks of a finished run, and everything downstream of them. */
  async replay(): Promise<Reply<RunView>> {
    const run = this.runs.get();
    if (!run) return fail(new SpindleError("run.not_found", "run not found"));
    if (!isTerminal(run.status)) {
      return fail(new SpindleError("run.conflict", `run is ${run.status}; only a finished run can be replayed`));
    }
    const def = run.definition;
    const redo = this.tasks
      .all()
      .filter((t) => !this.taskDef(run, t.name).role && (t.status === "FAILED" || t.status === "CANCELLED"))
      .map((t) => t.name);
    if (redo.length === 0) {
      return fail(new SpindleError("run.conflict", "nothing to replay: the run has no failed or cancelled tasks"));
    }
    const now = clock.now();
    this.ctx.storage.transactionSync(() => {
      const targets = new Set([...redo, ...descendants(def, redo), ...def.tasks.filter((t) => t.role).map((t) => t.name)]);
      for (const name of targets) {
        this.timers.clearTask(name);
        this.tasks.reset(name);
      }
      this.runs.reopen();
      this.runEnded = false;
      const reopened = this.runs.get()!;
      this.reportToIndex(reopened, now);
      this.advance(reopened, now);
    });
    await this.afterWrite();
    return ok(this.view(this.runs.get()!));
  }

  async get(): Promise<Reply<RunView>> {
    const run = this.runs.get();
    if (!run) return fail(new SpindleError("run.not_found", "run not found"));
    return ok(this.view(run));
  }

  /** The run once it has ended, or as it stands after `waitMs`. */
  async waitForEnd(waitMs: number): Promise<Reply<RunView>> {
    const run = this.runs.get();
    if (!run) return fail(new SpindleError("run.not_found", "run not found"));
    if (!isTerminal(run.status) && waitMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, waitMs);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.endWaiters.add(done);
      });
    }
    return ok(this.view(this.runs.get()!));
  }

  /** Resolves when the attempt stops running (cancelled, timed out, ended) or after WATCH_MAX_MS. */
  async watchTask(ref: DispatchRef): Promise<WatchResult> {
    const run = this.runs.get();
    const task = this.tasks.get(ref.task);
    if (!run || !task || task.attempt !== ref.attempt || task.invocation !== ref.invocation) return { reason: "superseded" };
    if (task.status !== "RUNNING") return { reason: task.status === "CANCELLED" ? "cancelled" : "ended" };
    const key = watchKey(ref);
    return new Promise<WatchResult>((resolve) => {
      const set = this.watchers.get(key) ?? new Set();
      this.watchers.set(key, set);
      const timer = setTimeout(() => finish({ reason: "pending" }), WATCH_MAX_MS);
      const finish = (result: WatchResult) => {
        clearTimeout(timer);
        set.delete(finish);
        resolve(result);
      };
      set.add(finish);
    });
  }

  /** Child runs report themselves here so the run shows them and a cancel reaches them. */
  async linkChildren(children: OutboxPayloads["link_child"][]): Promise<void> {
    const run = this.runs.get();
    if (!run) return;
    const now = clock.now();
    this.ctx.storage.transactionSync(() => {
      for (const c of children) {
        this.runs.addChild(c.runId, c.task, c.position);
        if (run.status === "CANCELLED") this.outbox.add("cancel_run", runObjectName(run.tenant, c.runId), {}, now);
      }
    });
    await this.afterWrite();
  }

  async childEnded(_report: ChildEnded): Promise<void> {
    // Regular tasks wait for their children by long-polling the child; durable tasks build on this.
  }

  override async alarm(): Promise<void> {
    const now = clock.now();
    const horizon = this.timers.alarmFired(now);
    const run = this.runs.get();
    if (!run) return;
    this.ctx.storage.transactionSync(() => {
      for (const timer of this.timers.due(horizon)) {
        this.timers.clear(timer.kind, timer.task, timer.attempt);
        this.fire(this.runs.get()!, timer, now);
      }
    });
    await this.afterWrite();
  }

  // -------------------------------------------------------------------------------------------
  // Transitions (called inside a transaction)
  // -------------------------------------------------------------------------------------------

  private fire(run: RunRecord, timer: Timer, now: number): void {
    if (timer.kind === "outbox") return; // the flush after this transaction sends what is due
    if (isTerminal(run.status)) return;
    const task = this.tasks.get(timer.task);
    if (!task || task.attempt !== timer.attempt) return;
    switch (timer.kind) {
      case "retry":
        if (task.status === "QUEUED") this.dispatch(run, task.name, task.attempt, task.invocation, now);
        return;
      case "exec_timeout": {
        if (task.status !== "RUNNING" || String(task.invocation) !== timer.data) return;
        const def = this.taskDef(run, task.name);
        const error = errorData(
          "task.timeout",
          "TimeoutError",
          `task '${task.name}' exceeded its execution timeout of ${formatMs(def.executionTimeoutMs)}`,
          { retryable: true },
        );
        this.pendingWatch.push({ key: watchKey(task), result: { reason: "timeout" } });
        this.failAttempt(run, task, error, now);
        return;
      }
      case "schedule_timeout": {
        if (task.status !== "QUEUED" || String(task.invocation) !== (timer.data ?? "0")) return;
        const def = this.taskDef(run, task.name);
        this.dequeue(run, task);
        const error = errorData(
          "task.schedule_timeout",
          "ScheduleTimeoutError",
          `task '${task.name}' waited longer than its schedule timeout of ${formatMs(def.scheduleTimeoutMs)} to start` +
            (task.queuedReason ? ` (${task.queuedReason})` : ""),
        );
        this.tasks.finish(task.name, task.attempt, "FAILED", now, { error });
        this.advance(run, now);
        return;
      }
      default:
        return;
    }
  }

  /** Applies the run's plan until nothing changes: queue ready tasks, settle doomed ones, end the run. */
  private advance(run: RunRecord, now: number): void {
    if (isTerminal(run.status)) return;
    for (let round = 0; round <= run.definition.tasks.length * 2 + 2; round++) {
      const plan = planRun(run.definition, this.tasks.statuses());
      for (const name of plan.doomed) {
        this.tasks.settle(
          name,
          "CANCELLED",
          now,
          errorData("task.upstream_failed", "UpstreamFailedError", `a parent of task '${name}' failed or was cancelled`),
        );
      }
      for (const name of plan.unneeded) this.tasks.settle(name, "SKIPPED", now);
      for (const name of plan.ready) this.queueTask(run, name, now, 0, 0);
      if (plan.end) {
        this.endRun(run, plan.end, now);
        return;
      }
      if (plan.ready.length + plan.doomed.length + plan.unneeded.length === 0) return;
    }
  }

  /** Starts a new attempt of a task, now or after a backoff. */
  private queueTask(run: RunRecord, name: string, now: number, retryCount: number, delayMs: number): void {
    const attempt = this.tasks.queue(name, now, retryCount);
    if (delayMs > 0) {
      this.timers.set("retry", name, attempt, now + delayMs);
      const def = this.taskDef(run, name);
      this.tasks.setQueuedReason(name, attempt, `retry ${retryCount} of ${def.retries}, backing off ${formatMs(delayMs)}`);
      return;
    }
    this.dispatch(run, name, attempt, 0, now);
  }

  /** Hands a queued attempt (or durable invocation) to its worker's task queue, through the outbox. */
  private dispatch(run: RunRecord, name: string, attempt: number, invocation: number, now: number): void {
    const def = this.taskDef(run, name);
    this.timers.set("schedule_timeout", name, attempt, now + def.scheduleTimeoutMs, String(invocation));
    this.tasks.setQueuedReason(name, attempt, null);
    const item: EnqueueItem = {
      key: dispatchKey(run.runId, name, attempt, invocation),
      runId: run.runId,
      task: name,
      attempt,
      invocation,
      priority: run.priority,
      enqueuedAt: now,
      leaseMs: def.executionTimeoutMs + LEASE_GRACE_MS,
    };
    const pool = poolOf(def);
    this.outbox.add(
      "enqueue",
      taskQueueName(run.tenant, run.worker, pool),
      { identity: { tenant: run.tenant, worker: run.worker, pool }, items: [item] } satisfies OutboxPayloads["enqueue"],
      now,
    );
  }

  private dequeue(run: RunRecord, task: TaskRecord): void {
    const pool = poolOf(this.taskDef(run, task.name));
    this.outbox.add(
      "dequeue",
      taskQueueName(run.tenant, run.worker, pool),
      { keys: [dispatchKey(run.runId, task.name, task.attempt, task.invocation)] } satisfies OutboxPayloads["dequeue"],
      clock.now(),
    );
  }

  private failAttempt(run: RunRecord, task: TaskRecord, error: ErrorData, now: number): void {
    const def = this.taskDef(run, task.name);
    const decision = decideRetry(def, task.retryCount, error);
    if (decision.retry) {
      this.tasks.closeAttempt(task.name, task.attempt, "FAILED", now, error);
      this.queueTask(run, task.name, now, task.retryCount + 1, decision.delayMs);
      return;
    }
    this.tasks.finish(task.name, task.attempt, "FAILED", now, { error });
    this.advance(run, now);
  }

  private endRun(run: RunRecord, status: "COMPLETED" | "FAILED" | "CANCELLED", now: number): void {
    const tasks = this.tasks.all();
    const output = status === "COMPLETED" ? runOutput(run.definition, tasks) : null;
    let error: ErrorData | null = null;
    if (status === "FAILED") {
      const failed = tasks.find((t) => t.status === "FAILED" && t.error);
      error = failed?.error
        ? { ...failed.error, task: failed.name }
        : errorData("run.failed", "RunFailedError", "the run failed");
    }
    this.runs.end(status, now, output, error);
    const ended = this.runs.get()!;
    this.reportToIndex(ended, now);
    if (ended.parent) {
      this.outbox.add(
        "child_ended",
        runObjectName(ended.tenant, ended.parent.runId),
        { childRunId: ended.runId, parentTask: ended.parent.taskName, status, output, error } satisfies ChildEnded,
        now,
      );
    }
    this.runEnded = true;
  }

  private reportToIndex(run: RunRecord, now: number): void {
    const entry: IndexEntry = {
      runId: run.runId,
      workflow: run.workflow,
      status: run.status,
      metadata: run.metadata,
      createdAt: run.createdAt,
      finishedAt: run.finishedAt,
      parent: run.parent ? { runId: run.parent.runId, taskName: run.parent.taskName } : null,
      version: run.version,
    };
    this.outbox.add("index", runIndexName(run.tenant, fnv1a(run.runId) % RUN_INDEX_SHARDS), entry, now);
  }

  // -------------------------------------------------------------------------------------------
  // After a write: arm the alarm, send the outbox, wake waiters
  // -------------------------------------------------------------------------------------------

  private async afterWrite(): Promise<void> {
    this.notify();
    await this.flushOutbox();
    await this.timers.arm();
  }

  private notify(): void {
    for (const { key, result } of this.pendingWatch.splice(0)) {
      for (const finish of [...(this.watchers.get(key) ?? [])]) finish(result);
      this.watchers.delete(key);
    }
    if (this.runEnded) {
      this.runEnded = false;
      for (const done of [...this.endWaiters]) done();
      this.endWaiters.clear();
    }
  }

  private async flushOutbox(): Promise<void> {
    const messages = this.outbox.take(clock.now());
    if (messages.length === 0) return;
    const groups = new Map<string, OutboxMessage[]>();
    for (const m of messages) {
      const key = `${m.kind}\u0000${m.target}`;
      groups.set(key, [...(groups.get(key) ?? []), m]);
    }
    await Promise.all(
      [...groups.values()].map(async (group) => {
        const first = group[0]!;
        try {
          const result = await deliver(this.env, first.kind, first.target, group);
          for (const m of group) this.outbox.done(m.id);
          if (result.kind === "enqueue" && result.reply.blockedReason) {
            for (const item of result.items) this.tasks.setQueuedReason(item.task, item.attempt, result.reply.blockedReason);
          }
        } catch (err) {
          console.error(`run outbox: ${first.kind} to ${first.target} failed, will retry`, err);
          for (const m of group) this.timers.set("outbox", "", 0, this.outbox.failed(m.id, m.tries, clock.now()));
        }
      }),
    );
  }

  // -------------------------------------------------------------------------------------------
  // Reading
  // -------------------------------------------------------------------------------------------

  private staleness(run: RunRecord, task: TaskRecord | null, ref: DispatchRef): string | null {
    if (!task) return `no task '${ref.task}'`;
    if (task.attempt !== ref.attempt || task.invocation !== ref.invocation) return "superseded by a newer dispatch";
    if (isTerminal(run.status)) return `run is ${run.status}`;
    if (task.status === "RUNNING") return "duplicate delivery: the attempt is already running";
    if (task.status !== "QUEUED") return `task is ${task.status}`;
    return null;
  }

  private taskDef(run: RunRecord, name: string): TaskDefinition {
    const def = run.definition.tasks.find((t) => t.name === name);
    if (!def) throw new SpindleError("task.not_found", `no task '${name}' in workflow '${run.workflow}'`);
    return def;
  }

  private assignment(run: RunRecord, task: TaskRecord, def: TaskDefinition): Assignment {
    const all = this.tasks.all();
    const parentOutputs: Record<string, unknown> = {};
    const skippedParents: string[] = [];
    // Role tasks see every task's output; DAG tasks see their parents'.
    const visible = def.role ? all.filter((t) => !this.taskDef(run, t.name).role).map((t) => t.name) : def.parents;
    for (const name of visible) {
      const t = all.find((x) => x.name === name);
      if (t?.status === "COMPLETED") parentOutputs[name] = t.output;
      if (t?.status === "SKIPPED") skippedParents.push(name);
    }
    const errors: Record<string, string> = {};
    if (def.role === "on_failure") for (const t of all) if (t.status === "FAILED" && t.error) errors[t.name] = t.error.message;
    return {
      runId: run.runId,
      workflowName: run.workflow,
      taskName: task.name,
      taskRunId: task.taskRunId,
      attempt: task.attempt,
      retryCount: task.retryCount,
      invocation: task.invocation,
      input: run.input,
      parentOutputs,
      skippedParents,
      additionalMetadata: run.metadata,
      errors,
      executionTimeoutMs: def.executionTimeoutMs,
      startedAt: task.startedAt ?? clock.now(),
    };
  }

  private view(run: RunRecord): RunView {
    return buildRunView(run, this.tasks, this.runs.children(), (): Partial<TaskView> => ({}));
  }
}

function poolOf(def: TaskDefinition): Pool {
  return def.kind === "durable" ? "durable" : "regular";
}

function watchKey(ref: { name?: string; task?: string; attempt: number; invocation: number }): string {
  return `${ref.task ?? ref.name}/${ref.attempt}/${ref.invocation}`;
}

export function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

export { toErrorData };
