/**
 * `@spindle/worker-sdk/client`: trigger and watch runs from any JavaScript runtime (Node 20+, Deno,
 * Bun, browsers, Workers). Plain `fetch` against the engine's HTTP API: no `cloudflare:*` import,
 * no binding, nothing to configure but the engine's URL and a token.
 */
import { HttpClient } from "./client.js";
import { RunCancelledError, RunFailedError, SpindleError } from "./errors.js";
import type { FilterListFilter } from "./client.js";
import type {
  ConcurrencyKeyView,
  CronCreate,
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
  RunStatus,
  RunView,
  ScheduleCreate,
  ScheduleFilter,
  ScheduleList,
  ScheduleView,
  TriggerRequest,
} from "./protocol.js";
import { runStream } from "./sse.js";

/** A declared task or workflow (what `spindle.task()` / `spindle.workflow()` return): its types flow through. */
export interface Declared<I, O> {
  readonly name: string;
  readonly __types?: { input: I; output: O };
}

/** A workflow to run: its name, or its declaration. */
export type WorkflowTarget<I, O> = string | Declared<I, O>;

export interface SpindleClientOptions {
  /** The engine's URL, e.g. `https://spindle.example.workers.dev` or `http://localhost:8787`. */
  url: string;
  /** An API token of the tenant. */
  token: string;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
}

export interface ClientRunOptions {
  additionalMetadata?: Record<string, string>;
  /** 1 (low) to 3 (high). */
  priority?: 1 | 2 | 3;
  /** Within 24 h, a trigger with the same key returns the first trigger's run and creates nothing. */
  idempotencyKey?: string;
}

/** A run started by `runNoWait`. */
export interface RunHandle<O> {
  readonly runId: string;
  /** Waits for the run to end: its output, or a `RunFailedError` / `RunCancelledError`. */
  result(): Promise<O>;
  get(): Promise<RunView>;
  cancel(): Promise<RunView>;
  /** The run's stream, chunk by chunk as its tasks put them; ends when the run has ended (see `runs.stream`). */
  stream(): AsyncGenerator<string, void, undefined>;
}

/** Which runs a bulk action takes: these ids (at most 1,000), or every run the list's filters match. */
export type RunSelection =
  | { runIds: string[] }
  | { filter: { workflow?: string; status?: RunStatus | RunStatus[]; since?: string; until?: string; metadata?: Record<string, string> } };

export interface WorkerView {
  name: string;
  transport: "binding" | "https";
  status: "active" | "refused" | "unreachable";
  reason: string | null;
  url: string | null;
  lastSeenAt: string | null;
  slots: number;
  durableSlots: number;
  slotsInUse: { regular: number; durable: number };
  workflows: { name: string; status: "active" | "refused"; reason: string | null }[];
}

/** How long one long poll for a run's result lasts before it is renewed. */
const RESULT_POLL_MS = 30_000;

export class SpindleClient {
  private readonly http: HttpClient;

  readonly runs = {
    get: (runId: string): Promise<RunView> => this.http.getRun(runId),
    list: (filter: RunFilter = {}): Promise<RunList> => this.http.listRuns(filter),
    cancel: (runId: string): Promise<RunView> => this.http.cancelRun(runId),
    replay: (runId: string): Promise<RunView> => this.http.replayRun(runId),
    /**
     * The run's stream (what its tasks put with `ctx.putStream`) as an async iterator, from the
     * first chunk; it resumes by itself after a disconnect and ends when the run has ended.
     */
    stream: (runId: string): AsyncGenerator<string, void, undefined> => runStream((last) => this.http.openStream(runId, last)),
    /** Cancels the selected runs that are still going → how many, and which. */
    cancelMany: (selection: RunSelection): Promise<{ affected: number; runIds: string[] }> => this.http.send("POST", "/api/v1/runs/cancel", selection),
    /** Replays the selected runs that failed or were cancelled → how many, and which. */
    replayMany: (selection: RunSelection): Promise<{ affected: number; runIds: string[] }> => this.http.send("POST", "/api/v1/runs/replay", selection),
  };

  readonly events = {
    /** Starts the workflows whose `onEvents` match the key and wakes the tasks waiting for it. */
    push: (
      key: string,
      payload: unknown,
      options: { additionalMetadata?: Record<string, string>; scope?: string; idempotencyKey?: string } = {},
    ): Promise<EventPushResult> => this.http.pushEvent({ key, payload, ...options }),
    /** Every event or none. */
    bulkPush: (events: EventPush[]): Promise<EventPushResult[]> => this.http.pushEvents(events),
    list: (filter: EventFilter = {}): Promise<EventList> => this.http.listEvents(filter),
    get: (eventId: string): Promise<EventView> => this.http.getEvent(eventId),
  };

  readonly filters = {
    create: (filter: FilterCreate): Promise<FilterView> => this.http.createFilter(filter),
    list: (filter: FilterListFilter = {}): Promise<FilterList> => this.http.listFilters(filter),
    delete: (id: string): Promise<FilterView> => this.http.deleteFilter(id),
  };

  readonly crons = {
    create: (workflow: string | Declared<unknown, unknown>, cron: CronCreate): Promise<CronView> => this.http.createCron(nameOf(workflow), cron),
    list: (filter: CronFilter = {}): Promise<CronList> => this.http.listCrons(filter),
    delete: (id: string): Promise<CronView> => this.http.deleteCron(id),
  };

  readonly schedules = {
    create: (workflow: string | Declared<unknown, unknown>, schedule: ScheduleCreate): Promise<ScheduleView> => this.http.createSchedule(nameOf(workflow), schedule),
    list: (filter: ScheduleFilter = {}): Promise<ScheduleList> => this.http.listSchedules(filter),
    get: (id: string): Promise<ScheduleView> => this.http.getSchedule(id),
    delete: (id: string): Promise<ScheduleView> => this.http.deleteSchedule(id),
  };

  readonly rateLimits = {
    upsert: ({ key, limit, duration }: { key: string; limit: number; duration: RateLimitDuration }): Promise<RateLimitView> =>
      this.http.upsertRateLimit(key, limit, duration),
    list: (): Promise<RateLimitView[]> => this.http.listRateLimits(),
  };

  readonly concurrency = {
    /** Each concurrency key that holds or queues runs. */
    list: async (): Promise<ConcurrencyKeyView[]> => (await this.http.send<{ concurrency: ConcurrencyKeyView[] }>("GET", "/api/v1/concurrency")).concurrency,
  };

  readonly workers = {
    /** Every worker the engine knows or has tried, with its status and, when not active, why. */
    list: async (): Promise<WorkerView[]> => (await this.http.send<{ workers: WorkerView[] }>("GET", "/api/v1/workers")).workers,
    /** Registers (or re-syncs) a worker served over HTTPS by `spindle.serve()`. */
    register: (url: string): Promise<WorkerView> => this.http.send("POST", "/api/v1/workers", { url }),
  };

  readonly workflows = {
    list: async (): Promise<{ name: string; kind: "task" | "workflow" }[]> =>
      (await this.http.send<{ workflows: { name: string; kind: "task" | "workflow" }[] }>("GET", "/api/v1/workflows")).workflows,
  };

  constructor(options: SpindleClientOptions) {
    if (typeof options?.url !== "string" || !/^https?:\/\//.test(options.url)) {
      throw new SpindleError("config.invalid", `url: '${String(options?.url)}' is not an http(s) URL`);
    }
    if (typeof options.token !== "string" || options.token === "") throw new SpindleError("config.missing_token", "token: an API token is required");
    this.http = new HttpClient(options.url, options.token, options.fetch ?? ((input, init) => fetch(input, init)));
  }

  /** Runs a workflow and waits for its output. */
  async run<I, O>(workflow: WorkflowTarget<I, O>, input: I, options?: ClientRunOptions): Promise<O> {
    return (await this.runNoWait(workflow, input, options)).result();
  }

  /** Starts a run and returns at once. */
  async runNoWait<I, O>(workflow: WorkflowTarget<I, O>, input: I, options: ClientRunOptions = {}): Promise<RunHandle<O>> {
    const req: TriggerRequest = { workflow: nameOf(workflow), input: input ?? null, ...options };
    const { runId } = await this.http.trigger(req);
    return this.handle<O>(runId);
  }

  private handle<O>(runId: string): RunHandle<O> {
    return {
      runId,
      result: async () => {
        for (;;) {
          const run = await this.http.waitForRun(runId, RESULT_POLL_MS);
          if (run.status === "COMPLETED") return run.output as O;
          if (run.status === "FAILED") throw new RunFailedError(run);
          if (run.status === "CANCELLED") throw new RunCancelledError(runId);
        }
      },
      get: () => this.http.getRun(runId),
      cancel: () => this.http.cancelRun(runId),
      stream: () => this.runs.stream(runId),
    };
  }
}

const nameOf = (workflow: WorkflowTarget<unknown, unknown>): string => (typeof workflow === "string" ? workflow : workflow.name);

export { SpindleError, RunFailedError, RunCancelledError, PayloadTooLargeError } from "./errors.js";
export type {
  ConcurrencyKeyView,
  CronCreate,
  CronList,
  CronView,
  ErrorData,
  EventList,
  EventPush,
  EventPushResult,
  EventView,
  FilterCreate,
  FilterView,
  RateLimitView,
  ScheduleCreate,
  ScheduleView,
  RunFilter,
  RunList,
  RunStatus,
  RunSummary,
  RunView,
  TaskStatus,
  TaskView,
} from "./protocol.js";
