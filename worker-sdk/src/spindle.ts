import { env as workerEnv } from "cloudflare:workers";
import { HttpClient, RpcClient, type EngineBinding, type EngineClient } from "./client";
import { SpindleError } from "./errors";
import type { EventPush, RunFilter, RunList, RunView } from "./protocol";
import { DurableTask, Task, type DurableTaskDeclaration, type TaskDeclaration } from "./task";
import { RunRef, type TaskImpl } from "./runnable";
import { createWorker, type SpindleWorkerClass, type WorkerOptions } from "./worker";
import { Workflow, type WorkflowDeclaration } from "./workflow";

export interface SpindleOptions {
  /** Name of the service binding to the engine (default `SPINDLE`). */
  binding?: string;
  /** The engine's URL, to reach it over HTTPS instead of a binding. */
  url?: string;
  /** The API token (default: the worker's `SPINDLE_API_TOKEN` secret). */
  token?: string;
  /** Where to read bindings and secrets (default: the worker's env from `cloudflare:workers`). */
  env?: Record<string, unknown>;
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
   * Events: a pushed event wakes every task waiting for its key whose expression holds. With an
   * `idempotencyKey`, a push repeated within 24 h returns the first push's id and wakes nothing.
   * `bulkPush` pushes every event or none.
   */
  readonly events = {
    push: async (
      key: string,
      payload: unknown,
      options: { additionalMetadata?: Record<string, string>; scope?: string; idempotencyKey?: string } = {},
    ): Promise<{ eventId: string }> => this.client().pushEvent({ key, payload, ...options }),
    bulkPush: (events: EventPush[]): Promise<{ eventId: string }[]> => this.client().pushEvents(events),
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

  /** @internal the engine connection, resolved on first use. */
  readonly client = (): EngineClient => {
    if (this.engine) return this.engine;
    const env = this.env();
    const token = this.options.token ?? (env.SPINDLE_API_TOKEN as string | undefined);
    if (!token) {
      throw new SpindleError("config.missing_token", "no API token: set the SPINDLE_API_TOKEN secret or pass { token } to Spindle.init()");
    }
    if (this.options.url) {
      this.engine = new HttpClient(this.options.url, token);
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
    return this.options.env ?? (workerEnv as unknown as Record<string, unknown>);
  }
}
