import {
  describeCall as formatCall,
  type CheckpointRecord,
  type CheckpointReply,
  type CheckpointRequest,
  type CheckpointResult,
  type ChildResult,
  type ConditionData,
  type ErrorData,
  type TaskDefinition,
} from "@spindle/worker-sdk/protocol";
import { matches } from "../core/cel";
import { clock } from "../core/clock";
import { evaluate, leafId, leaves } from "../core/conditions";
import { isTerminal } from "../core/dag";
import { errorData, SpindleError } from "../core/errors";
import { jsonBytes, MAX_ASSIGNMENT_PAYLOAD_BYTES } from "../core/limits";
import { eventBusName, waiterId } from "../core/names";
import type { Waiter } from "../events/event-bus";
import { DAG_CONDITIONS_SEQ, toRecord, type Checkpoint, type ConditionList } from "./durable-log";
import type { Stores } from "./machine";
import type { ChildEnded, OutboxPayloads } from "./outbox-delivery";
import type { RunRecord } from "./run-store";
import type { TaskRecord } from "./task-store";

/** What the waits need from the rest of the run's transitions. */
export interface WaitHost {
  taskDef(run: RunRecord, name: string): TaskDefinition;
  wake(run: RunRecord, name: string, now: number, force?: boolean): void;
  settleConditional(run: RunRecord, name: string, decided: "QUEUED" | "SKIPPED" | "CANCELLED" | "UNSATISFIABLE", now: number): void;
}

/**
 * The waiting side of a run, applied inside its transaction like the rest of `RunMachine`: durable
 * checkpoints, what a wait waits on (sleeps as timers, events as subscriptions on the bus, child
 * runs), the conditions of DAG tasks, and waking a durable task when a wait resolves.
 */
export class Waits {
  constructor(
    private readonly s: Stores,
    private readonly machine: WaitHost,
  ) {}

  /** Arms a ready DAG task's conditions and decides it if they already say. False: it has none. */
  armDagConditions(run: RunRecord, name: string, now: number): boolean {
    const def = this.machine.taskDef(run, name);
    const lists: [ConditionList, ConditionData[] | undefined][] = [
      ["wait", def.waitFor],
      ["skip", def.skipIf],
      ["cancel", def.cancelIf],
    ];
    if (lists.every(([, l]) => !l || l.length === 0)) return false;
    for (const [list, conditions] of lists) if (conditions?.length) this.arm(run, name, DAG_CONDITIONS_SEQ, list, conditions, now);
    this.decideDagTask(run, name, now);
    return true;
  }

  /** A conditional DAG task: cancel, skip or start it as soon as one of its lists holds. */
  private decideDagTask(run: RunRecord, name: string, now: number): void {
    const task = this.s.tasks.get(name);
    if (!task || task.status !== "PENDING") return;
    const def = this.machine.taskDef(run, name);
    const state = this.conditionState(name, DAG_CONDITIONS_SEQ);
    const holds = (list: ConditionList, conditions: ConditionData[] | undefined) =>
      !!conditions?.length && evaluate(conditions, state.get(list) ?? new Map()).holds;
    // cancelIf wins over skipIf, which wins over waitFor. With no waitFor the task starts at once:
    // a skip or cancel that hangs on an event or a sleep can no longer matter once it runs.
    let decided: "CANCELLED" | "SKIPPED" | "QUEUED" | "UNSATISFIABLE" | null = null;
    if (holds("cancel", def.cancelIf)) decided = "CANCELLED";
    else if (holds("skip", def.skipIf)) decided = "SKIPPED";
    else if (!def.waitFor?.length || holds("wait", def.waitFor)) decided = "QUEUED";
    else if (this.neverHolds(name, def.waitFor)) decided = "UNSATISFIABLE";
    if (!decided) return;
    this.disarm(run, name, DAG_CONDITIONS_SEQ);
    this.machine.settleConditional(run, name, decided, now);
  }

  /**
   * Records a call of a durable task in its event log. Calls are identified as the SDK matches them
   * (kind, key and occurrence): a call already recorded at this position must be the same call, and
   * a new call may not be one the log already holds elsewhere, or the replay is not deterministic.
   * A stale invocation (not the task's current one) may not write at all.
   */
  checkpoint(run: RunRecord, req: CheckpointRequest, now: number): CheckpointReply {
    if (!Number.isInteger(req.seq) || req.seq < 0) throw new SpindleError("request.invalid", `seq: must be a non-negative integer, got ${req.seq}`);
    const occurrence = req.occurrence ?? 0;
    if (!Number.isInteger(occurrence) || occurrence < 0) {
      throw new SpindleError("request.invalid", `occurrence: must be a non-negative integer, got ${req.occurrence}`);
    }
    const task = this.s.tasks.get(req.task);
    const def = this.machine.taskDef(run, req.task);
    if (def.kind !== "durable") throw new SpindleError("task.not_durable", `task '${req.task}' is not a durable task`);
    if (!task || task.attempt !== req.attempt || task.invocation !== req.invocation || task.status !== "RUNNING" || task.evicted) {
      throw new SpindleError("task.superseded", `invocation ${req.invocation} of attempt ${req.attempt} of task '${req.task}' is no longer current`);
    }
    const call = { kind: req.kind, key: req.key, occurrence };
    const recorded = this.s.log.get(req.task, req.seq);
    if (recorded) {
      if (recorded.kind !== req.kind || recorded.key !== req.key || recorded.occurrence !== occurrence) throw nonDeterminism(req.seq, recorded, call);
      return recorded.status === "resolved" ? { status: "resolved", result: this.resultOf(recorded)! } : { status: "pending" };
    }
    const elsewhere = this.s.log.byIdentity(req.task, req.kind, req.key, occurrence);
    if (elsewhere) {
      throw new SpindleError(
        "replay.non_determinism",
        `non-deterministic replay at checkpoint ${req.seq}: ${describeCall(call)} is already recorded at checkpoint ${elsewhere.seq}`,
      );
    }
    switch (req.kind) {
      case "memo":
      case "spawn": {
        const result = req.kind === "memo" ? (req.result ?? { value: null }) : { value: req.children ?? [] };
        const bytes = this.logBytes(req.task) + jsonBytes(result);
        if (bytes > MAX_ASSIGNMENT_PAYLOAD_BYTES) {
          throw new SpindleError(
            "payload.too_large",
            `recording checkpoint ${req.seq} would make the event log of task '${req.task}' ${bytes} bytes; a durable task's log travels whole in each assignment, limited to ${MAX_ASSIGNMENT_PAYLOAD_BYTES} bytes`,
          );
        }
        this.s.log.insert({ task: req.task, seq: req.seq, kind: req.kind, key: req.key, occurrence, invocation: req.invocation, data: null, result }, now);
        if (req.children) for (const [i, id] of req.children.entries()) this.s.runs.addChild(id, req.task, i);
        return { status: "resolved", result };
      }
      case "sleep":
      case "wait": {
        const conditions: ConditionData[] =
          req.kind === "sleep" ? [{ kind: "sleep", durationMs: Math.max(0, req.untilMs !== undefined ? req.untilMs - now : sleepMs(req.conditions)) }] : (req.conditions ?? []);
        this.s.log.insert({ task: req.task, seq: req.seq, kind: req.kind, key: req.key, occurrence, invocation: req.invocation, data: { conditions } }, now);
        this.arm(run, req.task, req.seq, "wait", conditions, now);
        this.resolveWaitIfMet(run, req.task, req.seq, now);
        break;
      }
      case "child":
      case "children": {
        const children = req.children ?? [];
        this.s.log.insert({ task: req.task, seq: req.seq, kind: req.kind, key: req.key, occurrence, invocation: req.invocation, data: { children } }, now);
        this.s.runs.addWaitedChildren(req.task, req.seq, children);
        this.resolveChildrenIfDone(run, req.task, req.seq, now);
        break;
      }
    }
    const after = this.s.log.get(req.task, req.seq)!;
    return after.status === "resolved" ? { status: "resolved", result: this.resultOf(after)! } : { status: "pending" };
  }

  /** What a durable task's event log weighs in its assignment: its results and its children's outputs. */
  private logBytes(task: string): number {
    return this.s.log.resultBytes(task) + this.s.runs.waitedOutputBytes(task);
  }

  /** A task's event log as it leaves the engine, each result assembled (see `resultOf`). */
  records(task: string): CheckpointRecord[] {
    return this.s.log.all(task).map((cp) => {
      const result = this.resultOf(cp);
      return toRecord(result ? { ...cp, result } : cp);
    });
  }

  /**
   * A checkpoint's result. A fan-out's is its children's outcomes, each in its own row, and a
   * wait's is what its conditions' rows say fired: both are assembled here, when they are read.
   */
  resultOf(cp: Checkpoint): CheckpointResult | undefined {
    if (cp.result || cp.status !== "resolved") return cp.result;
    if (cp.kind === "child" || cp.kind === "children") {
      const value: ChildResult[] = this.s.runs
        .waitedOutcomes(cp.task, cp.seq)
        .map((o) => ({ runId: o.runId, status: o.status as ChildResult["status"], output: o.output, error: o.error }));
      return { value };
    }
    if (cp.kind === "wait") {
      const conditions = (cp.data?.conditions ?? []) as ConditionData[];
      return { value: evaluate(conditions, this.conditionState(cp.task, cp.seq).get("wait") ?? new Map()).fired };
    }
    return cp.result;
  }

  /** A durable invocation ended at a wait: evict it, or queue it again if the wait already resolved. */
  suspend(run: RunRecord, task: TaskRecord, waitingOn: number[], now: number): void {
    const stillPending = new Set(this.s.log.pending(task.name).map((c) => c.seq));
    const resolvedMeanwhile = waitingOn.length === 0 || waitingOn.some((seq) => !stillPending.has(seq));
    if (resolvedMeanwhile) this.machine.wake(run, task.name, now, true);
    else this.s.tasks.evict(task.name);
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
    // The results reach the task in its assignment (one RPC): refuse, clearly, what could not.
    const bytes = this.logBytes(task);
    const result =
      bytes > MAX_ASSIGNMENT_PAYLOAD_BYTES
        ? {
            error: errorData(
              "payload.too_large",
              "PayloadTooLargeError",
              `with the outputs of the children of checkpoint ${seq}, the event log of task '${task}' holds ${bytes} bytes; a durable task's log travels whole in each assignment, limited to ${MAX_ASSIGNMENT_PAYLOAD_BYTES} bytes`,
            ),
          }
        : null;
    if (this.s.log.resolve(task, seq, result, now)) this.machine.wake(run, task, now);
  }

  /** Records each leaf, evaluates parent conditions now, sets sleeps' timers, subscribes to events. */
  private arm(run: RunRecord, task: string, seq: number, list: ConditionList, conditions: ConditionData[], now: number): void {
    const waiters = new Map<string, Waiter[]>();
    const arming = crypto.randomUUID();
    for (const { group, leaf, condition } of leaves(conditions)) {
      this.s.log.addCondition({ task, seq, list, group, leaf, spec: condition, armedAt: now, arming });
      const ref = { task, seq, list, group, leaf, arming };
      if (condition.kind === "sleep") {
        this.s.timers.set("condition", task, seq, now + condition.durationMs, null, `${list}:${leafId(group, leaf)}`);
      } else if (condition.kind === "parent") {
        const parent = this.s.tasks.get(condition.parent);
        if (parent?.status === "COMPLETED" && matches(condition.expression, { output: parent.output })) {
          this.s.log.satisfy(ref, parent.output, now);
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
  conditionSatisfied(
    run: RunRecord,
    ref: { task: string; seq: number; list: ConditionList; group: number; leaf: number; arming: string },
    result: unknown,
    now: number,
  ): void {
    if (!this.s.log.satisfy(ref, result, now)) return;
    if (ref.seq === DAG_CONDITIONS_SEQ) this.decideDagTask(run, ref.task, now);
    else this.resolveWaitIfMet(run, ref.task, ref.seq, now);
  }

  private resolveWaitIfMet(run: RunRecord, task: string, seq: number, now: number): void {
    const cp = this.s.log.get(task, seq);
    if (!cp || cp.status !== "pending") return;
    const conditions = (cp.data?.conditions ?? []) as ConditionData[];
    const { holds } = evaluate(conditions, this.conditionState(task, seq).get("wait") ?? new Map());
    if (!holds) return;
    // A wait's result (every event that fired) is read back from its conditions' rows: not stored twice.
    const result = cp.kind === "sleep" ? { value: { durationMs: (conditions[0] as { durationMs: number }).durationMs } } : null;
    this.disarm(run, task, seq);
    if (this.s.log.resolve(task, seq, result, now)) this.machine.wake(run, task, now);
  }

  /**
   * A waitFor list can never hold once one of its entries has only parent conditions left and
   * none of them held: a parent's output is final, so they never will.
   */
  private neverHolds(task: string, waitFor: ConditionData[]): boolean {
    const rows = this.s.log.conditions(task, DAG_CONDITIONS_SEQ).filter((c) => c.list === "wait");
    return waitFor.some((_entry, group) => {
      const leaves = rows.filter((c) => c.group === group);
      return leaves.length > 0 && leaves.every((c) => c.spec.kind === "parent" && c.satisfiedAt === null);
    });
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
      byTarget.set(target, [...(byTarget.get(target) ?? []), waiterId(run.runId, { task, seq, list: c.list, group: c.group, leaf: c.leaf, arming: c.arming })]);
    }
    for (const [target, ids] of byTarget) this.s.outbox.add("unsubscribe", target, { ids } satisfies OutboxPayloads["unsubscribe"], clock.now());
    this.s.log.markDecided(task, seq);
  }

  /** A task ended or was reset: nothing of it may wait on anything any more. */
  disarmTask(run: RunRecord, name: string): void {
    for (const seq of this.s.log.armedSeqs(name)) this.disarm(run, name, seq);
  }
}

function sleepMs(conditions: ConditionData[] | undefined): number {
  const first = conditions?.[0];
  return first && first.kind === "sleep" ? first.durationMs : 0;
}

type Call = { kind: string; key: string; occurrence: number };

function nonDeterminism(seq: number, recorded: Call, now: Call): SpindleError {
  return new SpindleError(
    "replay.non_determinism",
    `non-deterministic replay at checkpoint ${seq}: the log recorded ${describeCall(recorded)} but the task now called ${describeCall(now)}`,
  );
}

/** Names a call the way the SDK's NonDeterminismError does. */
const describeCall = (c: Call) => formatCall(c.kind, c.key, c.occurrence);
