import { HttpClient, RpcClient, type EngineBinding, type EngineClient } from "./client.js";
import { SpindleError } from "./errors.js";
import type {
  CronFilter,
  CronList,
  CronView,
  EventFilter,
  EventList,
  EventPush,
  EventPushResult,
  EventView,
  FilterCreate,
  FilterList,
  FilterView,
  RateLimitDuration,
  RateLimitView,
  RunFilter,
  RunList,
  RunView,
  ScheduleFilter,
  ScheduleList,
  ScheduleView,
} from "./protocol.js";
import { RATE_LIMIT_DURATIONS } from "./protocol.js";
import { DurableTask, Task, type DurableTaskDeclaration, type TaskDeclaration } from "./task.js";
import { RunRef, type TaskImpl } from "./runnable.js";
import { workers } from "./runtime.js";
import { createServedWorker, type ServedWorker } from "./serve.js";
import { buildWorker, createWorker, type SpindleWorkerClass, type WorkerOptions } from "./worker.js";
import { Workflow, type WorkflowDeclaration } from "./workflow.js";

export interface SpindleOptions {
  /** Name of the service binding to the engine (default `SPINDLE`). */
  binding?: string;
  /** The engine's URL, to reach it over HTTPS instead of a binding. */
  url?: string;
  /** The API token (default: the worker's `SPINDLE_API_TOKEN` secret). */
  token?: string;
  /** Where to read bindings and secrets (default: the worker's env from `cloudflare:workers`). */
  env?: Record<string, unknown>;
  /** The fetch that reaches the engine over HTTP(S) (default: the global one). */
  fetch?: typeof fetch;
}

/**
 * The entry point of the SDK: declare tasks and workflows, build the worker that runs them, and
 * trigger and observe runs. The engine is found lazily, on first use, so `Spindle.init()` can run
 * at module scope.
 */
export class Spindle {
  private engine: EngineClient | null = null;
  private hash: Promise<string> | null = null;

  /** Runs of any workflow, by id. */
  readonly runs = {
    get: (runId: string): Promise<RunView> => this.client().getRun(runId),
    list: (filter: RunFilter = {}): Promise<RunList> => this.client().listRuns(filter),
    cancel: (runId: string): Promise<RunView> => this.client().cancelRun(runId),
    replay: (runId: string): Promise<RunView> => this.client().replayRun(runId),
    /** The run's stream, chunk by chunk (see `RunRef.stream`). */
    stream: (runId: string): AsyncGenerator<string, void, undefined> => new RunRef<unknown>(runId, () => this.client()).stream(),
  };

  /**
   * Events: a pushed event starts one run of every workflow whose `onEvents` match its key (and
   * whose filters let it through) and wakes every task waiting for it whose expression holds. With
   * an `idempotencyKey`, a push repeated within 24 h returns the first push's id and runs and
   * starts nothing. `bulkPush` pushes every event or none. `list` and `get` read the event log.
   */
  readonly events = {
    push: async (
      key: string,
      payload: unknown,
      options: { additionalMetadata?: Record<string, string>; scope?: string; idempotencyKey?: string } = {},
    ): Promise<EventPushResult> => this.client().pushEvent({ key, payload, ...options }),
    bulkPush: (events: EventPush[]): Promise<EventPushResult[]> => this.client().pushEvents(events),
    list: (filter: EventFilter = {}): Promise<EventList> => this.client().listEvents(filter),
    get: (eventId: string): Promise<EventView> => this.client().getEvent(eventId),
  };

  /**
   * Filters on the events that start a workflow: CEL over `input` (the payload),
   * `additional_metadata` and `payload` (the filter's own, given to the run as `ctx.filterPayload()`).
   */
  readonly filters = {
    /** `workflow`: its name, or the workflow or task itself. */
    create: (filter: Omit<FilterCreate, "workflow"> & { workflow: string | { name: string } }): Promise<FilterView> =>
      this.client().createFilter({ ...filter, workflow: typeof filter.workflow === "string" ? filter.workflow : filter.workflow.name }),
    list: (filter: { workflow?: string; limit?: number; cursor?: string } = {}): Promise<FilterList> => this.client().listFilters(filter),
    delete: (id: string): Promise<FilterView> => this.client().deleteFilter(id),
  };

  /** Crons of every workflow (create one with `workflow.cron(...)`). */
  readonly crons = {
    list: (filter: CronFilter = {}): Promise<CronList> => this.client().listCrons(filter),
    delete: (id: string): Promise<CronView> => this.client().deleteCron(id),
  };

  /** One-time schedules of every workflow (create one with `workflow.schedule(...)` or `.delay(...)`). */
  readonly schedules = {
    list: (filter: ScheduleFilter = {}): Promise<ScheduleList> => this.client().listSchedules(filter),
    get: (id: string): Promise<ScheduleView> => this.client().getSchedule(id),
    delete: (id: string): Promise<ScheduleView> => this.client().deleteSchedule(id),
  };

  /**
   * Static rate limits: `upsert` defines (or changes) one that tasks name with `{ staticKey }`;
   * `list` shows every key with its units left and next refill (dynamic keys in use too).
   */
  readonly rateLimits = {
    upsert: (limit: { key: string; limit: number; duration: RateLimitDuration }): Promise<RateLimitView> => {
      if (typeof limit.key !== "string" || limit.key.length === 0 || limit.key.length > 256) {
        throw new SpindleError("request.invalid", "key: a rate limit's key is 1 to 256 characters", { fields: [{ path: "key", message: "1 to 256 characters" }] });
      }
      if (!Number.isInteger(limit.limit) || limit.limit < 1) {
        throw new SpindleError("request.invalid", `limit: must be an integer of at least 1, got ${JSON.stringify(limit.limit)}`, { fields: [{ path: "limit", message: "an integer of at least 1" }] });
      }
      if (!(RATE_LIMIT_DURATIONS as readonly string[]).includes(limit.duration)) {
        throw new SpindleError("request.invalid", `duration: one of ${RATE_LIMIT_DURATIONS.join(", ")}`, { fields: [{ path: "duration", message: `one of ${RATE_LIMIT_DURATIONS.join(", ")}` }] });
      }
      return this.client().upsertRateLimit(limit.key, limit.limit, limit.duration);
    },
    list: (): Promise<RateLimitView[]> => this.client().listRateLimits(),
  };

  private constructor(private readonly options: SpindleOptions) {}

  static init(options: SpindleOptions = {}): Spindle {
    if (options.url !== undefined && !/^https?:\/\//.test(options.url)) {
      throw new SpindleError("config.invalid", `url: '${options.url}' is not an http(s) URL`);
    }
    return new Spindle(options);
  }

  task<I = unknown, O = unknown>(declaration: TaskDeclaration<I, O>): Task<I, O> {
    return new Task({ ...declaration, fn: declaration.fn as TaskImpl["fn"] }, this.client);
  }

  /** A standalone durable task: it sleeps, waits for events and spawns children without holding a slot. */
  durableTask<I = unknown, O = unknown>(declaration: DurableTaskDeclaration<I, O>): DurableTask<I, O> {
    return new DurableTask(declaration, this.client);
  }

  workflow<I = unknown, O = Record<string, unknown>>(declaration: WorkflowDeclaration<I>): Workflow<I, O> {
    return new Workflow<I, O>(declaration, this.client);
  }

  /** The entrypoint class to export from your worker; the engine dispatches tasks to it. */
  worker(options: WorkerOptions): SpindleWorkerClass {
    return createWorker(options, this.client, () => this.tokenHash());
  }

  /**
   * The worker as a fetch handler the engine reaches over HTTPS (register its URL with
   * `POST /api/v1/workers {url}`): a Worker's default export, or what any fetch-based server
   * calls. Requests both ways are signed with a key derived from the API token.
   */
  serve(options: WorkerOptions): ServedWorker {
    const { registration, runnables } = buildWorker(options);
    return createServedWorker(registration, runnables, () => this.token(), () => this.options.url, this.options.fetch);
  }

  private token(): string {
    const token = this.options.token ?? (this.env().SPINDLE_API_TOKEN as string | undefined);
    if (!token) {
      throw new SpindleError("config.missing_token", "no API token: set the SPINDLE_API_TOKEN secret or pass { token } to Spindle.init()");
    }
    return token;
  }

  /** @internal the engine connection, resolved on first use. */
  readonly client = (): EngineClient => {
    if (this.engine) return this.engine;
    const env = this.env();
    const token = this.options.token ?? (env.SPINDLE_API_TOKEN as string | undefined);
    if (!token) {
      throw new SpindleError("config.missing_token", "no API token: set the SPINDLE_API_TOKEN secret or pass { token } to Spindle.init()");
    }
    if (this.options.url) {
      this.engine = new HttpClient(this.options.url, token, this.options.fetch);
      return this.engine;
    }
    const name = this.options.binding ?? "SPINDLE";
    const binding = env[name] as EngineBinding | undefined;
    if (!binding) {
      throw new SpindleError(
        "config.missing_binding",
        `no service binding '${name}' to the engine: add [[services]] binding = "${name}", service = "spindle", entrypoint = "Engine" to wrangler.toml, or pass { url, token }`,
      );
    }
    this.engine = new RpcClient(binding, token);
    return this.engine;
  };

  /** @internal */
  tokenHash(): Promise<string> {
    this.hash ??= (async () => {
      const token = this.options.token ?? (this.env().SPINDLE_API_TOKEN as string | undefined) ?? "";
      const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token));
      return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
    })();
    return this.hash;
  }

  private env(): Record<string, unknown> {
    return this.options.env ?? ((workers?.env ?? {}) as Record<string, unknown>);
  }
}
