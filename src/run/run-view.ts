import type { CheckpointRecord, RunView, TaskDefinition, TaskView, WaitView } from "@spindle/worker-sdk/protocol";
import { iso } from "../core/clock";
import { DAG_CONDITIONS_SEQ, toRecord, type DurableLog } from "./durable-log";
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
  return {
    runId: run.runId,
    workflow: run.workflow,
    status: run.status,
    input: run.input,
    output: run.output,
    error: run.error,
    additionalMetadata: run.metadata,
    priority: run.priority,
    createdAt: iso(run.createdAt)!,
    startedAt: iso(run.startedAt),
    finishedAt: iso(run.finishedAt),
    parent: run.parent ? { runId: run.parent.runId, taskName: run.parent.taskName } : null,
    children,
    tasks: tasks.all().map((t) => {
      const def = byName.get(t.name)!;
      const view: TaskView = {
        name: t.name,
        taskRunId: t.taskRunId,
        kind: def.kind,
        role: def.role ?? null,
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

/**
 * What a durable task (or a DAG task waiting on its conditions) adds to its view: whether it is
 * evicted, what it waits for, and its event log.
 */
export function waitingView(task: TaskRecord, def: TaskDefinition, log: DurableLog, runs: RunStore): Partial<TaskView> {
  if (def.kind !== "durable") {
    if (task.status !== "PENDING") return {};
    const waits = waitsOf(task.name, DAG_CONDITIONS_SEQ, "wait", "conditions", log, runs);
    return waits.conditions?.length ? { waitingFor: [waits] } : {};
  }
  const checkpoints = log.all(task.name);
  const eventLog: CheckpointRecord[] = checkpoints.map(toRecord);
  return {
    evicted: task.evicted,
    invocations: task.invocation + (task.attempt > 0 ? 1 : 0),
    waitingFor: checkpoints.filter((c) => c.status === "pending").map((c) => waitsOf(task.name, c.seq, c.kind, c.key, log, runs, c.data?.children)),
    eventLog,
  };
}

function waitsOf(
  task: string,
  seq: number,
  kind: string,
  key: string,
  log: DurableLog,
  runs: RunStore,
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
      return entry;
    });
  }
  if (children) view.children = { total: children.length, done: children.length - runs.unfinishedChildren(task, seq) };
  return view;
}
