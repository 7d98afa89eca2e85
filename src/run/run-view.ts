import type { CheckpointRecord, EventLogEntry, RunView, TaskDefinition, TaskView, WaitView } from "@spindle/worker-sdk/protocol";
import { evaluateFilter } from "../core/cel";
import { iso } from "../core/clock";
import { leaves } from "../core/conditions";
import { runOutput } from "../core/run-machine";
import { DAG_CONDITIONS_SEQ, type ConditionRecord, type DurableLog } from "./durable-log";
import type { RunRecord, RunStore } from "./run-store";
import type { TaskRecord, TaskStore } from "./task-store";

/** The run as the API shows it: status, input, output, error and every task with its attempts and logs. */
export function buildRunView(
  run: RunRecord,
  tasks: TaskStore,
  children: string[],
  extra: (name: string, def: TaskDefinition) => Partial<TaskView>,
): RunView {
  const byName = new Map(run.definition.tasks.map((t) => [t.name, t]));
  const all = tasks.all();
  return {
    runId: run.runId,
    workflow: run.workflow,
    status: run.status,
    input: run.input,
    // Assembled from the tasks' rows, one per output, never stored as one value.
    output: run.status === "COMPLETED" ? runOutput(run.definition, all) : null,
    error: run.error,
    additionalMetadata: run.metadata,
    priority: run.priority,
    createdAt: iso(run.createdAt)!,
    startedAt: iso(run.startedAt),
    finishedAt: iso(run.finishedAt),
    parent: run.parent ? { runId: run.parent.runId, taskName: run.parent.taskName } : null,
    children,
    ...(run.trigger ? { trigger: run.trigger } : {}),
    tasks: all.map((t) => {
      const def = byName.get(t.name)!;
      const view: TaskView = {
        name: t.name,
        taskRunId: t.taskRunId,
        kind: def.kind,
        role: def.role ?? null,
        parents: def.parents,
        status: t.status,
        retryCount: t.retryCount,
        attempt: t.attempt,
        output: t.output,
        error: t.error,
        queuedAt: iso(t.queuedAt),
        startedAt: iso(t.startedAt),
        finishedAt: iso(t.finishedAt),
        durationMs: t.startedAt !== null && t.finishedAt !== null ? t.finishedAt - t.startedAt : null,
        queuedReason: t.queuedReason,
        logs: tasks.logs(t.name),
        attempts: tasks.attempts(t.name).map((a) => ({
          attempt: a.attempt,
          retryCount: a.retryCount,
          status: a.status,
          startedAt: iso(a.startedAt),
          finishedAt: iso(a.finishedAt),
          error: a.error,
        })),
        lostDispatches: tasks.lostDispatches(t.name).map((l) => ({ attempt: l.attempt, invocation: l.invocation, at: iso(l.at)!, reason: l.reason })),
      };
      return { ...view, ...extra(t.name, def) };
    }),
  };
}

/** Why a condition's expression last failed to evaluate, if it did. */
export type ConditionErrorOf = (task: string, condition: ConditionRecord) => string | undefined;

/**
 * What a durable task (or a DAG task waiting on its conditions) adds to its view: whether it is
 * evicted, what it waits for (with the last evaluation error of each condition), and its event log.
 */
export function waitingView(
  task: TaskRecord,
  def: TaskDefinition,
  log: DurableLog,
  runs: RunStore,
  records: (task: string) => CheckpointRecord[],
  errorOf: ConditionErrorOf = () => undefined,
  parentOutput: (parent: string) => { output: unknown } | undefined = () => undefined,
): Partial<TaskView> {
  if (def.kind !== "durable") {
    const view: Partial<TaskView> = {};
    const errors = parentConditionErrors(def, parentOutput);
    if (errors.length) view.conditionErrors = errors;
    if (task.status !== "PENDING") return view;
    const waits = waitsOf(task.name, DAG_CONDITIONS_SEQ, "wait", "conditions", log, runs, errorOf);
    return waits.conditions?.length ? { ...view, waitingFor: [waits] } : view;
  }
  const checkpoints = log.all(task.name);
  const bySeq = new Map(checkpoints.map((c) => [c.seq, c]));
  const eventLog = records(task.name).map((r) => {
    const c = bySeq.get(r.seq);
    const entry: EventLogEntry = { ...r };
    if (c) entry.recordedAt = iso(c.createdAt)!;
    if (c?.data?.dueAt !== undefined) entry.dueAt = iso(c.data.dueAt)!;
    return entry;
  });
  return {
    evicted: task.evicted,
    invocations: task.invocation + (task.attempt > 0 ? 1 : 0),
    waitingFor: checkpoints.filter((c) => c.status === "pending").map((c) => waitsOf(task.name, c.seq, c.kind, c.key, log, runs, errorOf, c.data?.children)),
    eventLog,
  };
}

/**
 * The parent conditions of a DAG task that fail to evaluate on their parent's (final) output. They
 * counted as false when the task was decided; evaluated again here, they give the same error.
 */
function parentConditionErrors(def: TaskDefinition, parentOutput: (parent: string) => { output: unknown } | undefined): string[] {
  const errors: string[] = [];
  for (const [name, list] of [["waitFor", def.waitFor], ["skipIf", def.skipIf], ["cancelIf", def.cancelIf]] as const) {
    for (const { group, leaf, condition } of leaves(list ?? [])) {
      if (condition.kind !== "parent") continue;
      const parent = parentOutput(condition.parent);
      if (!parent) continue;
      const { error } = evaluateFilter(condition.expression, { output: parent.output });
      if (error !== undefined) errors.push(`${name}[${group}]${list?.[group]?.kind === "or" ? `.conditions[${leaf}]` : ""}: ${condition.expression}: ${error}`);
    }
  }
  return errors;
}

function waitsOf(
  task: string,
  seq: number,
  kind: string,
  key: string,
  log: DurableLog,
  runs: RunStore,
  errorOf: ConditionErrorOf,
  children?: string[],
): WaitView {
  const view: WaitView = { seq, kind: kind as WaitView["kind"], key };
  const order = { wait: 0, skip: 1, cancel: 2 } as const;
  const conditions = log
    .conditions(task, seq)
    .filter((c) => !c.decided || c.satisfiedAt !== null)
    .sort((a, b) => order[a.list] - order[b.list] || a.group - b.group || a.leaf - b.leaf);
  if (conditions.length) {
    view.conditions = conditions.map((c) => {
      const entry: NonNullable<WaitView["conditions"]>[number] = { ...c.spec, list: c.list, group: c.group, satisfied: c.satisfiedAt !== null };
      if (c.spec.kind === "sleep") entry.dueAt = iso(c.armedAt + c.spec.durationMs)!;
      const error = c.satisfiedAt === null ? errorOf(task, c) : undefined;
      if (error !== undefined) entry.error = error;
      return entry;
    });
  }
  if (children) view.children = { total: children.length, done: children.length - runs.unfinishedChildren(task, seq) };
  return view;
}
