/**
 * Spindle's SDK: everything a worker imports. Declare tasks and workflows, export the worker class,
 * trigger runs and watch them.
 */
export { Spindle } from "./spindle";
export type { SpindleOptions } from "./spindle";

export { Task, DurableTask } from "./task";
export type { TaskDeclaration, DurableTaskDeclaration } from "./task";
export { Workflow } from "./workflow";
export type { WorkflowDeclaration, DagTaskDeclaration, DagDurableTaskDeclaration, RoleTaskDeclaration } from "./workflow";
export { DurableContext } from "./durable-context";
export { SleepCondition, UserEventCondition, ParentCondition, Or, OrGroup } from "./conditions";
export type { ConditionSpec, LeafSpec } from "./conditions";
export { Runnable, RunRef, TaskRef } from "./runnable";
export type { RunOptions, RunManyOptions, RetryOptions, Priority, TaskFn, ScheduleOptions, CronOptions, TriggerOptions } from "./runnable";
export { Context } from "./context";
export { ConcurrencyLimitStrategy } from "./flow";
export type { ConcurrencyOptions, ConcurrencyDeclaration, RateLimitDeclaration, FlowOptions } from "./flow";
export type { TaskFlowOptions } from "./runnable";
export type { Logger, ChildSpec } from "./context";
export type { WorkerOptions, SpindleWorkerClass } from "./worker";

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
} from "./errors";

export { toMs } from "./duration";

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
} from "./protocol";
