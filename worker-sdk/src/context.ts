import type { EngineClient } from "./client.js";
import { SpindleError } from "./errors.js";
import { Outflow } from "./outflow.js";
import type { Assignment, LogLine } from "./protocol.js";
import type { RunOptions, RunRef, Runnable, TaskRef } from "./runnable.js";

export interface Logger {
  info(message: string, ...args: unknown[]): void;
  warn(message: string, ...args: unknown[]): void;
  error(message: string, ...args: unknown[]): void;
}

export interface ChildSpec<I = unknown, O = unknown> {
  task: Runnable<I, O>;
  input: I;
  options?: RunOptions;
}

/** The most log lines one attempt sends back; more are counted and dropped. */
export const MAX_LOG_LINES = 1000;
/** The most bytes (UTF-8) one stream chunk may hold. */
export const MAX_STREAM_CHUNK_BYTES = 64 * 1024;

/**
 * What a task's function receives next to its input: who it is, what its parents produced, a
 * logger stored with the task, an abort signal, and the way to spawn children.
 */
export class Context<I = unknown> {
  readonly input: I;
  /** Fires when the run is cancelled or the attempt's execution timeout passes. */
  readonly abortSignal: AbortSignal;
  readonly logger: Logger;
  /** @internal */ readonly logs: LogLine[] = [];
  private dropped = 0;
  private spawned = 0;
  private readonly liveLogs: Outflow<LogLine>;
  private readonly stream: Outflow<string>;

  /** @internal */
  constructor(
    protected readonly assignment: Assignment,
    input: I,
    abortSignal: AbortSignal,
    protected readonly client: () => EngineClient,
  ) {
    this.input = input;
    this.abortSignal = abortSignal;
    const ref = { task: assignment.taskName, attempt: assignment.attempt, invocation: assignment.invocation };
    this.liveLogs = new Outflow((first, lines) => client().appendLogs(assignment.runId, ref, first, lines));
    this.stream = new Outflow(async (first, chunks) => {
      await client().putStream(assignment.runId, ref, first, chunks);
    });
    const log = (level: LogLine["level"]) => (message: string, ...args: unknown[]) => {
      // Also on the worker's own console, where `wrangler dev` and `wrangler tail` show it.
      console[level](`[${assignment.workflowName}/${assignment.taskName} ${assignment.runId}#${assignment.attempt}] ${message}`, ...args);
      if (this.logs.length >= MAX_LOG_LINES) {
        this.dropped++;
        return;
      }
      const text = [message, ...args.map((a) => (typeof a === "string" ? a : safeJson(a)))].join(" ");
      const line: LogLine = { at: Date.now(), level, message: text };
      this.logs.push(line);
      // On the run's page as it happens. A line that does not make it live still reaches the run
      // with the outcome.
      this.liveLogs.push(line).catch(() => {});
    };
    this.logger = { info: log("info"), warn: log("warn"), error: log("error") };
  }

  /**
   * Puts a chunk on the run's stream: readers of `GET /api/v1/runs/{runId}/stream` (and
   * `runRef.stream()`, and the run's page) get it at once, in order. Resolves when the engine has
   * recorded it. A durable task that replays puts its chunks again: the engine keeps each once.
   */
  putStream(chunk: string): Promise<void> {
    if (typeof chunk !== "string") return Promise.reject(new SpindleError("input.invalid", "putStream takes a string chunk"));
    const bytes = new TextEncoder().encode(chunk).length;
    if (bytes > MAX_STREAM_CHUNK_BYTES) {
      return Promise.reject(new SpindleError("payload.too_large", `a stream chunk of ${bytes} bytes; the limit is ${MAX_STREAM_CHUNK_BYTES}`));
    }
    return this.stream.push(chunk);
  }

  /** @internal everything put on the stream or logged so far has been sent. */
  async flushed(): Promise<void> {
    await Promise.all([this.stream.drain(), this.liveLogs.drain()]);
  }

  /** The output of a parent task (in an on-failure or on-success task: of any task of the run). */
  parentOutput<O>(task: TaskRef<unknown, O> | string): O {
    const name = typeof task === "string" ? task : task.name;
    if (!(name in this.assignment.parentOutputs)) {
      const skipped = this.assignment.skippedParents.includes(name);
      throw new SpindleError(
        "task.no_parent_output",
        skipped ? `parent '${name}' was skipped; check ctx.wasSkipped() first` : `'${name}' is not a completed parent of this task`,
      );
    }
    return this.assignment.parentOutputs[name] as O;
  }

  /** Whether a parent task was skipped by its `skipIf` condition. */
  wasSkipped(task: TaskRef<unknown, unknown> | string): boolean {
    return this.assignment.skippedParents.includes(typeof task === "string" ? task : task.name);
  }

  /** How many times this task has been retried in this run (0 on the first attempt). */
  retryCount(): number {
    return this.assignment.retryCount;
  }

  additionalMetadata(): Record<string, string> {
    return { ...this.assignment.additionalMetadata };
  }

  workflowRunId(): string {
    return this.assignment.runId;
  }

  taskRunId(): string {
    return this.assignment.taskRunId;
  }

  taskName(): string {
    return this.assignment.taskName;
  }

  /** A run started by an event through a filter: that filter's payload (undefined otherwise). */
  filterPayload<P = unknown>(): P | undefined {
    return this.assignment.filterPayload as P | undefined;
  }

  /** In an on-failure task: the error message of each failed task, by task name. */
  errors(): Record<string, string> {
    return { ...this.assignment.errors };
  }

  /** Runs a child and waits for its output. The child's run is linked to this task. */
  async runChild<CI, CO>(task: Runnable<CI, CO>, input: CI, options?: RunOptions): Promise<CO> {
    const ref = await this.runNoWaitChild(task, input, options);
    return ref.result();
  }

  /** Starts a child without waiting; `result()` on the reference waits for it. */
  async runNoWaitChild<CI, CO>(task: Runnable<CI, CO>, input: CI, options?: RunOptions): Promise<RunRef<CO>> {
    const [ref] = await this.spawn([{ task, input, options }]);
    return ref!;
  }

  /** Runs many children at once and waits for all their outputs (in the order given). */
  async bulkRunChildren<CI, CO>(children: ChildSpec<CI, CO>[]): Promise<CO[]> {
    const refs = await this.bulkRunNoWaitChildren(children);
    return Promise.all(refs.map((r) => r.result()));
  }

  async bulkRunNoWaitChildren<CI, CO>(children: ChildSpec<CI, CO>[]): Promise<RunRef<CO>[]> {
    return this.spawn(children);
  }

  /** @internal the n-th spawn of an attempt always gets the same child id, so a duplicate delivery reuses it. */
  protected async spawn<CI, CO>(children: ChildSpec<CI, CO>[]): Promise<RunRef<CO>[]> {
    const first = this.spawned;
    this.spawned += children.length;
    const requests = await Promise.all(
      children.map(async (c, i) =>
        c.task.triggerRequest(c.input, c.options, {
          runId: this.assignment.runId,
          taskName: this.assignment.taskName,
          attempt: this.assignment.attempt,
          invocation: this.assignment.invocation,
          index: first + i,
          // Stable for the attempt: a claim run again after it was lost spawns the same children.
          startedAt: this.assignment.firstStartedAt,
        }),
      ),
    );
    const results = await this.client().triggerMany(requests);
    return results.map((r, i) => children[i]!.task.ref(r.runId));
  }

  /** @internal */
  droppedLogLines(): number {
    return this.dropped;
  }
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
