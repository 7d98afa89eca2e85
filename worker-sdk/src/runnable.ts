import { z } from "zod";
import type { EngineClient } from "./client.js";
import type { Context } from "./context.js";
import { currentTask } from "./scope.js";
import { toMs } from "./duration.js";
import { RunCancelledError, RunFailedError, SpindleError } from "./errors.js";
import { concurrencyData, rateLimitData, slotCostOf, type FlowOptions } from "./flow.js";
import type { Declared } from "./spindle-client.js";
import { runStream } from "./sse.js";
import type {
  BackoffData,
  CronView,
  Duration,
  FilterSpec,
  ScheduleView,
  JsonSchema,
  ParentLink,
  RunView,
  TaskDefinition,
  TriggerRequest,
  WorkflowDefinition,
} from "./protocol.js";

type Awaitable<T> = T | Promise<T>;
export type TaskFn<I, O, C = Context<I>> = (input: I, ctx: C) => Awaitable<O>;

export type Priority = 1 | 2 | 3;

export interface RunOptions {
  additionalMetadata?: Record<string, string>;
  /** 1 (low) to 3 (high); higher runs first when slots are scarce. */
  priority?: Priority;
  /**
   * Makes the trigger safe to retry: within 24 h, a trigger with the same key returns the first
   * one's run and creates nothing (the same key with a different input or options is refused with
   * `idempotency.conflict`). Ignored for a child run, whose id already derives from its parent.
   */
  idempotencyKey?: string;
}

export interface ScheduleOptions {
  additionalMetadata?: Record<string, string>;
}

export interface CronOptions {
  /** An IANA time zone (default UTC). */
  timezone?: string;
  additionalMetadata?: Record<string, string>;
}

/** What starts a workflow besides a call: events, crons, and the filters on events. */
export interface TriggerOptions {
  /** Event keys that start a run, the payload as input; a trailing `*` matches any suffix (`order:*`). */
  onEvents?: string[];
  /** Cron expressions that start a run at each tick (UTC), with `cronInput` as input. */
  onCrons?: string[];
  cronInput?: unknown;
  /** Filters declared with the workflow: an event starts it only when one that applies holds. */
  defaultFilters?: FilterSpec[];
}

/** Copies the declared triggers into a definition. */
export function withTriggers(def: WorkflowDefinition, declaration: TriggerOptions): WorkflowDefinition {
  if (declaration.onEvents?.length) def.onEvents = [...declaration.onEvents];
  if (declaration.onCrons?.length) def.onCrons = [...declaration.onCrons];
  if (declaration.cronInput !== undefined) def.cronInput = declaration.cronInput;
  if (declaration.defaultFilters?.length) def.defaultFilters = declaration.defaultFilters.map((f) => ({ ...f }));
  return def;
}

/** `runMany`'s options: one key per item, derived from the item (e.g. `(order) => \`charge-${order.id}\``). */
export interface RunManyOptions<I> extends Omit<RunOptions, "idempotencyKey"> {
  idempotencyKey?: (input: I, index: number) => string;
}

export interface RetryOptions {
  /** Retries after the first attempt (0 = fail on the first error). */
  retries?: number;
  /** The n-th retry waits factor^n seconds, at most maxSeconds (default 60). */
  backoff?: { factor: number; maxSeconds?: number };
  /** How long one attempt may run before it fails (default "60s"). */
  executionTimeout?: Duration;
  /** How long a task may wait to start before it fails (default "5m"). */
  scheduleTimeout?: Duration;
}

export const DEFAULT_EXECUTION_TIMEOUT_MS = 60_000;
export const DEFAULT_SCHEDULE_TIMEOUT_MS = 300_000;
export const DEFAULT_BACKOFF_MAX_SECONDS = 60;
/** How long one long-poll for a run's result lasts before it is renewed. */
const RESULT_POLL_MS = 30_000;

/** A task as its worker knows it: its definition plus the function to run. */
export interface TaskImpl {
  definition: TaskDefinition;
  fn: TaskFn<unknown, unknown, never>;
}

/** A handle on a task of a workflow: what `parents` and `ctx.parentOutput` take. */
export class TaskRef<I, O> {
  /** @internal keeps O in the type. */ declare readonly __output?: O;
  /** @internal keeps I in the type. */ declare readonly __input?: I;
  constructor(
    readonly name: string,
    readonly workflow: string,
  ) {}
}

/** A started run: its id, its result when it ends, and a way to cancel it. */
export class RunRef<O> {
  constructor(
    readonly runId: string,
    private readonly client: () => EngineClient,
  ) {}

  /** Waits for the run to end: its output, or a RunFailedError / RunCancelledError. */
  async result(): Promise<O> {
    for (;;) {
      const run = await this.client().waitForRun(this.runId, RESULT_POLL_MS);
      if (run.status === "COMPLETED") return run.output as O;
      if (run.status === "FAILED") throw new RunFailedError(run);
      if (run.status === "CANCELLED") throw new RunCancelledError(run.runId);
    }
  }

  get(): Promise<RunView> {
    return this.client().getRun(this.runId);
  }

  /**
   * The run's stream (what its tasks put with `ctx.putStream`), chunk by chunk as they come, from
   * the first; the iteration ends when the run has ended and every chunk was read. A connection
   * that breaks off is resumed after the last chunk received: nothing is lost or repeated.
   */
  stream(): AsyncGenerator<string, void, undefined> {
    const client = this.client();
    return runStream((last) => client.openStream(this.runId, last));
  }

  cancel(): Promise<RunView> {
    return this.client().cancelRun(this.runId);
  }
}

/** Anything that can be triggered by name: a standalone task or a workflow. */
export abstract class Runnable<I, O> implements Declared<I, O> {
  /** Carries I and O for `SpindleClient.run(runnable, ...)`; never set. */
  declare readonly __types?: { input: I; output: O };

  constructor(
    readonly name: string,
    protected readonly inputSchema: z.ZodType<I> | undefined,
    protected readonly client: () => EngineClient,
  ) {}

  /**
   * Runs and waits for the output. Called inside a task, it runs a child of that task (inside a
   * durable task: a checkpointed child, the task evicted while it runs).
   */
  async run(input: I, options?: RunOptions): Promise<O> {
    const parent = currentTask.getStore();
    if (parent) return parent.runChild(this, input, options);
    return (await this.runNoWait(input, options)).result();
  }

  /** Starts a run and returns its reference at once. */
  async runNoWait(input: I, options?: RunOptions): Promise<RunRef<O>> {
    const result = await this.client().trigger(await this.triggerRequest(input, options));
    return this.ref(result.runId);
  }

  /**
   * Runs one per input and waits for all outputs, in order. Every run is created or none is: every
   * input is checked first. With an `idempotencyKey` per item, a batch that failed half-way is
   * finished by sending it again.
   */
  async runMany(inputs: I[], options?: RunManyOptions<I>): Promise<O[]> {
    const refs = await this.runManyNoWait(inputs, options);
    return Promise.all(refs.map((r) => r.result()));
  }

  async runManyNoWait(inputs: I[], options?: RunManyOptions<I>): Promise<RunRef<O>[]> {
    const { idempotencyKey, ...shared } = options ?? {};
    const requests = await Promise.all(
      inputs.map((input, i) => this.triggerRequest(input, idempotencyKey ? { ...shared, idempotencyKey: idempotencyKey(input, i) } : shared)),
    );
    const results = await this.client().triggerMany(requests);
    return results.map((r) => this.ref(r.runId));
  }

  /**
   * Runs once at `date` (a Date or an ISO 8601 string, in the future). The input is checked now,
   * here and by the engine, so a schedule that is accepted can fire; it fires once, surviving
   * restarts, and its run links back to it (`trigger.scheduleId`).
   */
  async schedule(date: Date | string, input: I, options: ScheduleOptions = {}): Promise<ScheduleView> {
    const at = date instanceof Date ? date.toISOString() : date;
    const req = await this.triggerRequest(input, undefined);
    return this.client().createSchedule(this.name, { at, input: req.input, ...(options.additionalMetadata ? { additionalMetadata: options.additionalMetadata } : {}) });
  }

  /** Runs once after `duration` (`"10s"`, `"5m"`, or milliseconds): `schedule(now + duration)`. */
  async delay(duration: Duration, input: I, options: ScheduleOptions = {}): Promise<ScheduleView> {
    return this.schedule(new Date(Date.now() + toMs(duration, "duration")), input, options);
  }

  /**
   * Runs at every tick of a cron expression (five fields, six with seconds, or `@hourly`...), in
   * `timezone` (an IANA zone, default UTC). `name` is unique per workflow. Each run carries
   * `additionalMetadata` `{ cron: name, scheduledAt }`.
   */
  async cron(name: string, expression: string, input: I, options: CronOptions = {}): Promise<CronView> {
    const req = await this.triggerRequest(input, undefined);
    return this.client().createCron(this.name, {
      name,
      expression,
      input: req.input,
      ...(options.timezone ? { timezone: options.timezone } : {}),
      ...(options.additionalMetadata ? { additionalMetadata: options.additionalMetadata } : {}),
    });
  }

  /** @internal */
  ref(runId: string): RunRef<O> {
    return new RunRef<O>(runId, this.client);
  }

  /** @internal validates the input here, before it leaves, with the declared zod schema. */
  async triggerRequest(input: I, options: RunOptions | undefined, parent?: ParentLink): Promise<TriggerRequest> {
    if (this.inputSchema) {
      const parsed = await this.inputSchema.safeParseAsync(input);
      if (!parsed.success) throw inputError(this.name, parsed.error);
    }
    const req: TriggerRequest = { workflow: this.name, input: input ?? null };
    if (options?.additionalMetadata) req.additionalMetadata = options.additionalMetadata;
    if (options?.priority !== undefined) req.priority = options.priority;
    if (parent) req.parent = parent;
    else if (options?.idempotencyKey !== undefined) req.idempotencyKey = options.idempotencyKey;
    return req;
  }

  /** @internal parses the input a task receives (applying the schema's defaults and transforms). */
  async parseInput(input: unknown): Promise<I> {
    if (!this.inputSchema) return input as I;
    const parsed = await this.inputSchema.safeParseAsync(input);
    if (!parsed.success) throw inputError(this.name, parsed.error);
    return parsed.data;
  }

  /** @internal */
  abstract definition(): WorkflowDefinition;
  /** @internal */
  abstract implementation(task: string): TaskImpl | undefined;
}

export function inputError(workflow: string, error: z.ZodError): SpindleError {
  const fields = error.issues.map((i) => ({ path: ["input", ...i.path.map(String)].join("."), message: i.message }));
  return new SpindleError("input.invalid", `input of '${workflow}' is invalid: ${fields.map((f) => `${f.path}: ${f.message}`).join("; ")}`, {
    fields,
  });
}

export function jsonSchemaOf(schema: z.ZodType | undefined): JsonSchema | undefined {
  if (!schema) return undefined;
  // The engine validates what callers send, before any transform: the schema's input side.
  return z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as JsonSchema;
}

/** A task's flow control: concurrency keys and rate limits its attempts take, and its slot cost. */
export interface TaskFlowOptions extends FlowOptions {
  /** Slots of its worker's pool one attempt takes (default 1). */
  slotCost?: number;
}

/** Turns the SDK's task options into the registered definition. */
export function taskDefinition(
  name: string,
  kind: TaskDefinition["kind"],
  parents: string[],
  options: RetryOptions & TaskFlowOptions,
  role?: TaskDefinition["role"],
): TaskDefinition {
  const retries = options.retries ?? 0;
  if (!Number.isInteger(retries) || retries < 0) {
    throw new SpindleError("config.invalid", `task '${name}': retries must be a non-negative integer`);
  }
  const def: TaskDefinition = {
    name,
    kind,
    parents,
    retries,
    executionTimeoutMs: options.executionTimeout !== undefined ? toMs(options.executionTimeout, `${name}.executionTimeout`) : DEFAULT_EXECUTION_TIMEOUT_MS,
    scheduleTimeoutMs: options.scheduleTimeout !== undefined ? toMs(options.scheduleTimeout, `${name}.scheduleTimeout`) : DEFAULT_SCHEDULE_TIMEOUT_MS,
  };
  if (def.executionTimeoutMs <= 0) throw new SpindleError("config.invalid", `task '${name}': executionTimeout must be positive`);
  if (options.backoff) {
    const backoff: BackoffData = { factor: options.backoff.factor, maxSeconds: options.backoff.maxSeconds ?? DEFAULT_BACKOFF_MAX_SECONDS };
    if (!(backoff.factor > 0) || !(backoff.maxSeconds > 0)) {
      throw new SpindleError("config.invalid", `task '${name}': backoff factor and maxSeconds must be positive`);
    }
    def.backoff = backoff;
  }
  if (role) def.role = role;
  const concurrency = concurrencyData(options.concurrency, `task '${name}'.concurrency`);
  if (concurrency) def.concurrency = concurrency;
  const rateLimits = rateLimitData(options.rateLimits, `task '${name}'.rateLimits`);
  if (rateLimits) def.rateLimits = rateLimits;
  const slotCost = slotCostOf(options.slotCost, `task '${name}'.slotCost`);
  if (slotCost !== undefined) def.slotCost = slotCost;
  return def;
}
