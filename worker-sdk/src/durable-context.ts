import type { EngineClient } from "./client.js";
import { toConditionData, type ConditionSpec } from "./conditions.js";
import { Context, type ChildSpec } from "./context.js";
import { toMs } from "./duration.js";
import { checkPayloadSize, ChildRunError, DEFAULT_MAX_PAYLOAD_BYTES, NonDeterminismError, NonRetryableError, PayloadTooLargeError, SpindleError, toErrorData } from "./errors.js";
import {
  conditionKey,
  type Assignment,
  type CheckpointKind,
  type CheckpointReply,
  type CheckpointRequest,
  type CheckpointResult,
  type ChildResult,
  type ConditionData,
  type Duration,
} from "./protocol.js";
import { ReplayLog, type ReplayMatch } from "./replay.js";
import type { RunOptions, RunRef, Runnable } from "./runnable.js";

/** A promise that never settles: what a call gets when its invocation is ending. */
const NEVER = (): Promise<never> => new Promise<never>(() => {});

/** Names longer than this are refused (a name is part of every record of the call). */
const MAX_MEMO_NAME_LENGTH = 256;

/**
 * Tracks an invocation's way out at a wait. A call that must wait returns a promise that never
 * settles and asks the executor to end the invocation; the executor first lets the calls already
 * on their way to the engine land, so every wait of the invocation is recorded.
 */
export class Suspension {
  readonly waitingOn = new Set<number>();
  private readonly inflight = new Set<Promise<unknown>>();
  private signal!: () => void;
  /** Set once a wait (or a fatal error) has asked the invocation to end: nothing new starts after. */
  ending = false;
  /** Resolves when the invocation should end (a wait, or a fatal replay error). */
  readonly requested = new Promise<void>((resolve) => (this.signal = resolve));
  /** An error no user code may swallow (non-determinism, a stale invocation). */
  fatal: Error | null = null;

  wait(seq: number): Promise<never> {
    this.waitingOn.add(seq);
    this.ending = true;
    this.signal();
    return NEVER();
  }

  fail(err: Error): Promise<never> {
    this.fatal ??= err;
    this.ending = true;
    this.signal();
    return NEVER();
  }

  track<T>(work: Promise<T>): Promise<T> {
    this.inflight.add(work);
    void work.then(
      () => this.inflight.delete(work),
      () => this.inflight.delete(work),
    );
    return work;
  }

  /** Waits until no checkpoint call is on its way (calls may start others while it waits). */
  async settle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }
}

/**
 * The context of a durable task. Every call here is a checkpoint in the run's event log: on a
 * replay, recorded calls return their recorded results without running again, and calls the log
 * does not hold run for real. Calls are matched with records by identity (kind and key: a memo's
 * name, a sleep's duration, ...) and occurrence, never by timing (see `ReplayLog`). At a wait the
 * invocation ends and its slot is freed; the engine queues the task again when the wait is
 * satisfied. Once the invocation is no longer current (cancelled, timed out, superseded), every
 * call throws at once and runs nothing.
 */
export class DurableContext<I = unknown> extends Context<I> {
  private readonly log: ReplayLog;
  /** Calls are matched in the order they are made; a key may still be being hashed. */
  private matching: Promise<unknown> = Promise.resolve();
  /** Set once the invocation is known not to be current: what every later call throws. */
  private stale: SpindleError | null = null;

  /** @internal */
  constructor(
    assignment: Assignment,
    input: I,
    abortSignal: AbortSignal,
    client: () => EngineClient,
    private readonly suspension: Suspension,
  ) {
    super(assignment, input, abortSignal, client);
    this.log = new ReplayLog(assignment.durable?.log ?? []);
    // The signal fires at the execution timeout and when the engine says the attempt was cancelled,
    // timed out or superseded: from then on nothing of this invocation may act.
    const onAbort = () => this.markStale(abortSignal.reason);
    if (abortSignal.aborted) onAbort();
    else abortSignal.addEventListener("abort", onAbort, { once: true });
  }

  /** How many times this task has been invoked (1 on its first run; each resume adds one). */
  invocationCount(): number {
    return this.assignment.invocation + 1;
  }

  /** Sleeps without holding a slot. The deadline is fixed the first time the sleep is reached. */
  async sleepFor(duration: Duration): Promise<{ durationMs: number }> {
    const ms = toMs(duration, "sleepFor");
    return (await this.call("sleep", `sleepFor:${ms}`, { conditions: [{ kind: "sleep", durationMs: ms }] })) as { durationMs: number };
  }

  /** Sleeps until a moment, without holding a slot. */
  async sleepUntil(when: Date | string | number): Promise<{ durationMs: number }> {
    const at = new Date(when).getTime();
    if (Number.isNaN(at)) throw new SpindleError("config.invalid", `sleepUntil: ${JSON.stringify(when)} is not a date`);
    return (await this.call("sleep", `sleepUntil:${new Date(at).toISOString()}`, { untilMs: at })) as { durationMs: number };
  }

  /**
   * Waits for an event with this key (and, if given, a CEL expression over `input` — the payload —
   * and `additional_metadata` that holds). `lookback` also matches an event pushed that long before
   * the wait was reached. Returns the event's payload.
   */
  async waitForEvent<T = unknown>(key: string, expression?: string, options: { scope?: string; lookback?: Duration } = {}): Promise<T> {
    const [condition] = toConditionData([{ eventKey: key, expression, ...options }], "waitForEvent");
    const fired = (await this.call("wait", waitKey([condition!]), { conditions: [condition!] })) as Record<string, unknown>;
    return fired[conditionKey(condition as Extract<ConditionData, { kind: "event" }>)] as T;
  }

  /**
   * Waits until every condition holds (an `Or(...)` holds when its first condition does). Returns
   * the results of the conditions that fired, keyed by event key (or `sleep`, or the `key` given).
   */
  async waitFor(conditions: ConditionSpec[]): Promise<Record<string, unknown>> {
    const data = toConditionData(conditions, "waitFor");
    if (data.some((c) => (c.kind === "or" ? c.conditions : [c]).some((l) => l.kind === "parent"))) {
      throw new SpindleError("condition.invalid", "waitFor: ParentCondition belongs on DAG tasks, not in a durable wait");
    }
    return (await this.call("wait", waitKey(data), { conditions: data })) as Record<string, unknown>;
  }

  /**
   * Runs `fn` once; every replay returns its recorded result. The name is the call's identity in
   * the log (the n-th call with a name gets the n-th record with it), so give calls that parallel
   * branches make different names. `deps` are part of the identity too: a replay with other deps is
   * another call. Without a name, the identity is `fn`'s source text and the deps.
   *
   * An error `fn` throws is recorded too when retrying cannot help (a NonRetryableError: the replay
   * throws it again); any other error fails the attempt without a record, so a retry runs `fn` again.
   */
  memo<T>(name: string, fn: () => T | Promise<T>, deps?: unknown[]): Promise<T>;
  memo<T>(fn: () => T | Promise<T>, deps?: unknown[]): Promise<T>;
  async memo<T>(nameOrFn: string | (() => T | Promise<T>), fnOrDeps?: (() => T | Promise<T>) | unknown[], maybeDeps?: unknown[]): Promise<T> {
    const named = typeof nameOrFn === "string";
    const fn = named ? fnOrDeps : nameOrFn;
    const deps = named ? maybeDeps : (fnOrDeps as unknown[] | undefined);
    if (typeof fn !== "function") throw new SpindleError("config.invalid", `memo: expected a function${named ? ` after the name '${nameOrFn}'` : ""}, got ${typeof fn}`);
    if (deps !== undefined && !Array.isArray(deps)) throw new SpindleError("config.invalid", `memo: deps must be an array, got ${typeof deps}`);
    if (named && (nameOrFn.length === 0 || nameOrFn.length > MAX_MEMO_NAME_LENGTH)) {
      throw new SpindleError("config.invalid", `memo: the name must be 1 to ${MAX_MEMO_NAME_LENGTH} characters, got ${nameOrFn.length}`);
    }
    const key = named
      ? deps === undefined
        ? `memo:${nameOrFn}`
        : digest(deps).then((d) => `memo:${nameOrFn}:${d}`)
      : digest([fn.toString(), deps ?? null]).then((d) => `memo#${d}`);
    // A log from before memo identities keyed every memo by its deps alone (see `ReplayLog`).
    const legacyKey = this.log.hasLegacyMemos ? digest(deps ?? null).then((d) => `memo:${d}`) : undefined;
    return (await this.call("memo", key, {}, fn as () => unknown, undefined, legacyKey)) as T;
  }

  /** The current time, recorded once: a replay sees the same moment. */
  async now(): Promise<Date> {
    const ms = (await this.call("memo", "now", {}, () => Date.now())) as number;
    return new Date(ms);
  }

  /** Runs a child and waits for its output; the task is evicted while the child runs. */
  override async runChild<CI, CO>(task: Runnable<CI, CO>, input: CI, options?: RunOptions): Promise<CO> {
    const [result] = (await this.spawnCheckpoint("child", [{ task, input, options }])) as ChildResult[];
    if (result!.status !== "COMPLETED") throw new ChildRunError(result!);
    return result!.output as CO;
  }

  /** Same as `runChild`. */
  spawnChild<CI, CO>(task: Runnable<CI, CO>, input: CI, options?: RunOptions): Promise<CO> {
    return this.runChild(task, input, options);
  }

  /**
   * Fans out: runs every child and waits for all of them (evicted meanwhile). Resolves to their
   * outputs in order; if any child failed, throws a ChildRunError (catchable) for the first one,
   * with every child's result on `results`.
   */
  async spawnChildren<CI, CO>(children: ChildSpec<CI, CO>[]): Promise<CO[]> {
    const results = (await this.spawnCheckpoint("children", children)) as ChildResult[];
    const failed = results.find((r) => r.status !== "COMPLETED");
    if (failed) throw new ChildRunError(failed, results);
    return results.map((r) => r.output as CO);
  }

  override bulkRunChildren<CI, CO>(children: ChildSpec<CI, CO>[]): Promise<CO[]> {
    return this.spawnChildren(children);
  }

  /** Starts a child without waiting for it (recorded, so a replay does not start it again). */
  override async runNoWaitChild<CI, CO>(task: Runnable<CI, CO>, input: CI, options?: RunOptions): Promise<RunRef<CO>> {
    const [runId] = (await this.spawnCheckpoint("spawn", [{ task, input, options }])) as string[];
    return task.ref(runId!);
  }

  override async bulkRunNoWaitChildren<CI, CO>(children: ChildSpec<CI, CO>[]): Promise<RunRef<CO>[]> {
    const ids = (await this.spawnCheckpoint("spawn", children)) as string[];
    return ids.map((id, i) => children[i]!.task.ref(id));
  }

  /** @internal The invocation is no longer current: every later checkpoint call throws at once. */
  markStale(reason: unknown): void {
    if (this.stale) return;
    if (reason instanceof SpindleError && reason.code === "task.superseded") {
      this.stale = reason;
      return;
    }
    const why = reason instanceof Error ? reason.message : String(reason);
    const { taskName, attempt, invocation } = this.assignment;
    this.stale = new SpindleError(
      "task.superseded",
      `invocation ${invocation} of attempt ${attempt} of task '${taskName}' is no longer current (${why}): its checkpoint calls are refused`,
      { cause: reason },
    );
  }

  /** @internal What a task that has returned did wrong: a recorded call it never made again. */
  async divergence(): Promise<NonDeterminismError | null> {
    // Calls made before the return but not awaited may still be being matched.
    await this.matching;
    return this.log.divergence();
  }

  private spawnCheckpoint<CI, CO>(kind: "child" | "children" | "spawn", children: ChildSpec<CI, CO>[]): Promise<unknown> {
    const key = (async () => {
      const parts = await Promise.all(children.map(async (c) => `${c.task.name}:${await digest(c.input ?? null)}`));
      return `${kind}:${parts.length === 1 ? parts[0] : await digest(parts)}`;
    })();
    return this.call(kind, key, {}, undefined, async (at) => {
      const requests = await Promise.all(
        children.map((c, i) =>
          c.task.triggerRequest(c.input, c.options, {
            runId: this.assignment.runId,
            taskName: this.assignment.taskName,
            attempt: this.assignment.attempt,
            invocation: this.assignment.invocation,
            index: i,
            startedAt: this.assignment.firstStartedAt,
            seq: at.seq,
            checkpoint: `${kind}:${at.key}#${at.occurrence}`,
          }),
        ),
      );
      return (await this.client().triggerMany(requests)).map((r) => r.runId);
    });
  }

  /**
   * One checkpointed call. Calls are matched with the log in the order they are made: a recorded
   * call hands back its result (or waits again if it is still pending); a new one does the work (a
   * memo's body, spawning children), records it, and returns the result or waits. Once the
   * invocation is ending at a wait, a new call starts nothing: the next invocation makes it again.
   * Once the invocation is stale, every call throws.
   */
  private call(
    kind: CheckpointKind,
    key: string | Promise<string>,
    request: Partial<Pick<CheckpointRequest, "conditions" | "untilMs">>,
    memo?: () => unknown,
    spawn?: (at: Matched) => Promise<string[]>,
    legacyKey?: Promise<string>,
  ): Promise<unknown> {
    if (this.stale) return Promise.reject(this.stale);
    const matched = this.matching.then(async (): Promise<Matched> => {
      const k = await key;
      return { key: k, ...this.log.match(kind, k, await legacyKey) };
    });
    this.matching = matched.catch(() => undefined);
    return matched.then((at) => {
      if (this.stale) throw this.stale;
      if (at.record) {
        if (at.record.status === "pending") return this.suspension.wait(at.seq);
        return unwrap(at.record.result!);
      }
      if (this.suspension.ending) return NEVER();
      const recording = this.suspension.track(this.record(at, kind, request, memo, spawn));
      // Only the recording is tracked: the wait that may follow never settles, by design.
      return recording.then((reply) => {
        if (reply instanceof Error) return this.suspension.fail(reply);
        if ("thrown" in reply) throw reply.thrown;
        return reply.status === "resolved" ? unwrap(reply.result) : this.suspension.wait(at.seq);
      });
    });
  }

  /** Does the call's work and records it; a retryable memo failure comes back unrecorded, to be thrown. */
  private async record(
    at: Matched,
    kind: CheckpointKind,
    request: Partial<Pick<CheckpointRequest, "conditions" | "untilMs">>,
    memo?: () => unknown,
    spawn?: (at: Matched) => Promise<string[]>,
  ): Promise<CheckpointReply | Error | { thrown: unknown }> {
    const req: CheckpointRequest = {
      task: this.assignment.taskName,
      attempt: this.assignment.attempt,
      invocation: this.assignment.invocation,
      seq: at.seq,
      kind,
      key: at.key,
      occurrence: at.occurrence,
      ...request,
    };
    let tooLarge: PayloadTooLargeError | undefined;
    if (memo) {
      try {
        const value = toJson(await memo());
        checkPayloadSize("memo result", value, this.assignment.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES);
        req.result = { value };
      } catch (err) {
        const error = toErrorData(err);
        if (error.retryable) return { thrown: err };
        // Recorded like any error retrying cannot help (a replay throws it again, the body is not run again).
        if (err instanceof PayloadTooLargeError) tooLarge = err;
        req.result = { error };
      }
    }
    // The work may have taken a while: a stale invocation spawns nothing and records nothing.
    if (this.stale) return { thrown: this.stale };
    try {
      // Inside the try: the engine refuses a stale attempt's spawn with `task.superseded` too.
      if (spawn) req.children = await spawn(at);
      const reply = await this.client().checkpoint(this.assignment.runId, req);
      return tooLarge && reply.status === "resolved" && "error" in reply.result ? { thrown: tooLarge } : reply;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "replay.non_determinism") return new NonDeterminismError(at.seq, "", "", (err as Error).message);
      if (code === "task.superseded") {
        // The engine knew before the watch said so: end the invocation, and throw here and at every later call.
        this.markStale(err);
        void this.suspension.fail(this.stale!);
        return { thrown: this.stale };
      }
      throw err;
    }
  }
}

/** A call matched with the log, with its key. */
type Matched = ReplayMatch & { key: string };

/** A recorded result, or its recorded error thrown again (recorded errors are the non-retryable ones). */
function unwrap(result: CheckpointResult): unknown {
  if (!("error" in result)) return result.value;
  const err = result.error.retryable ? new Error(result.error.message) : new NonRetryableError(result.error.message);
  throw Object.assign(err, { name: result.error.name, code: result.error.code });
}

/** A stable key for a list of conditions: their canonical JSON. */
function waitKey(conditions: ConditionData[]): string {
  return `wait:${canonical(conditions)}`;
}

function toJson(value: unknown): unknown {
  return value === undefined ? null : (JSON.parse(JSON.stringify(value)) as unknown);
}

/** JSON with sorted keys, so equal values give equal keys. */
export function canonical(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
}

async function digest(value: unknown): Promise<string> {
  const bytes = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical(value)));
  return [...new Uint8Array(bytes)]
    .slice(0, 12)
    .map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}
