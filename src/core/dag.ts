import type { TaskDefinition, TaskStatus, WorkflowDefinition } from "@spindle/worker-sdk/protocol";
import { validateConditions } from "./conditions";
import { SpindleError } from "./errors";

/**
 * DAG rules, pure: which definitions are valid, which tasks are ready, which are doomed by an
 * upstream failure, and when a run has ended.
 */

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

export function validateWorkflow(def: WorkflowDefinition): void {
  const fail = (path: string, message: string): never => {
    throw new SpindleError("workflow.invalid", `workflow '${def.name}': ${path}: ${message}`, {
      fields: [{ path, message }],
    });
  };
  if (!NAME_PATTERN.test(def.name)) fail("name", "must be 1-128 letters, digits, '_', '.', ':' or '-'");
  if (def.tasks.length === 0) fail("tasks", "a workflow needs at least one task");
  const names = new Set<string>();
  def.tasks.forEach((task, i) => {
    if (!NAME_PATTERN.test(task.name)) fail(`tasks[${i}].name`, "must be 1-128 letters, digits, '_', '.', ':' or '-'");
    if (names.has(task.name)) fail(`tasks[${i}].name`, `duplicate task name '${task.name}'`);
    names.add(task.name);
  });
  const roles = def.tasks.filter((t) => t.role);
  for (const role of ["on_failure", "on_success"] as const) {
    if (roles.filter((t) => t.role === role).length > 1) fail("tasks", `at most one ${role} task`);
  }
  def.tasks.forEach((task, i) => {
    if (task.role && task.parents.length > 0) fail(`tasks[${i}].parents`, `an ${task.role} task has no parents`);
    task.parents.forEach((parent, j) => {
      if (!names.has(parent)) fail(`tasks[${i}].parents[${j}]`, `unknown parent '${parent}'`);
      if (def.tasks.find((t) => t.name === parent)?.role) fail(`tasks[${i}].parents[${j}]`, `'${parent}' is not a DAG task`);
    });
    if (task.retries < 0 || !Number.isInteger(task.retries)) fail(`tasks[${i}].retries`, "must be a non-negative integer");
    if (!(task.executionTimeoutMs > 0)) fail(`tasks[${i}].executionTimeoutMs`, "must be positive");
    if (!(task.scheduleTimeoutMs > 0)) fail(`tasks[${i}].scheduleTimeoutMs`, "must be positive");
    for (const list of ["waitFor", "skipIf", "cancelIf"] as const) {
      const conditions = task[list];
      if (!conditions?.length) continue;
      if (task.role) fail(`tasks[${i}].${list}`, `an ${task.role} task takes no conditions`);
      try {
        validateConditions(conditions, `tasks[${i}].${list}`, task.parents);
      } catch (err) {
        const e = err as SpindleError;
        throw new SpindleError("workflow.invalid", `workflow '${def.name}': ${e.message}`, { fields: e.fields });
      }
    }
  });
  const cycle = findCycle(def.tasks.filter((t) => !t.role));
  if (cycle) fail("tasks", `dependency cycle: ${cycle.join(" -> ")}`);
}

function findCycle(tasks: TaskDefinition[]): string[] | null {
  const parents = new Map(tasks.map((t) => [t.name, t.parents]));
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const visit = (name: string): string[] | null => {
    if (state.get(name) === "done") return null;
    if (state.get(name) === "visiting") return [...stack.slice(stack.indexOf(name)), name];
    state.set(name, "visiting");
    stack.push(name);
    for (const p of parents.get(name) ?? []) {
      const found = visit(p);
      if (found) return found;
    }
    stack.pop();
    state.set(name, "done");
    return null;
  };
  for (const t of tasks) {
    const found = visit(t.name);
    if (found) return found;
  }
  return null;
}

/** A task's parents have all finished well enough for it to start (completed or skipped). */
export function parentsSatisfied(task: TaskDefinition, statusOf: (name: string) => TaskStatus): boolean {
  return task.parents.every((p) => {
    const s = statusOf(p);
    return s === "COMPLETED" || s === "SKIPPED";
  });
}

/** A parent ended in a way that means this task can never run. */
export function parentsDoomed(task: TaskDefinition, statusOf: (name: string) => TaskStatus): boolean {
  return task.parents.some((p) => {
    const s = statusOf(p);
    return s === "FAILED" || s === "CANCELLED";
  });
}

/** Every task downstream of `names` (not including them), in definition order. */
export function descendants(def: WorkflowDefinition, names: Iterable<string>): string[] {
  const found = new Set<string>(names);
  let grew = true;
  while (grew) {
    grew = false;
    for (const t of def.tasks) {
      if (!found.has(t.name) && t.parents.some((p) => found.has(p))) {
        found.add(t.name);
        grew = true;
      }
    }
  }
  const seeds = new Set(names);
  return def.tasks.filter((t) => found.has(t.name) && !seeds.has(t.name)).map((t) => t.name);
}

export function isTerminal(status: TaskStatus): boolean {
  return status === "COMPLETED" || status === "FAILED" || status === "CANCELLED" || status === "SKIPPED";
}
