import type { EngineClient } from "./client";
import { toConditionData, type ConditionSpec } from "./conditions";
import { Context, type ChildSpec } from "./context";
import { toMs } from "./duration";
import { checkPayloadSize, ChildRunError, DEFAULT_MAX_PAYLOAD_BYTES, NonDeterminismError, NonRetryableError, PayloadTooLargeError, SpindleError, toErrorData } from "./errors";
import {
  conditionKey,
  type Assignment,
  type CheckpointKind,
  type CheckpointRecord,
  type CheckpointReply,
  type CheckpointRequest,
  type CheckpointResult,
  type ChildResult,
  type ConditionData,
  type Duration,
} from "./protocol";
import type { RunOptions, RunRef, Runnable } from "./runnable";

/** A promise that never settles: what a call gets when its invocation is ending. */
const NEVER = (): Promise<never> => new Promise<never>(() => {});

/**
 * Delivers a replay's recorded results in the order they first resolved, not the order they are
 * asked for. Code that runs checkpoints in parallel (`Promise.all` of chains of memos) then makes
 * its next calls in the order it made them the first time, so each call finds its own record.
 * Sequential code never waits here. A parked result is released on a later macrotask, after the
 * code woken by the one before it has made its calls.
 */
class ReplayOrder {
  /** The resolution orders of the recorded results, ascending; `head` is the first not delivered. */
  private readonly orders: number[];
  private readonly known: Set<number>;
  private readonly delivered = new Set<number>();
  private head = 0;
  private readonly parked = new Map<number, () => void>();
  private scheduled = false;
  private idleChecks = 0;

  constructor(log: readonly CheckpointRecord[]) {
    this.orders = log
      .filter((r) => r.status === "resolved" && r.order !== undefined)
      .map((r) => r.order!)
      .sort((a, b) => a - b);
    this.known = new Set(this.orders);
  }

  turn(order: number | undefined): Promise<void> {
    if (order === undefined || !this.known.has(order) || this.delivered.has(order)) return Promise.resolve();
    if (this.orders[this.head] === order && this.parked.size === 0) {
      this.deliver(order);
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.parked.set(order, resolve);
      this.schedule();
    });
  }

  private deliver(order: number): void {
    this.delivered.add(order);
    while (this.head < this.orders.length && this.delivered.has(this.orders[this.head]!)) this.head++;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setTimeout(() => {
      this.scheduled = false;
      let order = this.orders[this.head];
      if (order === undefined || !this.parked.has(order)) {
        // The record whose turn it is has not been asked for. Give the code a few turns to ask
        // (it may be awaiting something else); after that it took another path: go on.
        if (++this.idleChecks < 3) return this.schedule();
        order = Math.min(...this.parked.keys());
      }
      this.idleChecks = 0;
      const release = this.parked.get(order)!;
      this.parked.delete(order);
      this.deliver(order);
      release();
      if (this.parked.size > 0) this.schedule();
    }, 0);
  }
}

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
 * replay, recorded calls return their recorded results without running again, and the first
 * unrecorded call runs for real. At a wait the invocation ends and its slot is freed; the engine
 * queues the task again when the wait is satisfied. The code between checkpoints must be
 * deterministic: a replay that calls something else at a recorded position fails the task with a
 * NonDeterminismError.
 */
export class DurableContext<I = unknown> extends Context<I> {
  private seq = 0;
  private readonly recorded: Map<number, CheckpointRecord>;
  private readonly order: ReplayOrder;

  /** @internal */
  constructor(
    assignment: Assignment,
    input: I,
    abortSignal: AbortSignal,
    client: () => EngineClient,
    private readonly suspension: Suspension,
  ) {
    super(assignment, input, abortSignal, client);
    this.recorded = new Map((assignment.durable?.log ?? []).map((r) => [r.seq, r]));
    this.order = new ReplayOrder(assignment.durable?.log ?? []);
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
   * Runs `fn` once; every replay returns its recorded result. An error `fn` throws is recorded too
   * when retrying cannot help (a NonRetryableError: the replay throws it again); any other error
   * fails the attempt without a record, so a retry runs `fn` again.
   */
  async memo<T>(fn: () => T | Promise<T>, deps?: unknown[]): Promise<T> {
    return (await this.call("memo", digest(deps ?? null).then((d) => `memo:${d}`), {}, fn)) as T;
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

  private spawnCheckpoint<CI, CO>(kind: "child" | "children" | "spawn", children: ChildSpec<CI, CO>[]): Promise<unknown> {
    const key = (async () => {
      const parts = await Promise.all(children.map(async (c) => `${c.task.name}:${await digest(c.input ?? null)}`));
      return `${kind}:${parts.length === 1 ? parts[0] : await digest(parts)}`;
    })();
    return this.call(kind, key, {}, undefined, async (seq) => {
      const requests = await Promise.all(
        children.map((c, i) =>
          c.task.triggerRequest(c.input, c.options, {
            runId: this.assignment.runId,
            taskName: this.assignment.taskName,
            attempt: this.assignment.attempt,
            index: i,
            startedAt: this.assignment.firstStartedAt,
            seq,
          }),
        ),
      );
      return (await this.client().triggerMany(requests)).map((r) => r.runId);
    });
  }

  /**
   * One checkpointed call. Its position is taken when it is made (so parallel calls number the
   * same way every time). Replaying: check it is the call recorded there and hand back the recorded
   * result, in its turn (or wait again if it is still pending). Otherwise do the work (a memo's
   * body, spawning children), record it, and return the result or wait. Once the invocation is
   * ending, a new call starts nothing: it will be made again by the next invocation.
   */
  private call(
    kind: CheckpointKind,
    key: string | Promise<string>,
    request: Partial<Pick<CheckpointRequest, "conditions" | "untilMs">>,
    memo?: () => unknown,
    spawn?: (seq: number) => Promise<string[]>,
  ): Promise<unknown> {
    const seq = this.seq++;
    const recorded = this.recorded.get(seq);
    if (recorded) return this.replay(seq, recorded, kind, key);
    if (this.suspension.ending) return NEVER();
    const recording = this.suspension.track(this.record(seq, kind, key, request, memo, spawn));
    // Only the recording is tracked: the wait that may follow never settles, by design.
    return recording.then((reply) => {
      if (reply instanceof Error) return this.suspension.fail(reply);
      if ("thrown" in reply) throw reply.thrown;
      return reply.status === "resolved" ? unwrap(reply.result) : this.suspension.wait(seq);
    });
  }

  private async replay(seq: number, recorded: CheckpointRecord, kind: CheckpointKind, key: string | Promise<string>): Promise<unknown> {
    const expected = await key;
    if (recorded.kind !== kind || recorded.key !== expected) {
      return this.suspension.fail(new NonDeterminismError(seq, `${recorded.kind}(${recorded.key})`, `${kind}(${expected})`));
    }
    if (recorded.status === "pending") return this.suspension.wait(seq);
    await this.order.turn(recorded.order);
    return unwrap(recorded.result!);
  }

  /** Does the call's work and records it; a retryable memo failure comes back unrecorded, to be thrown. */
  private async record(
    seq: number,
    kind: CheckpointKind,
    key: string | Promise<string>,
    request: Partial<Pick<CheckpointRequest, "conditions" | "untilMs">>,
    memo?: () => unknown,
    spawn?: (seq: number) => Promise<string[]>,
  ): Promise<CheckpointReply | Error | { thrown: unknown }> {
    const req: CheckpointRequest = {
      task: this.assignment.taskName,
      attempt: this.assignment.attempt,
      invocation: this.assignment.invocation,
      seq,
      kind,
      key: await key,
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
    if (spawn) req.children = await spawn(seq);
    try {
      const reply = await this.client().checkpoint(this.assignment.runId, req);
      return tooLarge && reply.status === "resolved" && "error" in reply.result ? { thrown: tooLarge } : reply;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "replay.non_determinism") return new NonDeterminismError(seq, "", "", (err as Error).message);
      if (code === "task.superseded") return err as Error;
      throw err;
    }
  }
}

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
