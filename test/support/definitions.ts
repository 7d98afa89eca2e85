import type { TaskDefinition, WorkerRegistration, WorkflowDefinition } from "@spindle/worker-sdk/protocol";

/** A task definition with test defaults: no retries, 1 s timeouts. */
export const taskDef = (name: string, parents: string[] = [], extra: Partial<TaskDefinition> = {}): TaskDefinition => ({
  name,
  kind: "task",
  parents,
  retries: 0,
  executionTimeoutMs: 1000,
  scheduleTimeoutMs: 1000,
  ...extra,
});

export const workflowDef = (name: string, tasks: TaskDefinition[], kind: WorkflowDefinition["kind"] = "workflow"): WorkflowDefinition => ({
  name,
  kind,
  tasks,
});

/** A registration as a worker would push it. */
export const registration = (name: string, workflows: WorkflowDefinition[], slots = 1): WorkerRegistration => ({
  name,
  slots,
  durableSlots: slots,
  sdkVersion: "test",
  workflows,
});
