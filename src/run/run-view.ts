import type { RunView, TaskView } from "@spindle/worker-sdk/protocol";
import { iso } from "../core/clock";
import type { RunRecord } from "./run-store";
import type { TaskStore } from "./task-store";

/** The run as the API shows it: status, input, output, error and every task with its attempts and logs. */
export function buildRunView(
  run: RunRecord,
  tasks: TaskStore,
  children: string[],
  durable: (name: string) => Partial<TaskView>,
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
      const def = byName.get(t.name);
      const view: TaskView = {
        name: t.name,
        taskRunId: t.taskRunId,
        kind: def?.kind ?? "task",
        role: def?.role ?? null,
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
      };
      return def?.kind === "durable" ? { ...view, ...durable(t.name) } : view;
    }),
  };
}
