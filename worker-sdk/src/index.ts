/**
 * Spindle's SDK: everything a worker imports. Declare tasks and workflows, export the worker class,
 * trigger runs and watch them.
 */
export { Spindle } from "./spindle";
export type { SpindleOptions } from "./spindle";

export { Task } from "./task";
export type { TaskDeclaration } from "./task";
export { Workflow } from "./workflow";
export type { WorkflowDeclaration, DagTaskDeclaration, RoleTaskDeclaration } from "./workflow";
export { Runnable, RunRef, TaskRef } from "./runnable";
export type { RunOptions, RetryOptions, Priority, TaskFn } from "./runnable";
export { Context } from "./context";
export type { Logger, ChildSpec } from "./context";
export type { WorkerOptions, SpindleWorkerClass } from "./worker";

export {
  SpindleError,
  NonRetryableError,
  RunFailedError,
  RunCancelledError,
  TaskTimeoutError,
  TaskCancelledError,
} from "./errors";

export { toMs } from "./duration";

export type {
  Duration,
  ErrorData,
  RunStatus,
  TaskStatus,
  RunView,
  TaskView,
  RunSummary,
  RunList,
  RunFilter,
  LogLine,
} from "./protocol";
