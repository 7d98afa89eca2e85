import type { TaskStatus, WorkflowDefinition } from "@spindle/worker-sdk/protocol";
import { isTerminal, parentsDoomed, parentsSatisfied } from "./dag";

/**
 * The state machine of a run, pure. Given the definition and every task's status, it says what
 * happens next: which pending tasks may start, which can never run, and whether the run has ended.
 * The `WorkflowRun` object applies a plan and asks again until nothing changes.
 */
export interface RunPlan {
  /** Pending DAG tasks whose parents are all done: they start now, or arm their conditions. */
  ready: string[];
  /** Pending tasks with a failed or cancelled parent: they end CANCELLED without running. */
  doomed: string[];
  /** An on-failure or on-success task that the outcome did not call for: it ends SKIPPED. */
  unneeded: string[];
  /** The run's final status once nothing is left to run. */
  end: "COMPLETED" | "FAILED" | null;
}

export function planRun(
  def: WorkflowDefinition,
  statuses: ReadonlyMap<string, TaskStatus>,
  /** Pending tasks already waiting on their conditions: not ready again. */
  armed: ReadonlySet<string> = new Set(),
): RunPlan {
  const statusOf = (name: string): TaskStatus => statuses.get(name) ?? "PENDING";
  const plan: RunPlan = { ready: [], doomed: [], unneeded: [], end: null };
  const dagTasks = def.tasks.filter((t) => !t.role);

  for (const task of dagTasks) {
    if (statusOf(task.name) !== "PENDING") continue;
    if (parentsDoomed(task, statusOf)) plan.doomed.push(task.name);
    else if (parentsSatisfied(task, statusOf) && !armed.has(task.name)) plan.ready.push(task.name);
  }
  if (plan.ready.length > 0 || plan.doomed.length > 0) return plan;
  if (!dagTasks.every((t) => isTerminal(statusOf(t.name)))) return plan;

  const failed = dagTasks.some((t) => statusOf(t.name) === "FAILED" || statusOf(t.name) === "CANCELLED");
  const onFailure = def.tasks.find((t) => t.role === "on_failure");
  const onSuccess = def.tasks.find((t) => t.role === "on_success");
  const wanted = failed ? onFailure : onSuccess;
  const unwanted = failed ? onSuccess : onFailure;

  if (unwanted && statusOf(unwanted.name) === "PENDING") plan.unneeded.push(unwanted.name);
  if (wanted) {
    const status = statusOf(wanted.name);
    if (status === "PENDING") {
      plan.ready.push(wanted.name);
      return plan;
    }
    if (!isTerminal(status)) return plan;
    // An on-success task that fails fails the run; an on-failure task never rescues it.
    plan.end = failed || status !== "COMPLETED" ? "FAILED" : "COMPLETED";
    return plan;
  }
  plan.end = failed ? "FAILED" : "COMPLETED";
  return plan;
}

/** The run's output: the task's output for a standalone task, an object keyed by task for a DAG. */
export function runOutput(
  def: WorkflowDefinition,
  tasks: readonly { name: string; status: TaskStatus; output: unknown }[],
): unknown {
  if (def.kind === "task") return tasks.find((t) => t.name === def.tasks[0]?.name)?.output ?? null;
  const out: Record<string, unknown> = {};
  for (const t of tasks) if (t.status === "COMPLETED") out[t.name] = t.output;
  return out;
}
