/**
 * Spindle's SDK: everything a worker imports. Declare tasks and workflows, export the worker class,
 * trigger runs and watch them.
 */
export { Spindle } from "./spindle.js";
export type { SpindleOptions } from "./spindle.js";

export { Task, DurableTask } from "./task.js";
export type { TaskDeclaration, DurableTaskDeclaration } from "./task.js";
export { Workflow } from "./workflow.js";
export type { WorkflowDeclaration, DagTaskDeclaration, DagDurableTaskDeclaration, RoleTaskDeclaration } from "./workflow.js";
export { DurableContext } from "./durable-context.js";
export { SleepCondition, UserEventCondition, ParentCondition, Or, OrGroup } from "./conditions.js";
export type { ConditionSpec, LeafSpec } from "./conditions.js";
export { Runnable, RunRef, TaskRef } from "./runnable.js";
export type { RunOptions, RunManyOptions, RetryOptions, Priority, TaskFn } from "./runnable.js";
export { Context } from "./context.js";
export type { Logger, ChildSpec } from "./context.js";
export type { WorkerOptions, SpindleWorkerClass } from "./worker.js";

export {
  SpindleError,
  NonRetryableError,
  RunFailedError,
  RunCancelledError,
  TaskTimeoutError,
  TaskCancelledError,
  NonDeterminismError,
  ChildRunError,
  PayloadTooLargeError,
} from "./errors.js";

export { toMs } from "./duration.js";

export type {
  Duration,
  ErrorData,
  RunStatus,
  TaskStatus,
  RunView,
  TaskView,
  LostDispatchView,
  RunSummary,
  RunList,
  RunFilter,
  LogLine,
  EventPush,
  ChildResult,
  CheckpointRecord,
  WaitView,
} from "./protocol.js";

export { SpindleClient } from "./spindle-client.js";
export type { SpindleClientOptions, ClientRunOptions, RunHandle, Declared, WorkflowTarget, WorkerView } from "./spindle-client.js";
export type { ServedWorker } from "./serve.js";
