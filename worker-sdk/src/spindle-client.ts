/**
 * `@spindle/worker-sdk/client`: trigger and watch runs from any JavaScript runtime (Node 20+, Deno,
 * Bun, browsers, Workers). Plain `fetch` against the engine's HTTP API: no `cloudflare:*` import,
 * no binding, nothing to configure but the engine's URL and a token.
 */
import { HttpClient } from "./client.js";
import { RunCancelledError, RunFailedError, SpindleError } from "./errors.js";
import type { EventPush, RunFilter, RunList, RunView, TriggerRequest } from "./protocol.js";

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
}

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
  };

  readonly events = {
    push: (
      key: string,
      payload: unknown,
      options: { additionalMetadata?: Record<string, string>; scope?: string; idempotencyKey?: string } = {},
    ): Promise<{ eventId: string }> => this.http.pushEvent({ key, payload, ...options }),
    bulkPush: (events: EventPush[]): Promise<{ eventId: string }[]> => this.http.pushEvents(events),
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
    const name = typeof workflow === "string" ? workflow : workflow.name;
    const req: TriggerRequest = { workflow: name, input: input ?? null, ...options };
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
    };
  }
}

export { SpindleError, RunFailedError, RunCancelledError, PayloadTooLargeError } from "./errors.js";
export type {
  ErrorData,
  EventPush,
  RunFilter,
  RunList,
  RunStatus,
  RunSummary,
  RunView,
  TaskStatus,
  TaskView,
} from "./protocol.js";
