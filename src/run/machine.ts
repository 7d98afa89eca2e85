import type {
  CheckpointReply,
  CheckpointRequest,
  ChildResult,
  ConditionData,
  ErrorData,
  TaskDefinition,
  TaskOutcome,
  WatchResult,
} from "@spindle/worker-sdk/protocol";
import { matches } from "../core/cel";
import { clock } from "../core/clock";
import { evaluate, leafId, leaves } from "../core/conditions";
import { descendants, isTerminal } from "../core/dag";
import { errorData, SpindleError } from "../core/errors";
import { fnv1a } from "../core/ids";
import { runIndexName, runObjectName, RUN_INDEX_SHARDS, taskQueueName, type Pool } from "../core/names";
import { decideRetry } from "../core/retry";
import { planRun, runOutput } from "../core/run-machine";
import type { ConditionMet, Waiter } from "../events/event-bus";
import { dispatchKey, type EnqueueItem } from "../scheduler/messages";
import { DAG_CONDITIONS_SEQ, type ConditionList, type DurableLog } from "./durable-log";
import type { Outbox } from "./outbox";
import type { ChildEnded, OutboxPayloads } from "./outbox-delivery";
import type { IndexEntry } from "./run-index";
import type { RunRecord, RunStore } from "./run-store";
import type { TaskRecord, TaskStore } from "./task-store";
import type { Timer, TimerStore } from "./timer-store";

/** How long past its execution timeout a slot stays leased before the task queue takes it back. */
export const LEASE_GRACE_MS = 30_000;
/**
 * Index updates and child links are sent after the reply, in the background; if the object goes
 * away first, this timer sends what is left.
 */
export const OUTBOX_SAFETY_MS = 30_000;

export interface DispatchRef {
  task: string;
  attempt: number;
  invocation: number;
}

export interface Stores {
  runs: RunStore;
  tasks: TaskStore;
  timers: TimerStore;
  outbox: Outbox;
  log: DurableLog;
}

/** What a transition decides that only the object can do after the write commits. */
export interface Effects {
  watch(key: string, result: WatchResult): void;
  runEnded(): void;
}

export const watchKey = (ref: { task: string; attempt: number; invocation: number }): string =>
  `${ref.task}/${ref.attempt}/${ref.invocation}`;

/**
 * The transitions of a run, applied to its stores. Every method runs inside the object's
 * transaction and only reads and writes SQLite (and the outbox); messages to other objects leave
 * after the commit. Each transition checks the attempt and invocation it concerns first, so a
 * repeat is a no-op.
 */
export class RunMachine {
  constructor(
    private readonly s: Stores,
    private readonly effects: Effects,
  ) {}

  // -------------------------------------------------------------------------------------------
  // The DAG
  // -------------------------------------------------------------------------------------------

  /** Applies the run's plan until nothing changes: start ready tasks, settle doomed ones, end the run. */
  advance(run: RunRecord, now: number): void {
    if (isTerminal(run.status)) return;
    for (let round = 0; round <= run.definition.tasks.length * 3 + 3; round++) {
      const plan = planRun(run.definition, this.s.tasks.statuses(), this.s.log.armedTasks());
      for (const name of plan.doomed) {
        this.s.tasks.settle(name, "CANCELLED", now, errorData("task.upstream_failed", "UpstreamFailedError", `a parent of task '${name}' failed or was cancelled`));
      }
      for (const name of plan.unneeded) this.s.tasks.settle(name, "SKIPPED", now);
      for (const name of plan.ready) this.readyTask(run, name, now);
      if (plan.end) {
        this.endRun(run, plan.end, now);
        return;
      }
      if (plan.ready.length + plan.doomed.length + plan.unneeded.length === 0) return;
    }
  }

  /** A task's parents are done: queue it, or arm its conditions and decide when they say. */
  private readyTask(run: RunRecord, name: string, now: number): void {
    const def = this.taskDef(run, name);
    const lists: [ConditionList, ConditionData[] | undefined][] = [
      ["wait", def.waitFor],
      ["skip", def.skipIf],
      ["cancel", def.cancelIf],
    ];
    if (lists.every(([, l]) => !l || l.length === 0)) {
      this.queueTask(run, name, now, 0, 0);
      return;
    }
    for (const [list, conditions] of lists) if (conditions?.length) this.armConditions(run, name, DAG_CONDITIONS_SEQ, list, conditions, now);
    this.decideDagTask(run, name, now);
  }

  /** A conditional DAG task: cancel, skip or start it as soon as one of its lists holds. */
  private decideDagTask(run: RunRecord, name: string, now: number): void {
    const task = this.s.tasks.get(name);
    if (!task || task.status !== "PENDING") return;
    const def = this.taskDef(run, name);
    const state = this.conditionState(name, DAG_CONDITIONS_SEQ);
    const holds = (list: ConditionList, conditions: ConditionData[] | undefined) =>
      !!conditions?.length && evaluate(conditions, state.get(list) ?? new Map()).holds;
    // cancelIf wins over skipIf, which wins over waitFor. With no waitFor the task starts at once:
    // a skip or cancel that hangs on an event or a sleep can no longer matter once it runs.
    let decided: "CANCELLED" | "SKIPPED" | "QUEUED" | null = null;
    if (holds("cancel", def.cancelIf)) decided = "CANCELLED";
    else if (holds("skip", def.skipIf)) decided = "SKIPPED";
    else if (!def.waitFor?.length || holds("wait", def.waitFor)) decided = "QUEUED";
    if (!decided) return;
    this.disarm(run, name, DAG_CONDITIONS_SEQ);
    if (decided === "QUEUED") this.queueTask(run, name, now, 0, 0);
    else if (decided === "SKIPPED") this.s.tasks.settle(name, "SKIPPED", now);
    else this.s.tasks.settle(name, "CANCELLED", now, errorData("task.condition_cancelled", "CancelledError", `a cancelIf condition of task '${name}' held`));
    this.advance(this.s.runs.get()!, now);
  }

  // -------------------------------------------------------------------------------------------
  // Attempts
  // -------------------------------------------------------------------------------------------

  /** Starts a new attempt of a task, now or after a backoff. */
  queueTask(run: RunRecord, name: string, now: number, retryCount: number, delayMs: number): void {
    const attempt = this.s.tasks.queue(name, now, retryCount);
    if (delayMs > 0) {
      this.s.timers.set("retry", name, attempt, now + delayMs);
      const def = this.taskDef(run, name);
      this.s.tasks.setQueuedReason(name, attempt, `retry ${retryCount} of ${def.retries}, backing off ${formatMs(delayMs)}`);
      return;
    }
    this.dispatch(run, name, attempt, 0, now);
  }

  /** Hands a queued attempt (or durable invocation) to its worker's task queue, through the outbox. */
  dispatch(run: RunRecord, name: string, attempt: number, invocation: number, now: number): void {
    const def = this.taskDef(run, name);
    this.s.timers.set("schedule_timeout", name, attempt, now + def.scheduleTimeoutMs, String(invocation));
    this.s.tasks.setQueuedReason(name, attempt, null);
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
    this.s.outbox.add(
      "enqueue",
      taskQueueName(run.tenant, run.worker, pool),
      { identity: { tenant: run.tenant, worker: run.worker, pool }, items: [item] } satisfies OutboxPayloads["enqueue"],
      now,
    );
  }

  start(run: RunRecord, ref: DispatchRef, now: number): void {
    const def = this.taskDef(run, ref.task);
    this.s.tasks.start(ref.task, ref.attempt, now);
    this.s.timers.clear("schedule_timeout", ref.task, ref.attempt);
    this.s.timers.set("exec_timeout", ref.task, ref.attempt, now + def.executionTimeoutMs, String(ref.invocation));
    if (this.s.runs.markStarted(now)) this.reportToIndex(this.s.runs.get()!, now);
  }

  /** The worker's answer for a running attempt (the caller checked it is the current one). */
  complete(run: RunRecord, task: TaskRecord, outcome: TaskOutcome, now: number): void {
    this.s.timers.clear("exec_timeout", task.name, task.attempt);
    if (outcome.status === "completed") {
      this.disarmTask(run, task.name);
      this.s.tasks.finish(task.name, task.attempt, "COMPLETED", now, { output: outcome.output ?? null });
      this.advance(run, now);
    } else if (outcome.status === "failed") {
      this.failAttempt(run, task, outcome.error, now);
    } else {
      if (this.taskDef(run, task.name).kind !== "durable") {
        throw new SpindleError("task.invalid_outcome", `task '${task.name}' is not durable and cannot suspend`);
      }
      this.suspend(run, task, outcome.waitingOn, now);
    }
    this.effects.watch(watchKey({ task: task.name, attempt: task.attempt, invocation: task.invocation }), { reason: "ended" });
  }

  failAttempt(run: RunRecord, task: TaskRecord, error: ErrorData, now: number): void {
    const def = this.taskDef(run, task.name);
    const decision = decideRetry(def, task.retryCount, error);
    if (decision.retry) {
      // A durable task's log outlives the attempt: the retry replays it and goes on from there.
      this.s.tasks.closeAttempt(task.name, task.attempt, "FAILED", now, error);
      this.queueTask(run, task.name, now, task.retryCount + 1, decision.delayMs);
      return;
    }
    this.disarmTask(run, task.name);
    this.s.tasks.finish(task.name, task.attempt, "FAILED", now, { error });
    this.advance(run, now);
  }

  fire(run: RunRecord, timer: Timer, now: number): void {
    if (timer.kind === "outbox" || isTerminal(run.status)) return;
    if (timer.kind === "condition") {
      const [list, id] = timer.ref.split(":") as [ConditionList, string];
      const [group, leaf] = id.split(".").map(Number) as [number, number];
      const c = this.s.log.condition(timer.task, timer.attempt, list, group, leaf);
      if (c && c.spec.kind === "sleep") this.conditionSatisfied(run, { task: timer.task, seq: timer.attempt, list, group, leaf }, { durationMs: c.spec.durationMs }, now);
      return;
    }
    const task = this.s.tasks.get(timer.task);
    if (!task || task.attempt !== timer.attempt) return;
    const def = this.taskDef(run, task.name);
    if (timer.kind === "retry") {
      if (task.status === "QUEUED") this.dispatch(run, task.name, task.attempt, task.invocation, now);
    } else if (timer.kind === "exec_timeout") {
      if (task.status !== "RUNNING" || task.evicted || String(task.invocation) !== timer.data) return;
      const error = errorData("task.timeout", "TimeoutError", `task '${task.name}' exceeded its execution timeout of ${formatMs(def.executionTimeoutMs)}`, {
        retryable: true,
      });
      this.effects.watch(watchKey({ task: task.name, attempt: task.attempt, invocation: task.invocation }), { reason: "timeout" });
      this.failAttempt(run, task, error, now);
    } else if (timer.kind === "schedule_timeout") {
      if (task.status !== "QUEUED" || String(task.invocation) !== (timer.data ?? "0")) return;
      this.dequeue(run, task);
      const error = errorData(
        "task.schedule_timeout",
        "ScheduleTimeoutError",
        `task '${task.name}' waited longer than its schedule timeout of ${formatMs(def.scheduleTimeoutMs)} to start` +
          (task.queuedReason ? ` (${task.queuedReason})` : ""),
      );
      this.disarmTask(run, task.name);
      this.s.tasks.finish(task.name, task.attempt, "FAILED", now, { error });
      this.advance(run, now);
    }
  }

  dequeue(run: RunRecord, task: TaskRecord): void {
    const pool = poolOf(this.taskDef(run, task.name));
    this.s.outbox.add(
      "dequeue",
      taskQueueName(run.tenant, run.worker, pool),
      { keys: [dispatchKey(run.runId, task.name, task.attempt, task.invocation)] } satisfies OutboxPayloads["dequeue"],
      clock.now(),
    );
  }

  // -------------------------------------------------------------------------------------------
  // Durable tasks
  // -------------------------------------------------------------------------------------------

  /**
   * Records a call of a durable task in its event log. A call already recorded at this position
   * must be the same call (kind and key) or the replay is not deterministic; a stale invocation
   * (not the task's current one) may not write at all.
   */
  checkpoint(run: RunRecord, req: CheckpointRequest, now: number): CheckpointReply {
    const task = this.s.tasks.get(req.task);
    const def = this.taskDef(run, req.task);
    if (def.kind !== "durable") throw new SpindleError("task.not_durable", `task '${req.task}' is not a durable task`);
    if (!task || task.attempt !== req.attempt || task.invocation !== req.invocation || task.status !== "RUNNING" || task.evicted) {
      throw new SpindleError("task.superseded", `invocation ${req.invocation} of attempt ${req.attempt} of task '${req.task}' is no longer current`);
    }
    const recorded = this.s.log.get(req.task, req.seq);
    if (recorded) {
      if (recorded.kind !== req.kind || recorded.key !== req.key) throw nonDeterminism(req.seq, recorded, req);
      return recorded.status === "resolved" ? { status: "resolved", result: recorded.result! } : { status: "pending" };
    }
    switch (req.kind) {
      case "memo":
      case "spawn": {
        const result = req.kind === "memo" ? (req.result ?? { value: null }) : { value: req.children ?? [] };
        this.s.log.insert({ task: req.task, seq: req.seq, kind: req.kind, key: req.key, invocation: req.invocation, data: null }, now);
        if (req.children) for (const [i, id] of req.children.entries()) this.s.runs.addChild(id, req.task, i);
        this.s.log.resolve(req.task, req.seq, result, now);
        return { status: "resolved", result };
      }
      case "sleep":
      case "wait": {
        const conditions: ConditionData[] =
          req.kind === "sleep" ? [{ kind: "sleep", durationMs: Math.max(0, req.untilMs !== undefined ? req.untilMs - now : sleepMs(req.conditions)) }] : (req.conditions ?? []);
        this.s.log.insert({ task: req.task, seq: req.seq, kind: req.kind, key: req.key, invocation: req.invocation, data: { conditions } }, now);
        this.armConditions(run, req.task, req.seq, "wait", conditions, now);
        this.resolveWaitIfMet(run, req.task, req.seq, now);
        break;
      }
      case "child":
      case "children": {
        const children = req.children ?? [];
        this.s.log.insert({ task: req.task, seq: req.seq, kind: req.kind, key: req.key, invocation: req.invocation, data: { children } }, now);
        this.s.runs.addWaitedChildren(req.task, req.seq, children);
        this.resolveChildrenIfDone(run, req.task, req.seq, now);
        break;
      }
    }
    const after = this.s.log.get(req.task, req.seq)!;
    return after.status === "resolved" ? { status: "resolved", result: after.result! } : { status: "pending" };
  }

  /** A durable invocation ended at a wait: evict it, or queue it again if the wait already resolved. */
  private suspend(run: RunRecord, task: TaskRecord, waitingOn: number[], now: number): void {
    const stillPending = new Set(this.s.log.pending(task.name).map((c) => c.seq));
    const resolvedMeanwhile = waitingOn.length === 0 || waitingOn.some((seq) => !stillPending.has(seq));
    if (resolvedMeanwhile) this.wake(run, task.name, now, true);
    else this.s.tasks.evict(task.name);
  }

  /** A wait of a durable task resolved: if the task is evicted, queue its next invocation. */
  private wake(run: RunRecord, name: string, now: number, force = false): void {
    const task = this.s.tasks.get(name);
    if (!task || task.status !== "RUNNING" || (!task.evicted && !force)) return;
    const invocation = this.s.tasks.requeueInvocation(name, now);
    this.dispatch(run, name, task.attempt, invocation, now);
  }

  /** A child run ended. If a durable checkpoint waits on it and it was the last one, resolve it. */
  childEnded(run: RunRecord, report: ChildEnded, now: number): void {
    this.s.runs.childEnded(report.childRunId, report.parentTask, report.status, report.output, (report.error as ErrorData | null) ?? null);
    if (isTerminal(run.status)) return;
    const wait = this.s.runs.waitOf(report.childRunId);
    if (wait) this.resolveChildrenIfDone(run, wait.task, wait.seq, now);
  }

  private resolveChildrenIfDone(run: RunRecord, task: string, seq: number, now: number): void {
    const cp = this.s.log.get(task, seq);
    if (!cp || cp.status !== "pending" || this.s.runs.unfinishedChildren(task, seq) > 0) return;
    const results: ChildResult[] = this.s.runs
      .waitedOutcomes(task, seq)
      .map((o) => ({ runId: o.runId, status: o.status as ChildResult["status"], output: o.output, error: o.error }));
    if (this.s.log.resolve(task, seq, { value: results }, now)) this.wake(run, task, now);
  }

  // -------------------------------------------------------------------------------------------
  // Conditions (durable waits and conditional DAG tasks)
  // -------------------------------------------------------------------------------------------

  /** Records each leaf, evaluates parent conditions now, sets sleeps' timers, subscribes to events. */
  private armConditions(run: RunRecord, task: string, seq: number, list: ConditionList, conditions: ConditionData[], now: number): void {
    const waiters = new Map<string, Waiter[]>();
    for (const { group, leaf, condition } of leaves(conditions)) {
      this.s.log.addCondition({ task, seq, list, group, leaf, spec: condition, armedAt: now });
      const ref = { task, seq, list, group, leaf };
      if (condition.kind === "sleep") {
        this.s.timers.set("condition", task, seq, now + condition.durationMs, null, `${list}:${leafId(group, leaf)}`);
      } else if (condition.kind === "parent") {
        const parent = this.s.tasks.get(condition.parent);
        if (parent?.status === "COMPLETED" && matches(condition.expression, { output: parent.output })) {
          this.s.log.satisfy(task, seq, list, group, leaf, parent.output, now);
        }
      } else {
        const target = eventBusName(run.tenant, condition.eventKey);
        waiters.set(target, [
          ...(waiters.get(target) ?? []),
          {
            id: waiterId(run.runId, ref),
            runId: run.runId,
            expression: condition.expression ?? null,
            scope: condition.scope ?? null,
            sinceAt: now - (condition.lookbackMs ?? 0),
            ref,
          },
        ]);
      }
    }
    for (const [target, list] of waiters) {
      const key = (conditions.flatMap((c) => (c.kind === "or" ? c.conditions : [c])).find((c) => c.kind === "event" && eventBusName(run.tenant, c.eventKey) === target) as { eventKey: string }).eventKey;
      this.s.outbox.add("subscribe", target, { tenant: run.tenant, key, waiters: list } satisfies OutboxPayloads["subscribe"], now);
    }
  }

  /** An event (through the bus) or a timer met one leaf of a wait or of a DAG task's conditions. */
  conditionMet(run: RunRecord, met: ConditionMet, now: number): void {
    if (isTerminal(run.status)) return;
    this.conditionSatisfied(run, met, met.payload, now);
  }

  private conditionSatisfied(run: RunRecord, ref: { task: string; seq: number; list: ConditionList; group: number; leaf: number }, result: unknown, now: number): void {
    if (!this.s.log.satisfy(ref.task, ref.seq, ref.list, ref.group, ref.leaf, result, now)) return;
    if (ref.seq === DAG_CONDITIONS_SEQ) this.decideDagTask(run, ref.task, now);
    else this.resolveWaitIfMet(run, ref.task, ref.seq, now);
  }

  private resolveWaitIfMet(run: RunRecord, task: string, seq: number, now: number): void {
    const cp = this.s.log.get(task, seq);
    if (!cp || cp.status !== "pending") return;
    const conditions = (cp.data?.conditions ?? []) as ConditionData[];
    const { holds, fired } = evaluate(conditions, this.conditionState(task, seq).get("wait") ?? new Map());
    if (!holds) return;
    const value = cp.kind === "sleep" ? { durationMs: (conditions[0] as { durationMs: number }).durationMs } : fired;
    this.disarm(run, task, seq);
    if (this.s.log.resolve(task, seq, { value }, now)) this.wake(run, task, now);
  }

  private conditionState(task: string, seq: number): Map<ConditionList, Map<string, unknown>> {
    const state = new Map<ConditionList, Map<string, unknown>>();
    for (const c of this.s.log.conditions(task, seq)) {
      if (c.satisfiedAt === null) continue;
      const map = state.get(c.list) ?? new Map<string, unknown>();
      map.set(leafId(c.group, c.leaf), c.result);
      state.set(c.list, map);
    }
    return state;
  }

  /** Stops waiting on what a decided wait no longer needs: its timers and event subscriptions. */
  private disarm(run: RunRecord, task: string, seq: number): void {
    this.s.timers.clearAll("condition", task, seq);
    const byTarget = new Map<string, string[]>();
    for (const c of this.s.log.conditions(task, seq)) {
      if (c.spec.kind !== "event" || c.satisfiedAt !== null) continue;
      const target = eventBusName(run.tenant, c.spec.eventKey);
      byTarget.set(target, [...(byTarget.get(target) ?? []), waiterId(run.runId, { task, seq, list: c.list, group: c.group, leaf: c.leaf })]);
    }
    for (const [target, ids] of byTarget) this.s.outbox.add("unsubscribe", target, { ids } satisfies OutboxPayloads["unsubscribe"], clock.now());
    this.s.log.markDecided(task, seq);
  }

  /** A task ended or was reset: nothing of it may wait on anything any more. */
  disarmTask(run: RunRecord, name: string): void {
    for (const seq of this.s.log.armedSeqs(name)) this.disarm(run, name, seq);
  }

  // -------------------------------------------------------------------------------------------
  // The run as a whole
  // -------------------------------------------------------------------------------------------

  cancel(run: RunRecord, now: number): void {
    const cancelled = errorData("run.cancelled", "CancelledError", "the run was cancelled");
    for (const task of this.s.tasks.all()) {
      if (isTerminal(task.status)) continue;
      if (task.status === "QUEUED") this.dequeue(run, task);
      this.disarmTask(run, task.name);
      if (task.status === "PENDING") this.s.tasks.settle(task.name, "CANCELLED", now, cancelled);
      else this.s.tasks.finish(task.name, task.attempt, "CANCELLED", now, { error: cancelled });
      this.s.timers.clearTask(task.name);
      this.effects.watch(watchKey({ task: task.name, attempt: task.attempt, invocation: task.invocation }), { reason: "cancelled" });
    }
    for (const child of this.s.runs.children()) this.s.outbox.add("cancel_run", runObjectName(run.tenant, child), {}, now);
    this.endRun(run, "CANCELLED", now);
  }

  /** Resets failed and cancelled tasks (and what is downstream) of a finished run and runs them again. */
  replay(run: RunRecord, now: number): void {
    const def = run.definition;
    const redo = this.s.tasks
      .all()
      .filter((t) => !this.taskDef(run, t.name).role && (t.status === "FAILED" || t.status === "CANCELLED"))
      .map((t) => t.name);
    if (redo.length === 0) throw new SpindleError("run.conflict", "nothing to replay: the run has no failed or cancelled tasks");
    const targets = new Set([...redo, ...descendants(def, redo), ...def.tasks.filter((t) => t.role).map((t) => t.name)]);
    for (const name of targets) {
      this.disarmTask(run, name);
      this.s.timers.clearTask(name);
      this.s.log.clear(name);
      this.s.tasks.reset(name);
    }
    this.s.runs.reopen();
    const reopened = this.s.runs.get()!;
    this.reportToIndex(reopened, now);
    this.advance(reopened, now);
  }

  endRun(run: RunRecord, status: "COMPLETED" | "FAILED" | "CANCELLED", now: number): void {
    const tasks = this.s.tasks.all();
    const output = status === "COMPLETED" ? runOutput(run.definition, tasks) : null;
    let error: ErrorData | null = null;
    if (status === "FAILED") {
      const failed = tasks.find((t) => t.status === "FAILED" && t.error);
      error = failed?.error ? { ...failed.error, task: failed.name } : errorData("run.failed", "RunFailedError", "the run failed");
    }
    this.s.runs.end(status, now, output, error);
    const ended = this.s.runs.get()!;
    this.reportToIndex(ended, now);
    if (ended.parent) {
      this.s.outbox.add(
        "child_ended",
        runObjectName(ended.tenant, ended.parent.runId),
        { childRunId: ended.runId, parentTask: ended.parent.taskName, status, output, error } satisfies ChildEnded,
        now,
      );
    }
    this.effects.runEnded();
  }

  reportToIndex(run: RunRecord, now: number): void {
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
    this.s.outbox.add("index", runIndexName(run.tenant, fnv1a(run.runId) % RUN_INDEX_SHARDS), entry, now);
    this.s.timers.ensure("outbox", "", 0, now + OUTBOX_SAFETY_MS);
  }

  taskDef(run: RunRecord, name: string): TaskDefinition {
    const def = run.definition.tasks.find((t) => t.name === name);
    if (!def) throw new SpindleError("task.not_found", `no task '${name}' in workflow '${run.workflow}'`);
    return def;
  }
}

export function poolOf(def: TaskDefinition): Pool {
  return def.kind === "durable" ? "durable" : "regular";
}

export const eventBusName = (tenant: string, key: string): string => `events:${tenant}:${key}`;

export const waiterId = (runId: string, ref: { task: string; seq: number; list: string; group: number; leaf: number }): string =>
  `${runId}|${ref.task}|${ref.seq}|${ref.list}|${ref.group}|${ref.leaf}`;

function sleepMs(conditions: ConditionData[] | undefined): number {
  const first = conditions?.[0];
  return first && first.kind === "sleep" ? first.durationMs : 0;
}

function nonDeterminism(seq: number, recorded: { kind: string; key: string }, now: { kind: string; key: string }): SpindleError {
  return new SpindleError(
    "replay.non_determinism",
    `non-deterministic replay at checkpoint ${seq}: the log recorded ${recorded.kind}(${recorded.key}) but the task now called ${now.kind}(${now.key})`,
  );
}

export function formatMs(ms: number): string {
  if (ms >= 3_600_000 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms >= 1000 && ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
