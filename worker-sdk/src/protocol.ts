/**
 * The wire contract between the Spindle engine and the workers that run tasks.
 *
 * Everything here crosses a boundary (service-binding RPC, a queue message or HTTP), so it is plain
 * data: no classes (and the helpers here are pure functions of that data). The engine imports these types from the SDK package so both sides
 * agree on one definition.
 */

/** A duration: milliseconds, or a string such as "500ms", "10s", "5m", "1h", "2d". */
export type Duration = number | string;

export type JsonSchema = Record<string, unknown>;

export type RunStatus = "QUEUED" | "RUNNING" | "COMPLETED" | "FAILED" | "CANCELLED";
/** PENDING: waiting for its parents (or its conditions). SKIPPED: a skipIf condition held. */
export type TaskStatus = RunStatus | "PENDING" | "SKIPPED";

export const TERMINAL_RUN_STATUSES: readonly RunStatus[] = ["COMPLETED", "FAILED", "CANCELLED"];

/** An error as data: what crosses RPC, queues and HTTP. Classify by `code`, never by class. */
export interface ErrorData {
  /** Dotted code, e.g. `task.failed`, `task.timeout`, `input.invalid`, `replay.non_determinism`. */
  code: string;
  /** The thrown error's type name (`TypeError`, `NonRetryableError`, ...). */
  name: string;
  message: string;
  /** False when retrying cannot help (NonRetryableError, bad input, non-determinism). */
  retryable: boolean;
  stack?: string;
  /** Field paths for validation errors. */
  fields?: { path: string; message: string }[];
  /** On a run's error: the task whose failure failed the run. */
  task?: string;
}

export type LogLevel = "info" | "warn" | "error";
export interface LogLine {
  at: number;
  level: LogLevel;
  message: string;
}

// ---------------------------------------------------------------------------------------------
// Conditions (waitFor / skipIf / cancelIf on DAG tasks, and durable waits)
// ---------------------------------------------------------------------------------------------

export interface SleepConditionData {
  kind: "sleep";
  durationMs: number;
  /** The key its result is reported under (default `sleep`). */
  key?: string;
}
export interface EventConditionData {
  kind: "event";
  eventKey: string;
  /** CEL over `input` (the event payload) and `additional_metadata`. */
  expression?: string;
  /** Only events pushed with this scope match. */
  scope?: string;
  /** Also match an event pushed this long before the wait was reached (at most 24 h). */
  lookbackMs?: number;
  /** The key its result is reported under (default: the event key). */
  key?: string;
}
export interface ParentConditionData {
  kind: "parent";
  parent: string;
  /** CEL over `output` (the parent's output). */
  expression: string;
  key?: string;
}
export type LeafCondition = SleepConditionData | EventConditionData | ParentConditionData;
/** One group is an OR of its leaves; a list of groups is an AND. */
export interface OrGroupData {
  kind: "or";
  conditions: LeafCondition[];
}
export type ConditionData = LeafCondition | OrGroupData;

/** The key a fired condition's result is reported under, so code can branch on which fired. */
export function conditionKey(c: LeafCondition): string {
  if (c.key) return c.key;
  if (c.kind === "event") return c.eventKey;
  if (c.kind === "sleep") return "sleep";
  return `parent:${c.parent}`;
}

// ---------------------------------------------------------------------------------------------
// Registration: what a worker tells the engine about itself
// ---------------------------------------------------------------------------------------------

export interface BackoffData {
  factor: number;
  maxSeconds: number;
}

export interface TaskDefinition {
  name: string;
  /** `durable` tasks draw from the durable slot pool and may checkpoint. */
  kind: "task" | "durable";
  /** Set on a workflow's on-failure and on-success tasks. */
  role?: "on_failure" | "on_success";
  parents: string[];
  retries: number;
  backoff?: BackoffData;
  executionTimeoutMs: number;
  scheduleTimeoutMs: number;
  priority?: number;
  waitFor?: ConditionData[];
  skipIf?: ConditionData[];
  cancelIf?: ConditionData[];
  /** Concurrency keys each attempt must hold while it runs (every one must admit it). */
  concurrency?: ConcurrencyData[];
  /** Rate-limit units each attempt takes before it starts. */
  rateLimits?: RateLimitData[];
  /** Slots of its worker's pool one attempt takes (default 1). */
  slotCost?: number;
}

// ---------------------------------------------------------------------------------------------
// Flow control: concurrency keys and rate limits, as declared
// ---------------------------------------------------------------------------------------------

export const CONCURRENCY_LIMIT_STRATEGIES = ["GROUP_ROUND_ROBIN", "CANCEL_IN_PROGRESS", "CANCEL_NEWEST", "CANCEL_QUEUED_EXCEPT_NEWEST"] as const;
export type ConcurrencyLimitStrategyName = (typeof CONCURRENCY_LIMIT_STRATEGIES)[number];

export const RATE_LIMIT_DURATIONS = ["second", "minute", "hour", "day", "week", "month", "year"] as const;
export type RateLimitDuration = (typeof RATE_LIMIT_DURATIONS)[number];

/** `expression` (CEL over `input` and `additional_metadata`) gives the key; `maxRuns` is a number or CEL. */
export interface ConcurrencyData {
  expression: string;
  maxRuns: number | string;
  limitStrategy: ConcurrencyLimitStrategyName;
}

/** `units` and `limit` are numbers or CEL; `dynamicKey` is CEL. */
export type RateLimitData =
  | { staticKey: string; units: number | string }
  | { dynamicKey: string; units: number | string; limit: number | string; duration: RateLimitDuration };

/** A rate limit as `GET /api/v1/rate-limits` lists it. */
export interface RateLimitView {
  key: string;
  /** `static`: defined with `PUT /api/v1/rate-limits/{key}`; `dynamic`: declared by a task's `dynamicKey`. */
  kind: "static" | "dynamic";
  limit: number;
  duration: RateLimitDuration;
  unitsLeft: number;
  /** When the next used unit comes back (null when none is in use). */
  nextRefillAt: string | null;
}

/** A concurrency key as `GET /api/v1/concurrency` lists it: one that holds or queues runs. */
export interface ConcurrencyKeyView {
  key: string;
  workflow: string;
  /** The task that declared it, or null for a workflow-level key. */
  task: string | null;
  limitStrategy: ConcurrencyLimitStrategyName;
  running: number;
  queued: number;
  maxRuns: number;
}

export interface WorkflowDefinition {
  name: string;
  description?: string;
  /** `task`: a standalone task (its output is the run's output). `workflow`: a DAG. */
  kind: "task" | "workflow";
  inputSchema?: JsonSchema;
  defaultPriority?: number;
  /** Concurrency keys the whole run holds from its first start to its end. */
  concurrency?: ConcurrencyData[];
  tasks: TaskDefinition[];
  /** Event keys that start a run (a trailing `*` matches any suffix: `order:*`). */
  onEvents?: string[];
  /** Cron expressions that start a run at each tick, with `cronInput` as input. */
  onCrons?: string[];
  cronInput?: unknown;
  /** Filters declared with the workflow (see `FilterSpec`); they follow the registration. */
  defaultFilters?: FilterSpec[];
}

// ---------------------------------------------------------------------------------------------
// Triggers: events that start runs, filters, crons, one-time schedules, webhooks
// ---------------------------------------------------------------------------------------------

/**
 * A filter on the events that start a workflow: CEL over `input` (the event payload),
 * `additional_metadata` and `payload` (this filter's own payload, which the run receives as
 * `ctx.filterPayload()`). A filter with a scope applies to events pushed with that scope; one
 * without applies to every event. A workflow with filters that apply to an event runs only when
 * one of them holds.
 */
export interface FilterSpec {
  expression: string;
  scope?: string;
  payload?: unknown;
}

export interface FilterCreate extends FilterSpec {
  workflow: string;
}

export interface FilterView {
  id: string;
  workflow: string;
  expression: string;
  scope: string | null;
  payload: unknown;
  /** Declared with the workflow (`defaultFilters`) rather than created through the API. */
  declared: boolean;
  createdAt: string;
}

export interface FilterList {
  filters: FilterView[];
  nextCursor: string | null;
}

/** What a push answers: the event's id and the run it started of each matching workflow. */
export interface EventPushResult {
  eventId: string;
  runs: { workflow: string; runId: string }[];
}

export interface EventView {
  eventId: string;
  key: string;
  payload: unknown;
  additionalMetadata: Record<string, string>;
  scope: string | null;
  createdAt: string;
  /** The runs the event started. */
  runs: { workflow: string; runId: string }[];
  /** Matching workflows the event did not start, and why (a payload that fails the input schema). */
  refused: { workflow: string; error: { code: string; message: string; fields?: { path: string; message: string }[] } }[];
  /** Waiting tasks the event woke. */
  woke: { runId: string; task: string }[];
}

export interface EventFilter {
  key?: string;
  since?: string;
  until?: string;
  limit?: number;
  cursor?: string;
}

export interface EventList {
  events: EventView[];
  nextCursor: string | null;
}

export interface CronCreate {
  name: string;
  expression: string;
  input?: unknown;
  /** An IANA time zone (default UTC). */
  timezone?: string;
  additionalMetadata?: Record<string, string>;
}

export interface CronView {
  id: string;
  workflow: string;
  name: string;
  expression: string;
  timezone: string;
  input: unknown;
  additionalMetadata: Record<string, string>;
  /** `declared`: from the workflow's `onCrons` (follows the registration); `api`: created at run time. */
  source: "declared" | "api";
  nextRunAt: string | null;
  lastRunAt: string | null;
  createdAt: string;
}

export interface CronList {
  crons: CronView[];
  nextCursor: string | null;
}

export interface CronFilter {
  workflow?: string;
  limit?: number;
  cursor?: string;
}

export interface ScheduleCreate {
  /** ISO 8601 date-time in the future. */
  at: string;
  input?: unknown;
  additionalMetadata?: Record<string, string>;
}

export type ScheduleStatus = "SCHEDULED" | "FIRED" | "FAILED";

export interface ScheduleView {
  scheduleId: string;
  workflow: string;
  at: string;
  input: unknown;
  additionalMetadata: Record<string, string>;
  status: ScheduleStatus;
  /** The run it started, once fired. */
  runId: string | null;
  /** Why it could not start its run (`FAILED`). */
  error: string | null;
  createdAt: string;
  firedAt: string | null;
}

export interface ScheduleList {
  schedules: ScheduleView[];
  nextCursor: string | null;
}

export interface ScheduleFilter {
  workflow?: string;
  status?: ScheduleStatus;
  limit?: number;
  cursor?: string;
}

/** What started a run other than a direct trigger; the run's view shows it. */
export type RunTrigger =
  | { kind: "event"; eventId: string; eventKey: string; filterId?: string; filterPayload?: unknown }
  | { kind: "cron"; cronId: string; name: string; scheduledAt: string; late: boolean; missedTicks: number }
  | { kind: "schedule"; scheduleId: string; scheduledAt: string };

export interface WorkerRegistration {
  name: string;
  slots: number;
  durableSlots: number;
  /** How many task queues share each of its pools (default 1): its slots are divided among them. */
  queueShards?: number;
  workflows: WorkflowDefinition[];
  sdkVersion: string;
}

/** What a worker's `describe()` returns: its registration, and whom it belongs to. */
export interface WorkerDescription {
  registration: WorkerRegistration;
  /** SHA-256 (hex) of the API token the worker was given; the engine maps it to a tenant. */
  tokenHash: string;
}

// ---------------------------------------------------------------------------------------------
// Dispatch: the engine hands a task attempt to a worker, the worker answers with an outcome
// ---------------------------------------------------------------------------------------------

export interface Assignment {
  runId: string;
  workflowName: string;
  taskName: string;
  taskRunId: string;
  /** Monotonic dispatch number of this task in this run (the idempotency key of the attempt). */
  attempt: number;
  /** Retries so far in the current series (what `ctx.retryCount()` returns). */
  retryCount: number;
  /** Durable tasks: the invocation number, which fences stale copies of the task. */
  invocation: number;
  input: unknown;
  parentOutputs: Record<string, unknown>;
  /** Parents that were skipped (their names). */
  skippedParents: string[];
  additionalMetadata: Record<string, string>;
  /** For an on-failure task: the failed tasks' errors, by task name. */
  errors: Record<string, string>;
  executionTimeoutMs: number;
  /** When the engine started this attempt (or durable invocation), ms since epoch. */
  startedAt: number;
  /** When the task first started in this run; durable children derive their ids from it. */
  firstStartedAt: number;
  /** The engine's payload limit: a larger output or memo result is refused before it is sent. */
  maxPayloadBytes?: number;
  /** A run started by an event through a filter: that filter's payload. */
  filterPayload?: unknown;
  /** Durable tasks: the event log to replay. */
  durable?: DurableAssignment;
}

export interface DurableAssignment {
  /** The task's event log so far, in sequence order. */
  log: CheckpointRecord[];
}

export interface EventPush {
  key: string;
  payload: unknown;
  additionalMetadata?: Record<string, string>;
  /** Only waiters with this scope (or none) match. */
  scope?: string;
  /** A push repeated with this key within 24 h returns the first push's event id and wakes nothing. */
  idempotencyKey?: string;
}

export type TaskOutcome =
  | { status: "completed"; output: unknown; logs: LogLine[] }
  | { status: "failed"; error: ErrorData; logs: LogLine[] }
  /** A durable task reached a wait: its invocation ends and the slot is freed. */
  | { status: "suspended"; logs: LogLine[]; waitingOn: number[] };

// ---------------------------------------------------------------------------------------------
// Durable event log
// ---------------------------------------------------------------------------------------------

/**
 * `sleep`: sleepFor/sleepUntil. `wait`: waitFor/waitForEvent. `memo`: a memoized call.
 * `child`/`children`: spawned runs whose results the task waits for. `spawn`: runs started without
 * waiting.
 */
export type CheckpointKind = "sleep" | "wait" | "memo" | "child" | "children" | "spawn";

export type CheckpointResult = { value: unknown } | { error: ErrorData };

/** How errors name a checkpoint call on both sides: `memo(memo:charge)`, `#n` on the n-th repeat of the same call. */
export function describeCall(kind: string, key: string, occurrence = 0): string {
  return `${kind}(${key})${occurrence > 0 ? ` #${occurrence}` : ""}`;
}

export interface CheckpointRecord {
  seq: number;
  kind: CheckpointKind;
  /** What identifies the call: duration, event key and expression, child name and input hash, memo name (or source) and deps. */
  key: string;
  /** The n-th call with this kind and key (0 for the first): a replay matches calls by kind, key and occurrence. */
  occurrence: number;
  status: "pending" | "resolved";
  result?: CheckpointResult;
  /** The order in which the task's checkpoints resolved (1, 2, ...), as the run's view shows it. */
  order?: number;
}

/** A checkpoint as the run's view shows it: when it was recorded and, for a sleep, its deadline. */
export interface EventLogEntry extends CheckpointRecord {
  recordedAt?: string;
  dueAt?: string;
}

/** A durable task records a call in its run's event log. */
export interface CheckpointRequest {
  task: string;
  attempt: number;
  invocation: number;
  /** The call's position in the log: a recorded call's, or a new one past every recorded position. */
  seq: number;
  kind: CheckpointKind;
  key: string;
  /** The n-th call of the invocation with this kind and key (0 for the first). */
  occurrence: number;
  /** memo: the result to record. */
  result?: CheckpointResult;
  /** sleep and wait: what to wait for. */
  conditions?: ConditionData[];
  /** sleepUntil: the absolute deadline (ms since epoch). */
  untilMs?: number;
  /** child, children, spawn: the runs (already triggered with this task as parent). */
  children?: string[];
}

export type CheckpointReply = { status: "resolved"; result: CheckpointResult } | { status: "pending" };

/** What a child run ended with, as a durable parent's `children` checkpoint records it. */
export interface ChildResult {
  runId: string;
  status: "COMPLETED" | "FAILED" | "CANCELLED";
  output: unknown;
  error: ErrorData | null;
}

/** A pending wait of a durable task, as the run detail shows it. */
export interface WaitView {
  seq: number;
  kind: CheckpointKind;
  key: string;
  /** `list`: which of a DAG task's lists the condition is in (`wait`, `skip`, `cancel`). */
  /**
   * `error`: why the condition's expression did not match when last evaluated (it failed to
   * evaluate, was not a bool, or ran out of its CEL budget); such an evaluation counts as false.
   */
  conditions?: (LeafCondition & { list: "wait" | "skip" | "cancel"; group: number; satisfied: boolean; dueAt?: string; error?: string })[];
  children?: { total: number; done: number };
}

// ---------------------------------------------------------------------------------------------
// Runs as the API shows them
// ---------------------------------------------------------------------------------------------

export interface TaskAttemptView {
  attempt: number;
  retryCount: number;
  status: TaskStatus;
  startedAt: string | null;
  finishedAt: string | null;
  error: ErrorData | null;
}

export interface TaskView {
  name: string;
  taskRunId: string;
  kind: "task" | "durable";
  role: "on_failure" | "on_success" | null;
  /** The tasks it runs after (the edges of the run's graph). */
  parents: string[];
  status: TaskStatus;
  /** Retries so far in the current series. */
  retryCount: number;
  attempt: number;
  output: unknown;
  error: ErrorData | null;
  queuedAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  /** Why a queued task has not started, when the engine knows. */
  queuedReason: string | null;
  logs: (LogLine & { attempt: number })[];
  attempts: TaskAttemptView[];
  /**
   * Dispatches whose runner stopped showing signs of life (the engine lost the invocation running
   * them) and which were dispatched again, without using a retry.
   */
  lostDispatches: LostDispatchView[];
  /** Durable tasks: true while the task waits with no invocation running. */
  evicted?: boolean;
  /** Durable tasks: the waits not yet satisfied; DAG tasks: the conditions armed. */
  waitingFor?: WaitView[];
  /**
   * DAG tasks: parent conditions whose expression failed to evaluate (an error, not a bool, or over
   * its CEL budget), each counted as false: `skipIf[0]: output.n > 1: No such key: n`.
   */
  conditionErrors?: string[];
  /** Durable tasks: the event log. */
  eventLog?: EventLogEntry[];
  /** Durable tasks: invocations so far. */
  invocations?: number;
}

export interface LostDispatchView {
  attempt: number;
  /** The invocation that was lost; the next one replaced it. */
  invocation: number;
  /** When it was declared lost. */
  at: string;
  reason: string;
}

export interface RunParentView {
  runId: string;
  taskName: string;
}

export interface RunView {
  runId: string;
  workflow: string;
  status: RunStatus;
  input: unknown;
  output: unknown;
  error: ErrorData | null;
  additionalMetadata: Record<string, string>;
  priority: number;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  parent: RunParentView | null;
  children: string[];
  tasks: TaskView[];
  /** Messages this run could not deliver to another object within their tries (kept, never sent). */
  deadLetters?: DeadLetterView[];
  /** What started the run, when it was an event, a cron or a schedule. */
  trigger?: RunTrigger;
}

export interface DeadLetterView {
  /** What the message was: `enqueue`, `child_ended`, `subscribe`, `index`... */
  kind: string;
  /** The object it was for. */
  target: string;
  payload: unknown;
  tries: number;
  /** The last failure. */
  error: string;
  at: string;
}

export interface RunSummary {
  runId: string;
  workflow: string;
  status: RunStatus;
  additionalMetadata: Record<string, string>;
  createdAt: string;
  finishedAt: string | null;
  parent: RunParentView | null;
}

export interface RunList {
  runs: RunSummary[];
  nextCursor: string | null;
}

export interface RunFilter {
  workflow?: string;
  status?: RunStatus[];
  since?: string;
  until?: string;
  metadata?: Record<string, string>;
  limit?: number;
  cursor?: string;
}

// ---------------------------------------------------------------------------------------------
// Triggering
// ---------------------------------------------------------------------------------------------

export interface ParentLink {
  runId: string;
  taskName: string;
  /** The parent's attempt: a duplicate dispatch of one attempt spawns the same children. */
  attempt: number;
  /** The parent's invocation (0 for a regular task): the engine refuses a child of an attempt or invocation that is no longer current. */
  invocation: number;
  /** The child's position among the attempt's spawns. */
  index: number;
  /** When the parent attempt started; part of the child's deterministic id. */
  startedAt: number;
  /** Set when a durable task spawns: the checkpoint's sequence number. */
  seq?: number;
  /**
   * Set when a durable task spawns: the checkpoint's identity (kind, key and occurrence). The child's
   * id derives from it, not from the attempt, so every replay that spawns it again finds the same run.
   */
  checkpoint?: string;
}

export interface TriggerRequest {
  workflow: string;
  input: unknown;
  additionalMetadata?: Record<string, string>;
  priority?: number;
  parent?: ParentLink;
  /** A trigger repeated with this key within 24 h returns the first trigger's run (ignored for a child: its id derives from its parent link). */
  idempotencyKey?: string;
}

export interface TriggerResult {
  runId: string;
  status: RunStatus;
}

/** What every engine RPC returns: a value, or an error as data. */
export type Reply<T> = { ok: true; value: T } | { ok: false; error: ErrorData };

/** What a running task learns about its attempt from the engine while it runs. */
export interface WatchResult {
  /** `pending`: nothing happened before the watch expired; watch again. */
  reason: "cancelled" | "timeout" | "ended" | "superseded" | "pending";
}

// ---------------------------------------------------------------------------------------------
// Limits of what crosses the wire
// ---------------------------------------------------------------------------------------------

/** How deep a JSON value sent to the engine may nest (HTTP bodies and RPC arguments alike). */
export const MAX_VALUE_DEPTH = 128;
/** Cloudflare's limit on one RPC message between Workers. */
export const MAX_RPC_BYTES = 32 * 1024 * 1024;

/**
 * Why a value may not be sent, or null: it nests deeper than `maxDepth`, or its JSON would take
 * more than `maxBytes`. Walks the value without recursion (a value too deep for the stack is what
 * it looks for) and stops as soon as a limit is passed; sizes are JSON's, strings counted in UTF-16
 * units (close to bytes for ASCII).
 */
export function valueLimitExceeded(value: unknown, maxBytes: number, maxDepth = MAX_VALUE_DEPTH): { code: "request.too_deep" | "request.too_large"; message: string } | null {
  let bytes = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (typeof v === "string") bytes += v.length + 2;
    else if (typeof v === "number" || typeof v === "bigint") bytes += 24;
    else if (typeof v !== "object" || v === null) bytes += 5;
    else {
      if (depth + 1 > maxDepth) return { code: "request.too_deep", message: `the value nests deeper than ${maxDepth} levels` };
      bytes += 2;
      if (Array.isArray(v)) for (const item of v) (bytes += 1), stack.push([item, depth + 1]);
      else
        for (const [k, item] of Object.entries(v)) {
          bytes += k.length + 4;
          stack.push([item, depth + 1]);
        }
    }
    if (bytes > maxBytes) return { code: "request.too_large", message: `the value is larger than ${maxBytes} bytes as JSON` };
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// HTTPS transport: what the engine sends a worker served with `spindle.serve()`, signed
// ---------------------------------------------------------------------------------------------

export type WorkerRequest = { op: "describe" } | { op: "execute"; assignment: Assignment };

/** What a served worker calls on the engine (signed), for what a binding's RPC would carry. */
export interface EngineCall {
  method:
    | "trigger"
    | "triggerMany"
    | "getRun"
    | "waitForRun"
    | "watchTask"
    | "checkpoint"
    | "putStream"
    | "appendLogs"
    | "pushEvent"
    | "pushEvents"
    | "listRuns"
    | "cancelRun"
    | "replayRun"
    | "listEvents"
    | "getEvent"
    | "createFilter"
    | "listFilters"
    | "deleteFilter"
    | "createCron"
    | "listCrons"
    | "deleteCron"
    | "createSchedule"
    | "listSchedules"
    | "getSchedule"
    | "deleteSchedule"
    | "upsertRateLimit"
    | "listRateLimits";
  args: unknown[];
}

/** The header with which the engine tells a served worker where to call it back. */
export const ENGINE_URL_HEADER = "x-spindle-engine";
/** The engine's route for signed calls from served workers. */
export const ENGINE_CALLS_PATH = "/worker/v1/calls";

export { SIGNATURE_HEADERS, SIGNATURE_WINDOW_MS, ReplayGuard, signRequest, verifyRequest, tokenHash } from "./signing.js";
export type { Verification } from "./signing.js";
