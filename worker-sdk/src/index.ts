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
export type { RunOptions, RunManyOptions, RetryOptions, Priority, TaskFn, ScheduleOptions, CronOptions, TriggerOptions } from "./runnable.js";
export { Context } from "./context.js";
export { ConcurrencyLimitStrategy } from "./flow.js";
export type { ConcurrencyOptions, ConcurrencyDeclaration, RateLimitDeclaration, FlowOptions } from "./flow.js";
export type { TaskFlowOptions } from "./runnable.js";
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
  FlowDeclarationError,
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
  EventPushResult,
  EventView,
  EventList,
  EventFilter,
  FilterSpec,
  FilterCreate,
  FilterView,
  FilterList,
  CronCreate,
  CronView,
  CronList,
  CronFilter,
  ScheduleCreate,
  ScheduleView,
  ScheduleList,
  ScheduleFilter,
  ScheduleStatus,
  RunTrigger,
  RateLimitDuration,
  RateLimitView,
  ConcurrencyKeyView,
} from "./protocol.js";

export { SpindleClient } from "./spindle-client.js";
export type { SpindleClientOptions, ClientRunOptions, RunHandle, Declared, WorkflowTarget, WorkerView } from "./spindle-client.js";
export type { ServedWorker } from "./serve.js";
