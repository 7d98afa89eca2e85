import { DurableObject } from "cloudflare:workers";
import type {
  Assignment,
  CheckpointReply,
  CheckpointRequest,
  ErrorData,
  LogLine,
  ParentLink,
  RunTrigger,
  Reply,
  RunView,
  TaskDefinition,
  TaskOutcome,
  TaskView,
  TriggerResult,
  WatchResult,
  WorkflowDefinition,
} from "@spindle/worker-sdk/protocol";
import { clock, iso } from "../core/clock";
import { isTerminal } from "../core/dag";
import { errorData, SpindleError, toErrorData } from "../core/errors";
import { ulid } from "../core/ids";
import { jsonBytes, limitsOf, type Limits } from "../core/limits";
import { evaluateFilter } from "../core/cel";
import { eventBusName, poolOf, queueShardOf, runObjectName, taskQueueName, waiterId } from "../core/names";
import { dispatchKey, type DispatchMessage } from "../scheduler/messages";
import { dispatchQueueOf, runClaim } from "../scheduler/dispatch";
import type { Env } from "../env";
import type { ConditionLost, ConditionMet, ConditionRef, WaiterError } from "../events/event-bus";
import { installedVersion, migrate } from "../storage/migrate";
import { DurableLog, type ConditionRecord } from "./durable-log";
import { Liveness } from "./liveness";
import { RunMachine, watchKey, type DispatchRef } from "./machine";
import { NEVER_GIVEN_UP, Outbox, OUTBOX_MAX_TRIES, type OutboxKind, type OutboxMessage } from "./outbox";
import { deliver, type ChildEnded, type ChildLost, type OutboxPayloads } from "./outbox-delivery";
import { RunStore, type RunRecord } from "./run-store";
import { buildRunView, waitingView } from "./run-view";
import { RUN_MIGRATIONS } from "./schema";
import { TaskStore, type TaskRecord } from "./task-store";
import { TimerStore } from "./timer-store";
import { isUpgrade, LiveSockets } from "../live/live-sockets";
import { streamResponse } from "../live/stream-response";
import { MAX_STREAM_CHUNKS, StreamStore, type StreamChunk } from "./stream-store";

export type { DispatchRef } from "./machine";

/**
 * A run's view asks at most this many event buses for its waiting conditions' expression errors
 * (a durable wait may name any number of event keys): the conditions of the others show none.
 */
export const MAX_VIEW_BUSES = 16;
/** A stream reader is sent this many chunks per read of storage. */
const STREAM_PAGE = 100;

/**
 * A run object runs at most this many of its claims itself at once (a wide DAG's tasks); its task
 * queue sends the others through the dispatch queue.
 */
export const MAX_OWN_DISPATCHES = 64;
/**
 * How long a run's report to the run index waits after its creation or a task's start, to go out
 * with what follows (the start, the end) should that come by then: one call and one index commit
 * for a run that ends within it, instead of three.
 */
export const INDEX_REPORT_DELAY_MS = 1_000;

/** A task's watch on its attempt returns after this long with `pending`, and the SDK watches again. */
export const WATCH_MAX_MS = 60_000;

export interface RunInit {
  tenant: string;
  runId: string;
  definition: WorkflowDefinition;
  worker: string;
  /** How many task queues share each pool of the worker (default 1). */
  queueShards?: number;
  input: unknown;
  additionalMetadata: Record<string, string>;
  priority: number;
  parent: ParentLink | null;
  /** What started the run, when it was not a direct trigger. */
  trigger?: RunTrigger;
}

/** `release`: whether the refused dispatch's slot lease should be given back (not for a duplicate of a running attempt: that lease is the running attempt's). */
export type StartReply = { kind: "started"; assignment: Assignment } | { kind: "stale"; reason: string; release: boolean };

const ok = <T>(value: T): Reply<T> => ({ ok: true, value });
const fail = (error: SpindleError): Reply<never> => ({ ok: false, error: error.toData() });
const notFound = () => fail(new SpindleError("run.not_found", "run not found"));

/**
 * One run: its tasks, their attempts, outputs, logs, timers and durable event logs, in this
 * object's SQLite. Every state change of the run happens here (one writer per run). This class
 * coordinates: each RPC applies a transition of `RunMachine` in one transaction (which also points
 * the alarm at what is due next), then wakes whoever waits in memory and sends the outbox.
 */
export class WorkflowRun extends DurableObject<Env> {
  private readonly runs: RunStore;
  private readonly tasks: TaskStore;
  private readonly timers: TimerStore;
  private readonly outbox: Outbox;
  private readonly log: DurableLog;
  private readonly stream: StreamStore;
  private readonly machine: RunMachine;
  /** The run's page and whoever else watches it (hibernatable WebSockets). */
  private readonly live: LiveSockets;
  /** Stream readers waiting for the next write (a chunk, or the run's end). */
  private readonly streamWaiters = new Set<() => void>();
  private readonly liveness = new Liveness(clock.now());
  private readonly limits: Limits;
  private readonly endWaiters = new Set<() => void>();
  private readonly watchers = new Map<string, Set<(result: WatchResult) => void>>();
  /** Decided inside a transaction, delivered once it has committed. */
  private pendingWatch: { key: string; result: WatchResult }[] = [];
  private runEnded = false;
  /** Claims this object runs itself (handed over by their task queue), not through the dispatch queue. */
  private ownClaims = 0;
  /**
   * Whether this object holds a run. A run's schema is created by the write that creates the run
   * (one commit, not two), so a call for a run that does not exist writes nothing at all.
   */
  private hasSchema = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.limits = limitsOf(env);
    this.runs = new RunStore(ctx.storage.sql);
    this.tasks = new TaskStore(ctx.storage.sql);
    this.timers = new TimerStore(ctx.storage);
    this.outbox = new Outbox(ctx.storage.sql);
    this.log = new DurableLog(ctx.storage.sql);
    this.stream = new StreamStore(ctx.storage.sql);
    this.live = new LiveSockets(ctx);
    this.machine = new RunMachine(
      { runs: this.runs, tasks: this.tasks, timers: this.timers, outbox: this.outbox, log: this.log },
      {
        watch: (key, result) => this.pendingWatch.push({ key, result }),
        runEnded: () => (this.runEnded = true),
      },
      this.liveness,
      this.limits,
    );
    void ctx.blockConcurrencyWhile(async () => {
      // An object that already holds a run is brought up to date here, before any call.
      if (installedVersion(ctx.storage) > 0) {
        migrate(ctx.storage, RUN_MIGRATIONS);
        this.hasSchema = true;
        // Back with messages still in its outbox (it went away between a commit and its send, or
        // before deleting what it sent): send them now rather than at the outbox's grace alarm.
        // Receivers are idempotent, so a message sent before costs only a repeat.
        if (this.outbox.holdsAny()) ctx.waitUntil(Promise.resolve().then(() => this.afterWrite()));
      }
    });
  }

  /** Creates the run (idempotent: a second create with the same id returns the first). */
  async create(init: RunInit): Promise<Reply<TriggerResult>> {
    const existing = this.hasSchema ? this.runs.get() : null;
    if (existing) return ok({ runId: existing.runId, status: existing.status });
    const now = clock.now();
    this.write(() => {
      if (!this.hasSchema) migrate(this.ctx.storage, RUN_MIGRATIONS);
      this.runs.insert({
        runId: init.runId,
        tenant: init.tenant,
        workflow: init.definition.name,
        worker: init.worker,
        definition: init.definition,
        input: init.input,
        metadata: init.additionalMetadata,
        priority: init.priority,
        createdAt: now,
        parent: init.parent,
        trigger: init.trigger ?? null,
        queueShards: init.queueShards ?? 1,
      });
      init.definition.tasks.forEach((t, i) => this.tasks.insert(t.name, i, ulid(now)));
      const run = this.runs.get()!;
      this.machine.reportToIndex(run, now);
      // Every child links itself, durable ones too: a cancel that lands before the parent records
      // its spawn must still reach them.
      if (init.parent) {
        const link: OutboxPayloads["link_child"] = { runId: init.runId, task: init.parent.taskName, position: init.parent.index };
        this.outbox.add("link_child", runObjectName(init.tenant, init.parent.runId), link, now);
      }
      this.machine.advance(run, now);
    });
    // Only now: had the write failed, it would have rolled the schema back with it.
    this.hasSchema = true;
    // Everything the creation owes goes now (its enqueue, a link to its parent), except its report
    // to the run index (every creation adds one): that waits, and a task started or ended by then
    // replaces it.
    this.wakeWaiters();
    await this.flushOutbox(now, "index");
    this.reportLater();
    const run = this.runs.get()!;
    return ok({ runId: run.runId, status: run.status });
  }

  /**
   * The consumer is about to deliver a dispatch: start the attempt, or say why not. `message` is the
   * id of the queue message that carries it: the queue delivers the same message again only when
   * the consumer that had it did not finish, so a claim started by that very message has no one
   * running it (its start reply was lost) and is dispatched again at once. Another message for a
   * running claim is a duplicate and is refused.
   */
  async startTask(ref: DispatchRef, message: string | null = null): Promise<Reply<StartReply>> {
    const run = this.current();
    if (!run) return notFound();
    const task = this.tasks.get(ref.task);
    if (task && message !== null && task.claimMessage === message && isCurrentClaim(run, task, ref)) {
      this.write(() => this.machine.loseClaim(run, task, "its dispatch was delivered again: the start was never acknowledged", clock.now()));
      await this.afterWrite();
      return ok({ kind: "stale", reason: "restarted: the claim this message started was lost", release: true });
    }
    return ok(this.begin(run, task, ref, message));
  }

  /**
   * Its task queue hands over a dispatch it has just admitted: the run starts it and runs it on its
   * worker itself, with no dispatch queue in between (one hop and two calls fewer per task). The
   * reply says only whether it started: a claim that did is this object's to run, heartbeat and
   * record. `busy`: this object already runs MAX_OWN_DISPATCHES claims; the queue sends this one
   * through the dispatch queue instead. Should the reply be lost, the queue sends the dispatch
   * through the dispatch queue as well, and the run refuses it there as a duplicate.
   */
  async dispatch(m: DispatchMessage): Promise<Reply<{ kind: "started" } | { kind: "stale"; reason: string; release: boolean } | { kind: "busy" }>> {
    const run = this.current();
    if (!run) return notFound();
    if (this.ownClaims >= MAX_OWN_DISPATCHES) return ok({ kind: "busy" });
    const ref: DispatchRef = { task: m.task, attempt: m.attempt, invocation: m.invocation };
    const start = this.begin(run, this.tasks.get(ref.task), ref, null);
    if (start.kind === "stale") return ok(start);
    this.ownClaims++;
    this.ctx.waitUntil(runClaim(this.env, m, start.assignment, () => this, this.ctx).finally(() => this.ownClaims--));
    return ok({ kind: "started" });
  }

  /**
   * A task its queue admitted in its answer to this run's enqueue: the run takes it over as it would a
   * hand-over. One it cannot take goes through the dispatch queue, as the task queue would send it;
   * a stale one gives its slot back.
   */
  private async startAdmitted(m: DispatchMessage): Promise<void> {
    const queue = this.env.TASK_QUEUES.getByName(taskQueueName(m.tenant, m.worker, m.pool, m.shard ?? 0));
    try {
      const reply = await this.dispatch(m);
      const taken = reply.ok ? reply.value : { kind: "stale" as const, release: true };
      if (taken.kind === "stale" && taken.release) this.ctx.waitUntil(queue.release(m.key).catch(() => undefined));
      if (taken.kind !== "busy") return;
    } catch (err) {
      console.error(`run: could not take over ${m.key}, sending it through the dispatch queue`, err);
    }
    // Should this send fail too, the task queue sends the dispatch again when its lease expires.
    await dispatchQueueOf(this.env, m.pool).send(m, { contentType: "json" }).catch((err: unknown) => console.error(`run: could not send ${m.key} through the dispatch queue`, err));
  }

  /** Starts the claim if it is the task's queued one; otherwise says why not. */
  private begin(run: RunRecord, task: TaskRecord | null, ref: DispatchRef, message: string | null): StartReply {
    const stale = staleness(run, task, ref);
    if (stale) return { kind: "stale", ...stale };
    const now = clock.now();
    this.write(() => this.machine.start(run, ref, now, message));
    // Answer first, then send what the start owes. A report to the run index alone waits a little:
    // a task that ends by then sends it with its outcome, where its end replaces its start (one
    // call instead of two). Anything else (a rate limit told of the start) goes at once. The rows
    // are durable: should this object go away first, they are sent when it comes back.
    this.wakeWaiters();
    const owed = this.outbox.addedKinds();
    if (owed.size > 0) {
      if ([...owed].every((kind) => kind === "index")) this.reportLater();
      else this.ctx.waitUntil(Promise.resolve().then(() => this.afterWrite()));
    }
    return { kind: "started", assignment: this.assignment(this.runs.get()!, this.tasks.get(ref.task)!, now) };
  }

  /**
   * Its task queue sent this dispatch `sends` times and still holds its slot. `running`: the claim
   * runs (keep the slot). Otherwise the slot is to be freed, and a task still queued with this claim
   * fails: its start threw every time, or every message was lost.
   */
  async dispatchNeverStarted(ref: DispatchRef, sends: number): Promise<"running" | "failed" | "gone"> {
    const run = this.current();
    const task = run ? this.tasks.get(ref.task) : null;
    if (!run || !task) return "gone";
    if (isCurrentClaim(run, task, ref)) return "running";
    if (isTerminal(run.status) || task.status !== "QUEUED" || task.attempt !== ref.attempt || task.invocation !== ref.invocation) return "gone";
    this.write(() => this.machine.neverStarted(run, task, sends, clock.now()));
    await this.afterWrite();
    return "failed";
  }

  /**
   * The consumer running a claim is still waiting for it (see `liveness.ts`). Kept in memory: a
   * heartbeat writes nothing.
   */
  async heartbeat(ref: DispatchRef): Promise<void> {
    const task = this.hasSchema ? this.tasks.get(ref.task) : null;
    // Only the running claim: a late beat of one that ended (at a wait, too) must not be kept.
    if (task && isCurrent(task, ref)) this.liveness.heard(watchKey(ref), clock.now());
  }

  /** The worker answered. Recorded once, and only for the attempt that is still running. */
  async completeTask(ref: DispatchRef, reported: TaskOutcome): Promise<Reply<{ accepted: boolean }>> {
    const run = this.current();
    if (!run) return notFound();
    const outcome = boundedOutcome(ref.task, reported, this.limits);
    const task = this.tasks.get(ref.task);
    if (!task) return ok({ accepted: false });
    const current = isCurrent(task, ref);
    this.write(() => {
      // Logs of a late attempt are still worth keeping: they say what the attempt did.
      this.tasks.appendLogs(ref.task, ref.attempt, ref.invocation, outcome.logs);
      if (current && !isTerminal(run.status)) this.machine.complete(run, task, outcome, clock.now());
      else if (task.attempt === ref.attempt) this.machine.lateAnswer(run, task, clock.now());
    });
    await this.afterWrite();
    return ok({ accepted: current && !isTerminal(run.status) });
  }

  /**
   * Whether a task's attempt (and invocation) is the one running now: a child trigger carries its
   * parent's claim, and a stale copy of the parent (cancelled, timed out, superseded) spawns nothing.
   */
  async checkClaim(ref: DispatchRef): Promise<Reply<null>> {
    const run = this.current();
    if (!run) return notFound();
    const task = this.tasks.get(ref.task);
    if (isTerminal(run.status) || !task || !isCurrent(task, ref)) {
      const why = isTerminal(run.status) ? `the run is ${run.status}` : task ? `the task is ${task.status}, attempt ${task.attempt} invocation ${task.invocation}` : "no such task";
      return fail(new SpindleError("task.superseded", `attempt ${ref.attempt} invocation ${ref.invocation} of task '${ref.task}' is no longer current (${why}): it may not spawn children`));
    }
    return ok(null);
  }

  /** A durable task records a call in its event log. */
  async checkpoint(req: CheckpointRequest): Promise<Reply<CheckpointReply>> {
    const run = this.current();
    if (!run) return notFound();
    if (isTerminal(run.status)) return fail(new SpindleError("task.superseded", `run is ${run.status}`));
    try {
      let reply: CheckpointReply = { status: "pending" };
      this.write(() => (reply = this.machine.checkpoint(run, req, clock.now())));
      await this.afterWrite();
      return ok(reply);
    } catch (err) {
      return { ok: false, error: toErrorData(err) };
    }
  }

  /** The event bus (or a retry of its delivery) says a waiting condition was met. */
  async conditionMet(met: ConditionMet): Promise<void> {
    const run = this.current();
    if (!run) return;
    this.write(() => this.machine.conditionMet(run, met, clock.now()));
    await this.afterWrite();
  }

  /** The event bus gave up delivering a met condition: the task that waited on it fails. */
  async conditionLost(lost: ConditionLost): Promise<void> {
    const run = this.current();
    if (!run) return;
    this.write(() => this.machine.conditionLost(run, lost, runObjectName(run.tenant, run.runId), clock.now()));
    await this.afterWrite();
  }

  async childEnded(report: ChildEnded): Promise<void> {
    const run = this.current();
    if (!run) return;
    this.write(() => this.machine.childEnded(run, report, clock.now()));
    await this.afterWrite();
  }

  /** A child's report could not be delivered here: the task that waited on it fails. */
  async childLost(lost: ChildLost): Promise<void> {
    const run = this.current();
    if (!run) return;
    this.write(() => this.machine.childLost(run, lost, clock.now()));
    await this.afterWrite();
  }

  /** Child runs report themselves here so the run shows them and a cancel reaches them. */
  async linkChildren(children: OutboxPayloads["link_child"][]): Promise<void> {
    const run = this.current();
    if (!run) return;
    const now = clock.now();
    this.write(() => {
      for (const c of children) {
        this.runs.addChild(c.runId, c.task, c.position);
        if (run.status === "CANCELLED") this.outbox.add("cancel_run", runObjectName(run.tenant, c.runId), {}, now);
      }
    });
    await this.afterWrite();
  }

  /** `error`: why, when a concurrency strategy cancels it (the run's error says which key and strategy). */
  async cancel(error?: ErrorData): Promise<Reply<RunView>> {
    const run = this.current();
    if (!run) return notFound();
    if (!isTerminal(run.status)) {
      this.write(() => this.machine.cancel(run, clock.now(), error));
      await this.afterWrite();
    }
    return ok(this.view(this.runs.get()!));
  }

  /** Re-runs the failed and cancelled tasks of a finished run, and everything downstream of them. */
  async replay(): Promise<Reply<RunView>> {
    const run = this.current();
    if (!run) return notFound();
    if (!isTerminal(run.status)) return fail(new SpindleError("run.conflict", `run is ${run.status}; only a finished run can be replayed`));
    try {
      this.write(() => this.machine.replay(run, clock.now()));
    } catch (err) {
      if (err instanceof SpindleError) return fail(err);
      throw err;
    }
    await this.afterWrite();
    return ok(this.view(this.runs.get()!));
  }

  /**
   * A task puts chunks on the run's stream: `first` is the place of `chunks[0]` among the chunks its
   * attempt has put. Only the running claim may; a chunk already recorded is not recorded again.
   */
  async putStream(ref: DispatchRef, first: number, chunks: string[]): Promise<Reply<{ offset: number }>> {
    const run = this.current();
    if (!run) return notFound();
    const task = this.tasks.get(ref.task);
    if (isTerminal(run.status) || !task || !isCurrent(task, ref)) {
      return fail(new SpindleError("task.superseded", `attempt ${ref.attempt} invocation ${ref.invocation} of task '${ref.task}' is no longer running: it may not put to the stream`));
    }
    if (this.stream.length() + chunks.length > MAX_STREAM_CHUNKS) {
      return fail(new SpindleError("stream.full", `the run's stream holds at most ${MAX_STREAM_CHUNKS} chunks`));
    }
    this.write(() => this.stream.append(ref.task, ref.attempt, first, chunks, clock.now()));
    return ok({ offset: this.stream.length() });
  }

  /** Log lines of a dispatch, sent while it runs (its outcome brings them again; each is kept once). */
  async appendLogs(ref: DispatchRef, first: number, lines: LogLine[]): Promise<void> {
    if (!this.current()) return;
    this.write(() => this.tasks.appendLogs(ref.task, ref.attempt, ref.invocation, lines, first));
  }

  /** The stream's chunks from `offset` on, at most `limit` (the dashboard's run page). */
  async readStream(offset: number, limit: number): Promise<Reply<{ chunks: StreamChunk[]; length: number }>> {
    if (!this.current()) return notFound();
    return ok({ chunks: this.stream.from(offset, limit), length: this.stream.length() });
  }

  /**
   * `/live`: a WebSocket that hears, once per change, that the run changed (hibernatable: an idle
   * watcher keeps nothing in memory). `/stream?from=N`: the stream as Server-Sent Events from offset
   * N, each chunk with its offset as its id, then `end` once the run has ended. The engine's routes
   * reach this object by a tenant-scoped name only.
   */
  override async fetch(request: Request): Promise<Response> {
    const run = this.current();
    if (!run) return new Response("run not found", { status: 404 });
    const url = new URL(request.url);
    if (url.pathname === "/live" && isUpgrade(request)) return this.live.accept(this.liveNotice("hello"));
    if (url.pathname === "/stream") return this.streamResponse(Number(url.searchParams.get("from") ?? "0"));
    return new Response("no such path", { status: 404 });
  }

  override async webSocketMessage(): Promise<void> {
    // Watchers only listen; their pings are answered by the runtime's auto-response.
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    LiveSockets.closed(ws, code, reason);
  }

  async get(): Promise<Reply<RunView>> {
    const run = this.current();
    return run ? ok(await this.withQueueReasons(run, this.view(run, await this.waiterErrors(run)))) : notFound();
  }

  /** Whether these holders of concurrency keys (the run, or one of its attempts) still hold them. */
  async flowHeld(holders: string[]): Promise<boolean[]> {
    const run = this.current();
    return run ? this.machine.flowHeld(run, holders) : holders.map(() => false);
  }

  /**
   * Why each queued task waits, asked of its task queue when the run does not know: a concurrency
   * key, a rate limit, or no free slot. A queue that cannot answer leaves the reason out.
   */
  private async withQueueReasons(run: RunRecord, view: RunView): Promise<RunView> {
    const asks = view.tasks
      .map((t) => ({ view: t, record: this.tasks.get(t.name)! }))
      .filter(({ view }) => view.status === "QUEUED" && view.queuedReason === null);
    const byQueue = new Map<string, typeof asks>();
    for (const a of asks) {
      const queue = taskQueueName(run.tenant, run.worker, poolOf(this.machine.taskDef(run, a.view.name)), queueShardOf(run.runId, run.queueShards));
      byQueue.set(queue, [...(byQueue.get(queue) ?? []), a]);
    }
    await Promise.all(
      [...byQueue].map(async ([queue, list]) => {
        try {
          const reasons = await this.env.TASK_QUEUES.getByName(queue).whyQueued(list.map((a) => dispatchKey(run.runId, a.record.name, a.record.attempt, a.record.invocation)));
          list.forEach((a, i) => (a.view.queuedReason = reasons[i] ?? null));
        } catch (err) {
          console.error(`could not ask ${queue} why tasks wait`, err);
        }
      }),
    );
    return view;
  }

  /** The run once it has ended, or as it stands after `waitMs`. */
  async waitForEnd(waitMs: number): Promise<Reply<RunView>> {
    const run = this.current();
    if (!run) return notFound();
    if (!isTerminal(run.status) && waitMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, waitMs);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.endWaiters.add(done);
      });
    }
    const ended = this.runs.get()!;
    return ok(await this.withQueueReasons(ended, this.view(ended, await this.waiterErrors(ended))));
  }

  /**
   * The event bus asks whether these conditions still wait (their waiters outlive a lost
   * unsubscribe otherwise): armed, this arming, undecided and unmet, in a run that has not ended.
   */
  async armedConditions(refs: ConditionRef[]): Promise<boolean[]> {
    const run = this.current();
    if (!run || isTerminal(run.status)) return refs.map(() => false);
    return refs.map((r) => {
      const c = this.log.condition(r.task, r.seq, r.list, r.group, r.leaf);
      return c !== null && c.arming === r.arming && !c.decided && c.satisfiedAt === null;
    });
  }

  /** Resolves when the attempt stops running (cancelled, timed out, ended) or after WATCH_MAX_MS. */
  async watchTask(ref: DispatchRef): Promise<WatchResult> {
    const task = this.hasSchema ? this.tasks.get(ref.task) : null;
    if (!task || task.attempt !== ref.attempt || task.invocation !== ref.invocation) return { reason: "superseded" };
    if (task.status !== "RUNNING" || task.evicted) return { reason: task.status === "CANCELLED" ? "cancelled" : "ended" };
    const key = watchKey(ref);
    return new Promise<WatchResult>((resolve) => {
      const set = this.watchers.get(key) ?? new Set();
      this.watchers.set(key, set);
      const timer = setTimeout(() => finish({ reason: "pending" }), WATCH_MAX_MS);
      const finish = (result: WatchResult) => {
        clearTimeout(timer);
        set.delete(finish);
        resolve(result);
      };
      set.add(finish);
    });
  }

  override async alarm(): Promise<void> {
    const now = clock.now();
    if (!this.current()) return;
    this.outbox.wake();
    let horizon = now;
    this.write(() => {
      horizon = this.timers.alarmFired(now);
      for (const timer of this.timers.due(horizon)) {
        this.timers.clear(timer.kind, timer.task, timer.attempt, timer.ref);
        this.machine.fire(this.runs.get()!, timer, now);
      }
    });
    await this.afterWrite(horizon, true);
  }

  // -------------------------------------------------------------------------------------------

  /** The run this object holds, or null (and no schema is created to say so). */
  private current(): RunRecord | null {
    return this.hasSchema ? this.runs.get() : null;
  }

  /**
   * One write: the transition, the deletion of what the outbox has sent, and where the alarm must
   * point, in one transaction; the alarm itself is set in the same turn, so it commits with it.
   * What the transition decided in memory (watch results to deliver, the run's end, the outbox's
   * and liveness's bookkeeping) follows the transaction: a write that throws leaves none of it.
   */
  private write(fn: () => void): void {
    let alarm: number | null | undefined;
    const watches = this.pendingWatch.length;
    const ended = this.runEnded;
    try {
      this.ctx.storage.transactionSync(() => {
        this.outbox.purge();
        fn();
        const now = clock.now();
        alarm = this.timers.plan(this.outbox.alarmAt(now), now);
      });
    } catch (err) {
      this.pendingWatch.length = watches;
      this.runEnded = ended;
      this.outbox.rolledBack();
      this.timers.rolledBack();
      this.liveness.rolledBack();
      throw err;
    }
    this.outbox.committed();
    this.liveness.committed();
    this.live.changed(() => this.liveNotice("changed"));
    for (const wake of [...this.streamWaiters]) wake();
    if (alarm === undefined) return;
    const applying = alarm === null ? this.ctx.storage.deleteAlarm() : this.ctx.storage.setAlarm(alarm);
    applying.catch((err: unknown) => console.error("could not set the run's alarm", err));
  }

  /**
   * After a committed write: wake waiters, then send what the outbox holds (due by `horizon`). A run
   * that has ended will not write again, so it deletes what it sent now, in one commit, instead of
   * leaving it for the outbox's grace alarm.
   */
  private async afterWrite(horizon = clock.now(), fromAlarm = false): Promise<void> {
    this.wakeWaiters();
    await this.flushOutbox(horizon, null, fromAlarm);
    if (this.outbox.hasSent() && this.outbox.isSettled() && isTerminal(this.runs.status() ?? "QUEUED")) this.write(() => {});
  }

  /** Sends what the outbox holds once INDEX_REPORT_DELAY_MS has passed (see there). */
  private reportLater(): void {
    this.ctx.waitUntil(scheduler.wait(INDEX_REPORT_DELAY_MS).then(() => this.afterWrite()));
  }

  /** Gives watchers and end waiters what a committed write decided for them. */
  private wakeWaiters(): void {
    for (const { key, result } of this.pendingWatch.splice(0)) {
      for (const finish of [...(this.watchers.get(key) ?? [])]) finish(result);
      this.watchers.delete(key);
    }
    if (this.runEnded) {
      this.runEnded = false;
      for (const done of [...this.endWaiters]) done();
      this.endWaiters.clear();
    }
  }

  /**
   * Sends what the outbox holds, grouped by kind and target. Unsubscriptions go last, so one can
   * never overtake the subscription it cancels.
   */
  private async flushOutbox(horizon: number, hold: OutboxKind | null = null, fromAlarm = false): Promise<void> {
    const messages = this.outbox.take(horizon, hold);
    if (messages.length === 0) return;
    const groups = new Map<string, OutboxMessage[]>();
    for (const m of messages) {
      const key = `${m.kind}\u0000${m.target}`;
      groups.set(key, [...(groups.get(key) ?? []), m]);
    }
    const all = [...groups.values()];
    // Every group taken is sent (and so settled) even if another's send throws (from the alarm: see
    // `send`); the first error goes on once all have been tried.
    const errors: unknown[] = [];
    for (const batch of [all.filter((g) => g[0]!.kind !== "unsubscribe"), all.filter((g) => g[0]!.kind === "unsubscribe")]) {
      for (const sent of await Promise.allSettled(batch.map((group) => this.send(group, fromAlarm)))) {
        if (sent.status === "rejected") errors.push(sent.reason);
      }
    }
    if (errors.length > 0) throw errors[0];
  }

  /** `fromAlarm`: the alarm is sending (see the failure path below). */
  private async send(group: OutboxMessage[], fromAlarm: boolean): Promise<void> {
    const first = group[0]!;
    try {
      const result = await deliver(this.env, first.kind, first.target, group);
      for (const m of group) this.outbox.done(m.id);
      if (result.kind === "enqueue") for (const m of result.reply.admitted ?? []) await this.startAdmitted(m);
      if (result.kind === "enqueue" && result.reply.blockedReason) {
        const reason = result.reply.blockedReason;
        this.write(() => {
          for (const item of result.items) this.tasks.setQueuedReason(item.task, item.attempt, reason);
        });
      }
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      console.error(`run outbox: ${first.kind} to ${first.target} failed (try ${first.tries + 1}${NEVER_GIVEN_UP.has(first.kind) ? "" : ` of ${OUTBOX_MAX_TRIES}`}): ${reason}`);
      // None of the group is on its way any more: settled before the write that records the failure
      // (whose alarm plan must see them), so that they are taken again even if that write throws.
      this.outbox.settle(group);
      let dead = false;
      try {
        this.write(() => {
          const now = clock.now();
          for (const m of group) {
            const letter = this.outbox.failed(m, reason, now);
            if (letter) {
              dead = true;
              this.machine.deadLettered(this.runs.get()!, letter, now);
            }
          }
        });
      } catch (writeErr) {
        // Recording the failure threw and rolled back: the rows are as they were, due again. From
        // the alarm, the error goes on, so that the runtime runs the alarm again later, backing off
        // (the alarm covers these rows; answering it would leave it armed at their passed time, to
        // fire at once, again and again). From any other call, the caller's own change has
        // committed and its answer must not fail for this: the alarm tries them again.
        dead = false;
        if (fromAlarm) throw writeErr;
        console.error(`run outbox: could not record the failed ${first.kind} to ${first.target}; its alarm tries it again`, writeErr);
      }
      // What failed because of it (a task, the run, a notice to the parent) goes out now.
      if (dead) await this.afterWrite(clock.now(), fromAlarm);
    }
  }

  private liveNotice(type: "hello" | "changed") {
    const run = this.runs.get()!;
    return { type, runId: run.runId, status: run.status, streamLength: this.stream.length() };
  }

  private streamResponse(from: number): Response {
    return streamResponse({
      from,
      read: (offset) => this.stream.from(offset, STREAM_PAGE),
      ended: () => {
        const status = this.runs.status()!;
        return isTerminal(status) ? status : null;
      },
      nextWrite: () =>
        new Promise<void>((resolve) => {
          const wake = () => {
            this.streamWaiters.delete(wake);
            resolve();
          };
          this.streamWaiters.add(wake);
        }),
    });
  }

  private assignment(run: RunRecord, task: TaskRecord, now: number): Assignment {
    const def = this.machine.taskDef(run, task.name);
    const all = this.tasks.all();
    const parentOutputs: Record<string, unknown> = {};
    const skippedParents: string[] = [];
    // Role tasks see every task's output; DAG tasks see their parents'.
    const visible = def.role ? all.filter((t) => !this.machine.taskDef(run, t.name).role).map((t) => t.name) : def.parents;
    for (const name of visible) {
      const t = all.find((x) => x.name === name);
      if (t?.status === "COMPLETED") parentOutputs[name] = t.output;
      if (t?.status === "SKIPPED") skippedParents.push(name);
    }
    const errors: Record<string, string> = {};
    if (def.role === "on_failure") for (const t of all) if (t.status === "FAILED" && t.error) errors[t.name] = t.error.message;
    const assignment: Assignment = {
      runId: run.runId,
      workflowName: run.workflow,
      taskName: task.name,
      taskRunId: task.taskRunId,
      attempt: task.attempt,
      retryCount: task.retryCount,
      invocation: task.invocation,
      input: run.input,
      parentOutputs,
      skippedParents,
      additionalMetadata: run.metadata,
      errors,
      executionTimeoutMs: def.executionTimeoutMs,
      startedAt: now,
      firstStartedAt: task.firstStartedAt ?? now,
      maxPayloadBytes: this.limits.maxPayloadBytes,
    };
    if (run.trigger?.kind === "event" && run.trigger.filterPayload !== undefined) assignment.filterPayload = run.trigger.filterPayload;
    if (def.kind === "durable") {
      assignment.durable = { log: this.machine.checkpointRecords(task.name) };
    }
    return assignment;
  }

  private view(run: RunRecord, waiterErrors = new Map<string, WaiterError>()): RunView {
    const errorOf = (task: string, c: ConditionRecord): string | undefined => {
      if (c.spec.kind === "event") return waiterErrors.get(waiterId(run.runId, { task, seq: c.seq, list: c.list, group: c.group, leaf: c.leaf, arming: c.arming }))?.error;
      if (c.spec.kind !== "parent") return undefined;
      // A parent's output is final: evaluating again gives the error its arming saw.
      const parent = this.tasks.get(c.spec.parent);
      return parent?.status === "COMPLETED" ? evaluateFilter(c.spec.expression, { output: parent.output }).error : undefined;
    };
    const view = buildRunView(run, this.tasks, this.runs.children(), (name: string, def: TaskDefinition): Partial<TaskView> =>
      waitingView(this.tasks.get(name)!, def, this.log, this.runs, (task) => this.machine.checkpointRecords(task), errorOf, (parent) => {
        const t = this.tasks.get(parent);
        return t?.status === "COMPLETED" ? { output: t.output } : undefined;
      }),
    );
    const dead = this.outbox.deadLetters();
    if (dead.length) view.deadLetters = dead.map((d) => ({ ...d, at: iso(d.at)! }));
    return view;
  }

  /**
   * The last evaluation errors of the run's armed event conditions, from their buses (which
   * evaluate them). A bus that cannot answer leaves its conditions without one.
   */
  private async waiterErrors(run: RunRecord): Promise<Map<string, WaiterError>> {
    const byBus = new Map<string, string[]>();
    if (isTerminal(run.status)) return new Map();
    for (const task of this.tasks.all()) {
      for (const seq of this.log.armedSeqs(task.name)) {
        for (const c of this.log.conditions(task.name, seq)) {
          if (c.spec.kind !== "event" || c.decided || c.satisfiedAt !== null) continue;
          const bus = eventBusName(run.tenant, c.spec.eventKey);
          byBus.set(bus, [...(byBus.get(bus) ?? []), waiterId(run.runId, { task: task.name, seq, list: c.list, group: c.group, leaf: c.leaf, arming: c.arming })]);
        }
      }
    }
    const errors = new Map<string, WaiterError>();
    await Promise.all(
      [...byBus].slice(0, MAX_VIEW_BUSES).map(async ([bus, ids]) => {
        try {
          for (const [id, e] of Object.entries(await this.env.EVENTS.getByName(bus).waiterErrors(ids))) errors.set(id, e);
        } catch (err) {
          console.error(`could not read the expression errors of bus ${bus}`, err);
        }
      }),
    );
    return errors;
  }
}

/** The dispatch is the task's running attempt and invocation (not one it has moved past, nor evicted). */
function isCurrent(task: TaskRecord, ref: DispatchRef): boolean {
  return task.attempt === ref.attempt && task.invocation === ref.invocation && task.status === "RUNNING" && !task.evicted;
}

/** The claim `ref` is the task's running one. */
function isCurrentClaim(run: RunRecord, task: TaskRecord, ref: DispatchRef): boolean {
  return !isTerminal(run.status) && isCurrent(task, ref);
}

function staleness(run: RunRecord, task: TaskRecord | null, ref: DispatchRef): { reason: string; release: boolean } | null {
  if (!task) return { reason: `no task '${ref.task}'`, release: true };
  if (task.attempt !== ref.attempt || task.invocation !== ref.invocation) return { reason: "superseded by a newer dispatch", release: true };
  if (isTerminal(run.status)) return { reason: `run is ${run.status}`, release: true };
  if (task.status === "RUNNING" && task.evicted) return { reason: "the invocation has ended at a wait", release: true };
  if (task.status === "RUNNING") return { reason: "duplicate delivery: the attempt is already running", release: false };
  if (task.status !== "QUEUED") return { reason: `task is ${task.status}`, release: true };
  return null;
}

/** Most of an error message worth keeping: it is stored with the task and shown in every view. */
const MAX_ERROR_TEXT = 16 * 1024;

/**
 * What a worker reported, as the engine stores it: an output over the payload limit fails the task
 * without a retry (another attempt would return the same), error texts are cut to a bounded size.
 */
function boundedOutcome(task: string, outcome: TaskOutcome, limits: Limits): TaskOutcome {
  if (outcome.status === "completed") {
    const bytes = jsonBytes(outcome.output ?? null);
    if (bytes <= limits.maxPayloadBytes) return outcome;
    const message = `task '${task}' returned an output of ${bytes} bytes; the limit is ${limits.maxPayloadBytes} bytes (SPINDLE_MAX_PAYLOAD_BYTES)`;
    return { status: "failed", error: errorData("payload.too_large", "PayloadTooLargeError", message), logs: outcome.logs };
  }
  if (outcome.status === "failed") {
    const { message, stack } = outcome.error;
    const cut = (s: string) => (s.length > MAX_ERROR_TEXT ? `${s.slice(0, MAX_ERROR_TEXT)}… (${s.length - MAX_ERROR_TEXT} more characters)` : s);
    const error = { ...outcome.error, message: cut(message) };
    if (stack !== undefined) error.stack = cut(stack);
    return { ...outcome, error };
  }
  return outcome;
}
