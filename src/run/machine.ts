import type {
  CheckpointRecord,
  CheckpointReply,
  CheckpointRequest,
  ErrorData,
  TaskDefinition,
  TaskOutcome,
  WatchResult,
} from "@spindle/worker-sdk/protocol";
import { clock } from "../core/clock";
import { descendants, isTerminal } from "../core/dag";
import { flowLimitsName, flowShardOf, resolveFlow, type ConcurrencyNeed, type Need } from "../core/flow";
import { errorData, SpindleError } from "../core/errors";
import { fnv1a } from "../core/ids";
import { formatMs } from "../core/format";
import { jsonBytes, MAX_ASSIGNMENT_PAYLOAD_BYTES, type Limits } from "../core/limits";
import { poolOf, queueShardOf, runIndexName, runObjectName, RUN_INDEX_SHARDS, taskQueueName } from "../core/names";
import { decideRetry } from "../core/retry";
import { planRun, runOutput } from "../core/run-machine";
import type { ConditionLost, ConditionMet } from "../events/event-bus";
import { DISPATCH_RESEND_MS, dispatchKey, type EnqueueItem } from "../scheduler/messages";
import type { ConditionList, DurableLog } from "./durable-log";
import type { DeadLetter, Outbox } from "./outbox";
import type { ChildEnded, ChildLost, OutboxPayloads } from "./outbox-delivery";
import { LIVENESS_TIMEOUT_MS, MAX_LOST_DISPATCHES, type Liveness } from "./liveness";
import type { IndexEntry } from "./run-index";
import type { RunRecord, RunStore } from "./run-store";
import type { TaskRecord, TaskStore } from "./task-store";
import type { Timer, TimerStore } from "./timer-store";
import { Waits } from "./waits";

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
  private readonly waits: Waits;
  private advancing = false;
  private replan = false;

  constructor(
    private readonly s: Stores,
    private readonly effects: Effects,
    private readonly liveness: Liveness,
    private readonly limits: Limits,
  ) {
    this.waits = new Waits(s, this);
  }

  // -------------------------------------------------------------------------------------------
  // The DAG
  // -------------------------------------------------------------------------------------------

  /**
   * Applies the run's plan until nothing changes: start ready tasks, settle doomed ones, end the
   * run. A decision taken inside (a conditional task settled at once) asks for another round
   * instead of planning from within: a nested plan would act on what the outer one still holds.
   */
  advance(_run: RunRecord, now: number): void {
    if (this.advancing) {
      this.replan = true;
      return;
    }
    this.advancing = true;
    try {
      for (;;) {
        this.replan = false;
        const run = this.s.runs.get()!;
        if (isTerminal(run.status)) return;
        const plan = planRun(run.definition, this.s.tasks.statuses(), this.s.log.armedTasks());
        for (const name of plan.doomed) {
          this.s.tasks.settle(name, "CANCELLED", now, errorData("task.upstream_failed", "UpstreamFailedError", `a parent of task '${name}' failed or was cancelled`));
        }
        for (const name of plan.unneeded) this.s.tasks.settle(name, "SKIPPED", now);
        for (const name of plan.ready) if (this.s.tasks.get(name)?.status === "PENDING") this.readyTask(run, name, now);
        if (plan.end) {
          this.endRun(run, plan.end, now);
          return;
        }
        if (plan.ready.length + plan.doomed.length + plan.unneeded.length === 0 && !this.replan) return;
      }
    } finally {
      this.advancing = false;
    }
  }

  /**
   * A task's parents are done: queue it, or arm its conditions and let them decide. Its parents'
   * outputs travel in its assignment (one RPC): a task they would not fit in is cancelled, saying so.
   */
  private readyTask(run: RunRecord, name: string, now: number): void {
    const def = this.taskDef(run, name);
    const visible = def.role ? run.definition.tasks.filter((t) => !t.role).map((t) => t.name) : def.parents;
    const bytes = this.s.tasks.outputBytes(visible);
    if (bytes > MAX_ASSIGNMENT_PAYLOAD_BYTES) {
      const message = `the outputs task '${name}' would receive total ${bytes} bytes; one assignment carries at most ${MAX_ASSIGNMENT_PAYLOAD_BYTES} bytes of them`;
      // It never starts: FAILED without an attempt, so the run's error is this one.
      this.s.tasks.finish(name, 0, "FAILED", now, { error: errorData("payload.too_large", "PayloadTooLargeError", message) });
      return;
    }
    if (!this.waits.armDagConditions(run, name, now)) this.queueTask(run, name, now, 0, 0);
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

  /**
   * Hands a queued attempt (or durable invocation) to its worker's task queue, through the outbox.
   * Only an attempt's first dispatch can time out waiting: a later invocation (a durable task's
   * resume, a lost dispatch sent again) has started once already, and the task queue admits it
   * ahead of new work.
   */
  dispatch(run: RunRecord, name: string, attempt: number, invocation: number, now: number): void {
    const def = this.taskDef(run, name);
    // Only an attempt's first dispatch takes its limits: a later invocation holds them already.
    const flow = invocation === 0 ? this.flowOf(run, def, attempt) : null;
    if (flow && "error" in flow) {
      const task = this.s.tasks.get(name)!;
      this.failAttempt(run, task, errorData("flow.invalid", "FlowControlError", `task '${name}' can never run: ${flow.error}`, { retryable: false }), now);
      return;
    }
    if (invocation === 0) this.s.timers.set("schedule_timeout", name, attempt, now + def.scheduleTimeoutMs, String(invocation));
    this.s.tasks.setQueuedReason(name, attempt, null);
    const item: EnqueueItem = {
      key: dispatchKey(run.runId, name, attempt, invocation),
      runId: run.runId,
      task: name,
      attempt,
      invocation,
      priority: run.priority,
      enqueuedAt: now,
      leaseMs: DISPATCH_RESEND_MS,
    };
    if (def.slotCost !== undefined && def.slotCost !== 1) item.slotCost = def.slotCost;
    if (flow && flow.needs.length > 0) item.flow = flow;
    const pool = poolOf(def);
    const shard = queueShardOf(run.runId, run.queueShards);
    this.s.outbox.add(
      "enqueue",
      taskQueueName(run.tenant, run.worker, pool, shard),
      { identity: { tenant: run.tenant, worker: run.worker, pool, ...(shard > 0 ? { shard } : {}) }, items: [item] } satisfies OutboxPayloads["enqueue"],
      now,
    );
  }

  /** `message`: the id of the dispatch message that started it, so its redelivery is recognised. */
  start(run: RunRecord, ref: DispatchRef, now: number, message: string | null): void {
    const def = this.taskDef(run, ref.task);
    this.s.tasks.start(ref.task, ref.attempt, now, message);
    this.s.timers.clear("schedule_timeout", ref.task, ref.attempt);
    this.s.timers.set("exec_timeout", ref.task, ref.attempt, now + def.executionTimeoutMs, String(ref.invocation));
    // The first look may come up to ALARM_SLACK_MS early, to share an alarm already set (see liveness.ts).
    this.s.timers.set("liveness", ref.task, ref.attempt, this.s.timers.sharing(now + LIVENESS_TIMEOUT_MS), String(ref.invocation));
    if (this.s.runs.markStarted(now)) this.reportToIndex(this.s.runs.get()!, now);
    this.startRateUnits(run, def, ref, now);
  }

  /**
   * The attempt's rate units count from its first start, not from its admission: tell the objects
   * holding them (the start of a later invocation of a durable task changes nothing there).
   */
  private startRateUnits(run: RunRecord, def: TaskDefinition, ref: DispatchRef, now: number): void {
    if (!def.rateLimits?.length) return;
    const flow = this.flowOf(run, def, ref.attempt);
    if (!flow || "error" in flow) return;
    const byShard = new Map<number, { key: string; holder: string }[]>();
    for (const n of flow.needs) {
      if (n.kind !== "rate") continue;
      const shard = flowShardOf(n);
      byShard.set(shard, [...(byShard.get(shard) ?? []), { key: n.key, holder: n.holder }]);
    }
    for (const [shard, units] of byShard) {
      const payload: OutboxPayloads["flow_started"] = { tenant: run.tenant, units, at: now };
      this.s.outbox.add("flow_started", flowLimitsName(run.tenant, shard), payload, now);
    }
  }

  /**
   * A running claim has no one left to answer for it: record why, fence it (a late answer or
   * checkpoint of it is refused), give its slot back and dispatch the task again. This is not a
   * failure of the task: no retry is used, and a durable task replays its log. Only an attempt
   * lost MAX_LOST_DISPATCHES times fails.
   */
  loseClaim(run: RunRecord, task: TaskRecord, reason: string, now: number): void {
    const claim = watchKey({ task: task.name, attempt: task.attempt, invocation: task.invocation });
    this.s.tasks.recordLost(task.name, task.attempt, task.invocation, now, reason);
    this.s.timers.clear("exec_timeout", task.name, task.attempt);
    this.s.timers.clear("liveness", task.name, task.attempt);
    this.dequeue(run, task);
    this.effects.watch(claim, { reason: "superseded" });
    this.liveness.forget(claim);
    if (this.s.tasks.lostCount(task.name, task.attempt) >= MAX_LOST_DISPATCHES) {
      const error = errorData(
        "task.lost",
        "TaskLostError",
        `attempt ${task.attempt} of task '${task.name}' was lost ${MAX_LOST_DISPATCHES} times (last: ${reason})`,
        { retryable: true },
      );
      this.failAttempt(run, task, error, now);
      return;
    }
    const invocation = this.s.tasks.requeueInvocation(task.name, now);
    this.dispatch(run, task.name, task.attempt, invocation, now);
  }

  /** The worker's answer for a running attempt (the caller checked it is the current one). */
  complete(run: RunRecord, task: TaskRecord, outcome: TaskOutcome, now: number): void {
    // A failed attempt gives its keys back in failAttempt; a suspended one keeps them while it waits.
    if (outcome.status === "completed") this.releaseAttempt(run, task.name, task.attempt, now);
    this.s.timers.clear("exec_timeout", task.name, task.attempt);
    this.s.timers.clear("liveness", task.name, task.attempt);
    this.liveness.forget(watchKey({ task: task.name, attempt: task.attempt, invocation: task.invocation }));
    if (outcome.status === "completed") {
      this.waits.disarmTask(run, task.name);
      this.s.tasks.finish(task.name, task.attempt, "COMPLETED", now, { output: outcome.output ?? null });
      this.advance(run, now);
    } else if (outcome.status === "failed") {
      this.failAttempt(run, task, outcome.error, now);
    } else {
      if (this.taskDef(run, task.name).kind !== "durable") {
        throw new SpindleError("task.invalid_outcome", `task '${task.name}' is not durable and cannot suspend`);
      }
      this.waits.suspend(run, task, outcome.waitingOn, now);
    }
    this.effects.watch(watchKey({ task: task.name, attempt: task.attempt, invocation: task.invocation }), { reason: "ended" });
  }

  failAttempt(run: RunRecord, task: TaskRecord, error: ErrorData, now: number): void {
    const def = this.taskDef(run, task.name);
    this.releaseAttempt(run, task.name, task.attempt, now);
    const decision = decideRetry(def, task.retryCount, error);
    if (decision.retry) {
      // A durable task's log outlives the attempt: the retry replays it and goes on from there.
      this.s.tasks.closeAttempt(task.name, task.attempt, "FAILED", now, error);
      this.queueTask(run, task.name, now, task.retryCount + 1, decision.delayMs);
      return;
    }
    this.waits.disarmTask(run, task.name);
    this.s.tasks.finish(task.name, task.attempt, "FAILED", now, { error });
    this.advance(run, now);
  }

  fire(run: RunRecord, timer: Timer, now: number): void {
    if (isTerminal(run.status)) return;
    if (timer.kind === "condition") {
      const [list, id] = timer.ref.split(":") as [ConditionList, string];
      const [group, leaf] = id.split(".").map(Number) as [number, number];
      const c = this.s.log.condition(timer.task, timer.attempt, list, group, leaf);
      if (c && c.spec.kind === "sleep") this.waits.conditionSatisfied(run, c, { durationMs: c.spec.durationMs }, now);
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
      this.s.timers.clear("liveness", task.name, task.attempt);
      this.failAttempt(run, task, error, now);
    } else if (timer.kind === "liveness") {
      // `data` is the claim's invocation, marked `:unheard` when the last look found no heartbeat
      // since this object came up (it may have been woken by that very alarm, after a restart).
      const [invocation, mark] = (timer.data ?? "").split(":");
      if (task.status !== "RUNNING" || task.evicted || String(task.invocation) !== invocation) return;
      const heard = this.liveness.heardAt(watchKey({ task: task.name, attempt: task.attempt, invocation: task.invocation }));
      if (heard !== undefined && now - heard < LIVENESS_TIMEOUT_MS) {
        this.s.timers.set("liveness", task.name, task.attempt, heard + LIVENESS_TIMEOUT_MS, invocation);
        return;
      }
      const booted = this.liveness.bootedAt;
      // Nothing heard since boot: look once more a timeout later; an object that restarts between
      // looks (an idle run's object is evicted between its alarms) then still finds the claim lost.
      if (heard === undefined && mark !== "unheard" && now - booted < LIVENESS_TIMEOUT_MS) {
        this.s.timers.set("liveness", task.name, task.attempt, booted + LIVENESS_TIMEOUT_MS, `${invocation}:unheard`);
        return;
      }
      const since = heard ?? booted;
      this.loseClaim(run, task, `no heartbeat from the invocation running it for ${formatMs(Math.max(LIVENESS_TIMEOUT_MS, Math.round((now - since) / 1000) * 1000))}`, now);
    } else if (timer.kind === "schedule_timeout") {
      if (task.status !== "QUEUED" || String(task.invocation) !== (timer.data ?? "0")) return;
      this.dequeue(run, task);
      this.releaseAttempt(run, task.name, task.attempt, now);
      const error = errorData(
        "task.schedule_timeout",
        "ScheduleTimeoutError",
        `task '${task.name}' waited longer than its schedule timeout of ${formatMs(def.scheduleTimeoutMs)} to start` +
          (task.queuedReason ? ` (${task.queuedReason})` : ""),
      );
      this.waits.disarmTask(run, task.name);
      this.s.tasks.finish(task.name, task.attempt, "FAILED", now, { error });
      this.advance(run, now);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Flow control: what an attempt takes before it starts, and gives back when it ends
  // -------------------------------------------------------------------------------------------

  /** The attempt's needs (null when it has none); the same for the same run, task and attempt. */
  private flowOf(run: RunRecord, def: TaskDefinition, attempt: number): ReturnType<typeof resolveFlow> | null {
    if (!run.definition.concurrency?.length && !def.concurrency?.length && !def.rateLimits?.length) return null;
    return resolveFlow({ workflow: run.definition, task: def, runId: run.runId, attempt, input: run.input, metadata: run.metadata });
  }

  /** The concurrency keys of an attempt (its task's own), given back when the attempt ends. */
  releaseAttempt(run: RunRecord, name: string, attempt: number, now: number): void {
    const flow = this.flowOf(run, this.taskDef(run, name), attempt);
    if (!flow || "error" in flow) return;
    const own = flow.needs.filter((n): n is ConcurrencyNeed => n.kind === "concurrency" && n.task !== null);
    this.sendRelease(run, own, (n) => ({ id: n.id, holder: n.holder }), now);
  }

  /** A worker answered for an attempt of this ended run: its code has stopped, so what the run held goes back. */
  lateAnswer(run: RunRecord, task: TaskRecord, now: number): void {
    if (isTerminal(run.status) && task.status === "CANCELLED") this.releaseRun(run, now);
  }

  /** The run ended: every key it or its attempts hold, in every flow object they live in. */
  private releaseRun(run: RunRecord, now: number): void {
    const needs = run.definition.tasks.flatMap((def) => {
      const flow = this.flowOf(run, def, 1);
      return flow && !("error" in flow) ? flow.needs.filter((n) => n.kind === "concurrency") : [];
    });
    this.sendRelease(run, needs, null, now);
  }

  private sendRelease(run: RunRecord, needs: Need[], holder: ((n: ConcurrencyNeed) => { id: string; holder: string }) | null, now: number): void {
    const byShard = new Map<number, { id: string; holder: string }[]>();
    for (const n of needs) {
      if (n.kind !== "concurrency") continue;
      const shard = flowShardOf(n);
      byShard.set(shard, [...(byShard.get(shard) ?? []), ...(holder ? [holder(n)] : [])]);
    }
    for (const [shard, holders] of byShard) {
      const payload: OutboxPayloads["flow_release"] = { tenant: run.tenant, runId: run.runId, holders: holder ? holders : null };
      this.s.outbox.add("flow_release", flowLimitsName(run.tenant, shard), payload, now);
    }
  }

  /** Whether these holders (the run's id, or `runId/task/attempt`) still hold their keys: the flow objects ask. */
  flowHeld(run: RunRecord, holders: string[]): boolean[] {
    return holders.map((h) => {
      if (isTerminal(run.status)) return false;
      if (h === run.runId) return true;
      // `runId/task/attempt`: a task's name may hold a '/', an id and an attempt never do.
      const rest = h.slice(run.runId.length + 1);
      const cut = rest.lastIndexOf("/");
      const task = h.startsWith(`${run.runId}/`) && cut > 0 ? this.s.tasks.get(rest.slice(0, cut)) : null;
      return !!task && String(task.attempt) === rest.slice(cut + 1) && !isTerminal(task.status);
    });
  }

  dequeue(run: RunRecord, task: TaskRecord): void {
    const pool = poolOf(this.taskDef(run, task.name));
    this.s.outbox.add(
      "dequeue",
      taskQueueName(run.tenant, run.worker, pool, queueShardOf(run.runId, run.queueShards)),
      { keys: [dispatchKey(run.runId, task.name, task.attempt, task.invocation)] } satisfies OutboxPayloads["dequeue"],
      clock.now(),
    );
  }

  // -------------------------------------------------------------------------------------------
  // Durable tasks and conditions: see Waits
  // -------------------------------------------------------------------------------------------

  checkpoint(run: RunRecord, req: CheckpointRequest, now: number): CheckpointReply {
    return this.waits.checkpoint(run, req, now);
  }

  /** A durable task's event log, each result assembled from the rows that hold it. */
  checkpointRecords(task: string): CheckpointRecord[] {
    return this.waits.records(task);
  }

  conditionMet(run: RunRecord, met: ConditionMet, now: number): void {
    if (!isTerminal(run.status)) this.waits.conditionSatisfied(run, met, met.payload, now);
  }

  childEnded(run: RunRecord, report: ChildEnded, now: number): void {
    this.waits.childEnded(run, report, now);
  }

  /** A wait resolved: if the durable task is evicted (or must go on), queue its next invocation. */
  wake(run: RunRecord, name: string, now: number, force = false): void {
    const task = this.s.tasks.get(name);
    if (!task || task.status !== "RUNNING" || (!task.evicted && !force)) return;
    const invocation = this.s.tasks.requeueInvocation(name, now);
    this.dispatch(run, name, task.attempt, invocation, now);
  }

  /** A DAG task's conditions decided: start it, skip it or cancel it, and plan on. */
  settleConditional(run: RunRecord, name: string, decided: "QUEUED" | "SKIPPED" | "CANCELLED" | "UNSATISFIABLE", now: number): void {
    if (decided === "QUEUED") this.queueTask(run, name, now, 0, 0);
    else if (decided === "SKIPPED") this.s.tasks.settle(name, "SKIPPED", now);
    else if (decided === "CANCELLED") {
      this.s.tasks.settle(name, "CANCELLED", now, errorData("task.condition_cancelled", "CancelledError", `a cancelIf condition of task '${name}' held`));
    } else {
      this.s.tasks.settle(
        name,
        "CANCELLED",
        now,
        errorData("task.condition_unsatisfiable", "ConditionError", `the waitFor of task '${name}' can never hold: a parent condition it needs is false`),
      );
    }
    this.advance(this.s.runs.get()!, now);
  }

  // -------------------------------------------------------------------------------------------
  // Messages that could not be delivered
  // -------------------------------------------------------------------------------------------

  /**
   * A message this run owed was dead-lettered. What waited on it fails, saying what could not be
   * delivered: a task whose dispatch or event subscription never arrived fails here; a child's
   * report that never reached its parent is replaced by a small `child_lost` notice, which fails
   * the parent's waiting task (that notice, cancels and child links are never given up on:
   * `NEVER_GIVEN_UP`). Index updates and unsubscriptions have no waiter: they are only kept.
   */
  deadLettered(run: RunRecord, dead: DeadLetter, now: number): void {
    const what = `${dead.kind} to ${dead.target} could not be delivered after ${dead.tries} tries (last error: ${dead.error})`;
    if (dead.kind === "child_ended" && run.parent) {
      const report = dead.payload as ChildEnded;
      const lost: ChildLost = { childRunId: run.runId, parentTask: report.parentTask, status: report.status, tries: dead.tries, error: dead.error };
      this.s.outbox.add("child_lost", dead.target, lost, now);
      return;
    }
    if (isTerminal(run.status)) return;
    if (dead.kind === "enqueue") {
      for (const item of (dead.payload as OutboxPayloads["enqueue"]).items) {
        // Only while it is still queued: a dispatch that landed but whose replies were lost may be running.
        const queued = (t: TaskRecord) => t.status === "QUEUED" && t.attempt === item.attempt && t.invocation === item.invocation;
        this.failWaiting(run, item.task, queued, `task '${item.task}' was never dispatched: ${what}`, now);
      }
    } else if (dead.kind === "subscribe") {
      // Only the tasks whose wait on that arming is still undecided: a wait decided since needs nothing.
      const waiting = (dead.payload as OutboxPayloads["subscribe"]).waiters.filter((w) => {
        const c = this.s.log.condition(w.ref.task, w.ref.seq, w.ref.list, w.ref.group, w.ref.leaf);
        return c !== null && c.arming === w.ref.arming && !c.decided && c.satisfiedAt === null;
      });
      for (const task of new Set(waiting.map((w) => w.ref.task))) {
        this.failWaiting(run, task, () => true, `task '${task}' waits for an event it can never receive: ${what}`, now);
      }
    }
  }

  /**
   * A queued claim whose dispatch its task queue sent `sends` times and that never started (the
   * caller checked it is still queued with that claim): it fails, not retried (a retry's start
   * would go the same way).
   */
  neverStarted(run: RunRecord, task: TaskRecord, sends: number, now: number): void {
    const message = `task '${task.name}' could not be started: its dispatch (attempt ${task.attempt}, invocation ${task.invocation}) was sent ${sends} times and never started (its start failed every time, or every message was lost)`;
    this.failWaiting(run, task.name, (t) => t.status === "QUEUED", message, now, "dispatch.not_started");
  }

  /** A child's report to this run was dead-lettered: the task waiting on that child fails. */
  childLost(run: RunRecord, lost: ChildLost, now: number): void {
    if (isTerminal(run.status)) return;
    const wait = this.s.runs.waitOf(lost.childRunId);
    if (!wait) return;
    const cp = this.s.log.get(wait.task, wait.seq);
    if (!cp || cp.status !== "pending") return;
    const message = `the report of child run ${lost.childRunId} (${lost.status}) could not be delivered to this run after ${lost.tries} tries (last error: ${lost.error})`;
    this.failWaiting(run, wait.task, () => true, message, now);
  }

  /**
   * An event bus could not deliver a met condition to this run within its tries: kept here too, and
   * the task waiting on that arming of the condition fails saying which event was lost.
   */
  conditionLost(run: RunRecord, lost: ConditionLost, target: string, now: number): void {
    const what = `event ${lost.eventId} met a condition of task '${lost.task}' but could not be delivered by ${lost.from} after ${lost.tries} tries (last error: ${lost.error})`;
    this.s.outbox.keepDeadLetter({ kind: "condition_met", target, payload: lost, tries: lost.tries, error: lost.error, at: now });
    if (isTerminal(run.status)) return;
    const c = this.s.log.condition(lost.task, lost.seq, lost.list, lost.group, lost.leaf);
    if (!c || c.arming !== lost.arming || c.decided) return;
    this.failWaiting(run, lost.task, () => true, what, now);
  }

  /** Fails a task that is still waiting (queued, or a durable task suspended), without retries. */
  private failWaiting(run: RunRecord, name: string, matches: (t: TaskRecord) => boolean, message: string, now: number, code = "delivery.dead_letter"): void {
    const task = this.s.tasks.get(name);
    if (!task || isTerminal(task.status) || !matches(task)) return;
    const error = errorData(code, "DeliveryError", message);
    if (task.status === "PENDING") {
      // A DAG task waiting on its conditions: it never started, so it fails without an attempt.
      this.waits.disarmTask(run, name);
      this.s.tasks.finish(name, task.attempt, "FAILED", now, { error });
      this.advance(run, now);
      return;
    }
    if (task.status === "QUEUED") this.dequeue(run, task);
    this.s.timers.clearTask(name);
    this.effects.watch(watchKey({ task: task.name, attempt: task.attempt, invocation: task.invocation }), { reason: "ended" });
    this.failAttempt(run, task, error, now);
  }

  // -------------------------------------------------------------------------------------------
  // The run as a whole
  // -------------------------------------------------------------------------------------------

  /** `error`: why, when something other than a request cancelled it (a concurrency strategy). */
  cancel(run: RunRecord, now: number, error?: ErrorData): void {
    const cancelled = error ?? errorData("run.cancelled", "CancelledError", "the run was cancelled");
    // An invocation running now holds its keys until its code has stopped: the worker's (late)
    // answer gives them back (`lateAnswer`), or the flow objects find the run ended (their holder check).
    const live = this.s.tasks.all().some((t) => t.status === "RUNNING" && !t.evicted);
    for (const task of this.s.tasks.all()) {
      if (isTerminal(task.status)) continue;
      if (task.status === "QUEUED") this.dequeue(run, task);
      this.waits.disarmTask(run, task.name);
      if (task.status === "PENDING") this.s.tasks.settle(task.name, "CANCELLED", now, cancelled);
      else this.s.tasks.finish(task.name, task.attempt, "CANCELLED", now, { error: cancelled });
      this.s.timers.clearTask(task.name);
      this.effects.watch(watchKey({ task: task.name, attempt: task.attempt, invocation: task.invocation }), { reason: "cancelled" });
    }
    for (const child of this.s.runs.children()) this.s.outbox.add("cancel_run", runObjectName(run.tenant, child), {}, now);
    this.endRun(run, "CANCELLED", now, error, live);
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
      this.waits.disarmTask(run, name);
      this.s.timers.clearTask(name);
      this.s.log.clear(name);
      // Its old children stay listed, but no new checkpoint may count them as its own.
      this.s.runs.detachChildren(name);
      this.s.tasks.reset(name);
    }
    this.s.runs.reopen();
    const reopened = this.s.runs.get()!;
    this.reportToIndex(reopened, now);
    this.advance(reopened, now);
  }

  endRun(run: RunRecord, status: "COMPLETED" | "FAILED" | "CANCELLED", now: number, cancelError?: ErrorData, keepFlow = false): void {
    const tasks = this.s.tasks.all();
    let error: ErrorData | null = cancelError ?? null;
    if (status === "FAILED") {
      const failed = tasks.find((t) => t.status === "FAILED" && t.error);
      error = failed?.error ? { ...failed.error, task: failed.name } : errorData("run.failed", "RunFailedError", "the run failed");
    }
    this.s.runs.end(status, now, error);
    if (!keepFlow) this.releaseRun(run, now);
    const ended = this.s.runs.get()!;
    this.reportToIndex(ended, now);
    if (ended.parent) {
      this.s.outbox.add("child_ended", runObjectName(ended.tenant, ended.parent.runId), this.childReport(ended, status, tasks, error), now);
    }
    this.effects.runEnded();
  }

  /**
   * What a child tells its parent. Its output becomes one row in the parent: a DAG child's output
   * (every task's) over the payload limit is reported as a failure saying so, not stored.
   */
  private childReport(run: RunRecord, status: ChildEnded["status"], tasks: TaskRecord[], error: ErrorData | null): ChildEnded {
    const report: ChildEnded = { childRunId: run.runId, parentTask: run.parent!.taskName, status, output: null, error };
    if (status !== "COMPLETED") return report;
    const output = runOutput(run.definition, tasks);
    const bytes = jsonBytes(output);
    if (bytes <= this.limits.maxPayloadBytes) return { ...report, output };
    const message = `the output of child run ${run.runId} is ${bytes} bytes; a child's output reaches its parent only up to ${this.limits.maxPayloadBytes} bytes`;
    return { ...report, status: "FAILED", error: errorData("payload.too_large", "PayloadTooLargeError", message) };
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

  }

  taskDef(run: RunRecord, name: string): TaskDefinition {
    const def = run.definition.tasks.find((t) => t.name === name);
    if (!def) throw new SpindleError("task.not_found", `no task '${name}' in workflow '${run.workflow}'`);
    return def;
  }
}
