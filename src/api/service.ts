import type {
  CheckpointReply,
  CheckpointRequest,
  EventPush,
  EventPushResult,
  LogLine,
  ParentLink,
  Reply,
  RunFilter,
  RunList,
  RunStatus,
  RunTrigger,
  RunView,
  TriggerRequest,
  TriggerResult,
  WatchResult,
  WorkerRegistration,
  WorkflowDefinition,
} from "@spindle/worker-sdk/protocol";
import type { ConcurrencyKeyView, RateLimitDuration, RateLimitView } from "@spindle/worker-sdk/protocol";
import { clock } from "../core/clock";
import { FLOW_SHARDS, flowLimitsName, flowShardOf } from "../core/flow";
import { notFound, SpindleError } from "../core/errors";
import { checkInput } from "../core/input-schema";
import { checkIdempotencyKey, fingerprint, idempotencyConflict, idempotencyShard, type IdempotencyClaim, type IdempotencyScope } from "../core/idempotency";
import { deterministicUlid, fnv1a, isUlid, ulid, ulidTime } from "../core/ids";
import { EVENT_INDEX_SHARDS, eventBusName, eventIndexName, idempotencyName, poolOf, registryName, runIndexName, runObjectName, triggersName, RUN_INDEX_SHARDS, taskQueueName } from "../core/names";
import { decideFilters, workflowsForEvent } from "../core/triggers";
import type { PlannedRun, RecordedEvent } from "../events/event-index";
import { TriggerService } from "./trigger-service";
import type { Env } from "../env";
import type { RegisterReply, ResolvedWorkflow, WorkerInfo } from "../registry/registry";
import { validateConditions } from "../core/conditions";
import { limitsOf, MAX_CHILDREN_PER_CALL, MAX_METADATA_BYTES, refuseOversized, sizeProblem } from "../core/limits";
import type { DispatchRef } from "../run/workflow-run";
import { MAX_STREAM_CHUNK_BYTES, type StreamChunk } from "../run/stream-store";

/** The most runs one bulk cancel or replay acts on; a larger selection is done in several calls. */
export const MAX_BULK_RUNS = 1_000;
/** How many runs a bulk action asks at once. */
const BULK_PARALLELISM = 25;

/** What a bulk cancel or replay acts on: these runs, or every run the filter matches. */
export type RunSelection = { runIds: string[] } | { filter: Omit<RunFilter, "limit" | "cursor"> };

/** How long a looked-up definition is reused before asking the registry again. */
export const DEFINITION_CACHE_MS = 5_000;
export const MAX_WAIT_MS = 60_000;
export const DEFAULT_LIST_LIMIT = 50;
export const MAX_LIST_LIMIT = 500;

const definitions = new Map<string, { resolved: ResolvedWorkflow; at: number }>();
/** Per tenant: the workflows that events start (`onEvents`), read on every push. */
const eventTriggered = new Map<string, { workflows: ResolvedWorkflow[]; at: number }>();

/** Forget cached definitions (a registration changed them). */
export function invalidateDefinitions(tenant: string): void {
  for (const key of definitions.keys()) if (key.startsWith(`${tenant}\u0000`)) definitions.delete(key);
  eventTriggered.delete(tenant);
}

/** What a trigger other than a direct call starts: its run id is chosen by the trigger, so a repeat finds the same run. */
export interface TriggeredStart {
  workflow: string;
  input: unknown;
  additionalMetadata: Record<string, string>;
  runId: string;
  trigger: RunTrigger;
  resolved?: ResolvedWorkflow;
}

/**
 * What the engine can do for a tenant. The HTTP routes and the RPC entrypoint both call this, so a
 * trigger over HTTP and one from the SDK take the same path and get the same checks.
 */
export class EngineService {
  constructor(
    private readonly env: Env,
    readonly tenant: string,
  ) {}

  /** `keyPath` names where the idempotency key came from, for errors (`header.Idempotency-Key` over HTTP). */
  async trigger(req: TriggerRequest, keyPath = "idempotencyKey"): Promise<TriggerResult> {
    const checked = await this.checkTrigger(req);
    if (req.parent) await this.checkParents([req.parent]);
    const [runId] = await this.runIds([req], [keyPath]);
    return this.createRun(req, checked, runId!);
  }

  /**
   * Triggers many runs, every one or none: every request is checked, and every idempotency key
   * reserved, before any run is created. A batch that dies half-created is finished by sending it
   * again with the same keys.
   */
  async triggerMany(reqs: TriggerRequest[]): Promise<TriggerResult[]> {
    if (reqs.length > MAX_CHILDREN_PER_CALL) {
      throw new SpindleError("payload.too_large", `runs: ${reqs.length} runs in one call; the limit is ${MAX_CHILDREN_PER_CALL}`, {
        fields: [{ path: "runs", message: `${reqs.length} runs; the limit is ${MAX_CHILDREN_PER_CALL}` }],
      });
    }
    const checked: ResolvedWorkflow[] = [];
    for (const [i, req] of reqs.entries()) checked.push(await prefixed(`runs[${i}].`, () => this.checkTrigger(req)));
    await this.checkParents(reqs.flatMap((r) => (r.parent ? [r.parent] : [])));
    const ids = await this.runIds(reqs, reqs.map((_, i) => `runs[${i}].idempotencyKey`));
    return Promise.all(reqs.map((req, i) => this.createRun(req, checked[i]!, ids[i]!)));
  }

  private async checkTrigger(req: TriggerRequest): Promise<ResolvedWorkflow> {
    const resolved = await this.resolve(req.workflow);
    this.checkSizes(req);
    checkInput(resolved.definition.inputSchema, req.input);
    return resolved;
  }

  /**
   * The id each run is created under. A child's id derives from its parent link, so spawning it
   * again (a duplicate delivery, a durable replay) finds the same run instead of making another. A
   * run triggered with an idempotency key takes the id its key holds; one without is new.
   */
  private async runIds(reqs: TriggerRequest[], keyPaths: string[]): Promise<string[]> {
    const now = clock.now();
    const ids = await Promise.all(
      reqs.map((req) =>
        req.parent ? childRunId(this.tenant, req.parent) : ulid(now),
      ),
    );
    const keyed = reqs.map((req, i) => ({
      key: req.parent ? undefined : req.idempotencyKey,
      path: keyPaths[i]!,
      request: { workflow: req.workflow, input: req.input ?? null, additionalMetadata: req.additionalMetadata ?? {}, priority: req.priority ?? null },
    }));
    return this.claimIds("run", keyed, ids);
  }

  private async createRun(req: TriggerRequest, { definition, workers, queueShards }: ResolvedWorkflow, runId: string, trigger?: RunTrigger): Promise<TriggerResult> {
    const worker = await this.pickWorker(definition, workers, queueShards);
    const reply = await this.run(runId).create({
      ...(trigger ? { trigger } : {}),
      tenant: this.tenant,
      runId,
      definition,
      worker,
      queueShards: queueShards[worker] ?? 1,
      input: req.input ?? null,
      additionalMetadata: req.additionalMetadata ?? {},
      priority: req.priority ?? definition.defaultPriority ?? 1,
      parent: req.parent ?? null,
    });
    return unwrap(reply);
  }

  /**
   * A child may only be created by an attempt (and invocation) of its parent task that is still
   * current: a stale copy of the parent (cancelled, timed out, superseded) spawns nothing. Each
   * parent run is asked once.
   */
  private async checkParents(links: ParentLink[]): Promise<void> {
    const claims = new Map<string, ParentLink>();
    for (const l of links) claims.set(`${l.runId}\u0000${l.taskName}\u0000${l.attempt}\u0000${l.invocation}`, l);
    await Promise.all(
      [...claims.values()].map(async (l) =>
        unwrap(await this.existingRun(l.runId).checkClaim({ task: l.taskName, attempt: l.attempt, invocation: l.invocation })),
      ),
    );
  }

  async getRun(runId: string): Promise<RunView> {
    return unwrap(await this.existingRun(runId).get());
  }

  async waitForRun(runId: string, waitMs: number): Promise<RunView> {
    return unwrap(await this.existingRun(runId).waitForEnd(Math.min(Math.max(waitMs, 0), MAX_WAIT_MS)));
  }

  async cancelRun(runId: string): Promise<RunView> {
    return unwrap(await this.existingRun(runId).cancel());
  }

  async replayRun(runId: string): Promise<RunView> {
    return unwrap(await this.existingRun(runId).replay());
  }

  /** Cancels the selected runs that are still going; answers the ones it cancelled. */
  async cancelRuns(selection: RunSelection): Promise<{ affected: number; runIds: string[] }> {
    const candidates = await this.select(selection, ["QUEUED", "RUNNING"]);
    const done = await this.each(candidates, async (runId) => {
      if (isEndedStatus((await this.getRun(runId)).status)) return false;
      return (await this.cancelRun(runId)).status === "CANCELLED";
    });
    return { affected: done.length, runIds: done };
  }

  /** Replays the selected runs that failed or were cancelled; answers the ones it replayed. */
  async replayRuns(selection: RunSelection): Promise<{ affected: number; runIds: string[] }> {
    const candidates = await this.select(selection, ["FAILED", "CANCELLED"]);
    const done = await this.each(candidates, async (runId) => (await this.existingRun(runId).replay()).ok);
    return { affected: done.length, runIds: done };
  }

  /** The run ids a selection names: listed ids as given (unknown ones count for nothing), or a filter's matches in `statuses`. */
  private async select(selection: RunSelection, statuses: RunStatus[]): Promise<string[]> {
    if ("runIds" in selection) {
      if (selection.runIds.length > MAX_BULK_RUNS) {
        throw new SpindleError("request.invalid", `body.runIds: at most ${MAX_BULK_RUNS} runs per call`, {
          fields: [{ path: "body.runIds", message: `at most ${MAX_BULK_RUNS} runs per call` }],
        });
      }
      selection.runIds.forEach((id, i) => {
        if (!isUlid(id)) throw new SpindleError("request.invalid", `body.runIds.${i}: not a run id`, { fields: [{ path: `body.runIds.${i}`, message: "not a run id" }] });
      });
      return [...new Set(selection.runIds)];
    }
    const wanted = selection.filter.status?.length ? selection.filter.status.filter((s) => statuses.includes(s)) : statuses;
    if (wanted.length === 0) return [];
    const ids: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.listRuns({ ...selection.filter, status: wanted, limit: MAX_LIST_LIMIT, cursor });
      ids.push(...page.runs.map((r) => r.runId));
      cursor = page.nextCursor ?? undefined;
    } while (cursor && ids.length < MAX_BULK_RUNS);
    return ids.slice(0, MAX_BULK_RUNS);
  }

  /** Runs `act` on each id, a few at a time; answers the ids it acted on. */
  private async each(ids: string[], act: (runId: string) => Promise<boolean>): Promise<string[]> {
    const done: string[] = [];
    for (let i = 0; i < ids.length; i += BULK_PARALLELISM) {
      const batch = ids.slice(i, i + BULK_PARALLELISM);
      const results = await Promise.all(batch.map((id) => act(id).catch(() => false)));
      batch.forEach((id, j) => results[j] && done.push(id));
    }
    return done;
  }

  /** A task puts chunks on its run's stream (see `WorkflowRun.putStream`). */
  async putStream(runId: string, ref: DispatchRef, first: number, chunks: string[]): Promise<{ offset: number }> {
    chunks.forEach((chunk, i) => {
      if (typeof chunk !== "string") throw new SpindleError("request.invalid", `chunks[${i}]: must be a string`, { fields: [{ path: `chunks[${i}]`, message: "must be a string" }] });
      const bytes = new TextEncoder().encode(chunk).length;
      if (bytes > MAX_STREAM_CHUNK_BYTES) {
        const message = `${bytes} bytes; the limit is ${MAX_STREAM_CHUNK_BYTES}`;
        throw new SpindleError("payload.too_large", `chunks[${i}]: ${message}`, { fields: [{ path: `chunks[${i}]`, message }] });
      }
    });
    if (!Number.isInteger(first) || first < 0) throw new SpindleError("request.invalid", "first: must be a non-negative integer");
    return unwrap(await this.existingRun(runId).putStream(ref, first, chunks));
  }

  /** Log lines of a running dispatch (see `WorkflowRun.appendLogs`). */
  async appendLogs(runId: string, ref: DispatchRef, first: number, lines: LogLine[]): Promise<void> {
    if (!Number.isInteger(first) || first < 0) throw new SpindleError("request.invalid", "first: must be a non-negative integer");
    await this.existingRun(runId).appendLogs(ref, first, lines);
  }

  /** The run's stream as Server-Sent Events from `offset` on (see `WorkflowRun.fetch`). */
  async openStream(runId: string, offset: number): Promise<Response> {
    const res = await this.existingRun(runId).fetch(`https://run/stream?from=${offset}`);
    if (res.status === 404) throw notFound("run", runId);
    return res;
  }

  /** A WebSocket that hears of each change of the run. */
  async watchRun(runId: string, request: Request): Promise<Response> {
    const res = await this.existingRun(runId).fetch("https://run/live", { headers: { upgrade: request.headers.get("upgrade") ?? "" } });
    if (res.status === 404) throw notFound("run", runId);
    return res;
  }

  /** A WebSocket that hears of each run created or changed in one shard of the index. */
  async watchRuns(shard: number, request: Request): Promise<Response> {
    return this.env.RUN_INDEX.getByName(runIndexName(this.tenant, shard)).fetch("https://index/live", { headers: { upgrade: request.headers.get("upgrade") ?? "" } });
  }

  /** How many runs match a filter, per status (across the shards). */
  async countRuns(filter: RunFilter): Promise<Partial<Record<RunStatus, number>>> {
    const shards = await Promise.all(
      Array.from({ length: RUN_INDEX_SHARDS }, (_, shard) => this.env.RUN_INDEX.getByName(runIndexName(this.tenant, shard)).counts(filter)),
    );
    const total: Partial<Record<RunStatus, number>> = {};
    for (const counts of shards) for (const [status, n] of Object.entries(counts)) total[status as RunStatus] = (total[status as RunStatus] ?? 0) + n;
    return total;
  }

  async readStream(runId: string, offset: number, limit: number): Promise<{ chunks: StreamChunk[]; length: number }> {
    return unwrap(await this.existingRun(runId).readStream(offset, limit));
  }

  async checkpoint(runId: string, req: CheckpointRequest): Promise<CheckpointReply> {
    if (req.conditions) validateConditions(req.conditions, "conditions");
    if (req.result && "value" in req.result) refuseOversized([sizeProblem("result", req.result.value, this.maxPayloadBytes)]);
    if (req.children && req.children.length > MAX_CHILDREN_PER_CALL) {
      throw new SpindleError("payload.too_large", `children: ${req.children.length} children in one call; the limit is ${MAX_CHILDREN_PER_CALL}`);
    }
    return unwrap(await this.existingRun(runId).checkpoint(req));
  }

  /**
   * Pushes an event: it wakes the waiters of its key and starts one run of every workflow whose
   * `onEvents` match it (and whose filters let it through). Returns its id and the runs it started.
   */
  async pushEvent(event: EventPush, keyPath = "idempotencyKey"): Promise<EventPushResult> {
    checkEvent(event);
    this.checkEventSizes(event);
    const [eventId] = await this.eventIds([event], [keyPath]);
    return this.deliverEvent(event, eventId!);
  }

  /** Pushes several events, every one or none: all are checked, and their keys reserved, before any is pushed. */
  async pushEvents(events: EventPush[]): Promise<EventPushResult[]> {
    events.forEach((e, i) => {
      checkEvent(e, `events[${i}].`);
      this.checkEventSizes(e, `events[${i}].`);
    });
    const ids = await this.eventIds(events, events.map((_, i) => `events[${i}].idempotencyKey`));
    return Promise.all(events.map((e, i) => this.deliverEvent(e, ids[i]!)));
  }

  /**
   * Records the event with the runs it plans (in its index shard, once per event id: a retried
   * push gets the first plan back), then wakes its waiters and creates the runs. Run ids derive from
   * the event and the workflow, so a retry creates nothing twice; a plan left half-done by a dead
   * request is finished by the index's alarm.
   */
  private async deliverEvent(event: EventPush, eventId: string): Promise<EventPushResult> {
    const recorded: RecordedEvent = {
      id: eventId,
      key: event.key,
      scope: event.scope ?? null,
      payload: event.payload ?? null,
      metadata: event.additionalMetadata ?? {},
      at: ulidTime(eventId),
    };
    const index = this.env.EVENT_INDEX.getByName(eventIndexName(this.tenant, eventIndexShard(eventId)));
    const plan = (await index.record(this.tenant, recorded, await this.planEvent(recorded))) as PlannedRun[];
    const starting = plan.filter((p): p is Extract<PlannedRun, { runId: string }> => "runId" in p);
    await Promise.all([this.publish(event, eventId), ...starting.map((p) => this.startEventRun(recorded, p))]);
    if (starting.length) await index.started(eventId, starting.map((p) => p.workflow));
    return { eventId, runs: starting.map((p) => ({ workflow: p.workflow, runId: p.runId })) };
  }

  /** Which workflows the event starts, through which filter, or why not (its payload fails the input schema). */
  private async planEvent(event: RecordedEvent): Promise<PlannedRun[]> {
    const candidates = workflowsForEvent(
      (await this.eventTriggeredWorkflows()).map((r) => ({ ...r, name: r.definition.name, onEvents: r.definition.onEvents })),
      event.key,
    );
    if (candidates.length === 0) return [];
    const filters = await this.triggersObject().filtersFor(candidates.map((c) => c.name));
    const plan: PlannedRun[] = [];
    for (const c of candidates) {
      const decision = decideFilters(filters[c.name] ?? [], event);
      if (!decision.run) continue;
      try {
        checkInput(c.definition.inputSchema, event.payload);
      } catch (err) {
        const data = (err as SpindleError).toData?.() ?? { code: "input.invalid", message: String(err) };
        plan.push({ workflow: c.name, error: { code: data.code, message: data.message, ...(data.fields ? { fields: data.fields } : {}) } });
        continue;
      }
      const runId = await deterministicUlid(event.at, `${this.tenant}/event/${event.id}/${c.name}`);
      plan.push({ workflow: c.name, runId, ...(decision.filter ? { filterId: decision.filter.id, filterPayload: decision.filter.payload } : {}) });
    }
    return plan;
  }

  /** Creates the run an event planned (idempotent: its id derives from the event). */
  async startEventRun(event: RecordedEvent, p: { workflow: string; runId: string; filterId?: string; filterPayload?: unknown }): Promise<TriggerResult> {
    return this.startTriggered({
      workflow: p.workflow,
      input: event.payload,
      additionalMetadata: { ...event.metadata, eventId: event.id, eventKey: event.key },
      runId: p.runId,
      trigger: {
        kind: "event",
        eventId: event.id,
        eventKey: event.key,
        ...(p.filterId ? { filterId: p.filterId } : {}),
        ...(p.filterPayload !== undefined ? { filterPayload: p.filterPayload } : {}),
      },
    });
  }

  /** Creates a run for an event, a cron tick or a schedule, under the id the trigger chose (idempotent). */
  async startTriggered(start: TriggeredStart): Promise<TriggerResult> {
    const resolved = start.resolved ?? (await this.resolve(start.workflow));
    return this.createRun({ workflow: start.workflow, input: start.input, additionalMetadata: start.additionalMetadata }, resolved, start.runId, start.trigger);
  }

  /** The workflow as the worker declares it now (rediscovered if the registry's knowledge is stale). */
  async currentDefinition(name: string): Promise<ResolvedWorkflow | null> {
    return this.registry().current(this.tenant, name);
  }

  private async eventTriggeredWorkflows(): Promise<ResolvedWorkflow[]> {
    const cached = eventTriggered.get(this.tenant);
    if (cached && clock.now() - cached.at < DEFINITION_CACHE_MS) return cached.workflows;
    const workflows = await this.registry().eventTriggered(this.tenant);
    eventTriggered.set(this.tenant, { workflows, at: clock.now() });
    return workflows;
  }

  /** Filters, crons, schedules, webhooks and the event log. */
  get triggers(): TriggerService {
    return new TriggerService(this.env, this.tenant, this);
  }

  triggersObject() {
    return this.env.TRIGGERS.getByName(triggersName(this.tenant));
  }

  eventIndex(shard: number) {
    return this.env.EVENT_INDEX.getByName(eventIndexName(this.tenant, shard));
  }

  private eventIds(events: EventPush[], keyPaths: string[]): Promise<string[]> {
    const now = clock.now();
    const keyed = events.map((e, i) => ({
      key: e.idempotencyKey,
      path: keyPaths[i]!,
      request: { key: e.key, payload: e.payload ?? null, additionalMetadata: e.additionalMetadata ?? {}, scope: e.scope ?? null },
    }));
    return this.claimIds("event", keyed, events.map(() => ulid(now)));
  }

  /** A retried push (same id) is the same event: the bus records it once, at the time it first lands there. */
  private async publish(event: EventPush, eventId: string): Promise<void> {
    await this.env.EVENTS.getByName(eventBusName(this.tenant, event.key)).publish(this.tenant, event.key, {
      id: eventId,
      scope: event.scope ?? null,
      payload: event.payload ?? null,
      metadata: event.additionalMetadata ?? {},
    });
  }

  /**
   * Reserves the idempotency keys of a batch for the ids proposed for them, and answers the id each
   * item must be created under: the proposed one, or the one its key already holds. Items without
   * a key keep their proposed id and cost nothing here. Every key is reserved or none is: a key
   * bound to a different request refuses the whole batch, and what other shards reserved for it is
   * released.
   */
  private async claimIds(
    scope: IdempotencyScope,
    items: { key: string | undefined; path: string; request: unknown }[],
    proposed: string[],
  ): Promise<string[]> {
    if (items.every((item) => item.key === undefined)) return proposed;
    const claims: { index: number; path: string; claim: IdempotencyClaim }[] = [];
    const seen = new Map<string, string>();
    for (const [index, item] of items.entries()) {
      if (item.key === undefined) continue;
      const key = checkIdempotencyKey(item.key, item.path);
      const earlier = seen.get(key);
      if (earlier !== undefined) {
        const message = `repeats the idempotency key of ${earlier.replace(/\.idempotencyKey$/, "")}`;
        throw new SpindleError("request.invalid", `${item.path}: ${message}`, { fields: [{ path: item.path, message }] });
      }
      seen.set(key, item.path);
      claims.push({ index, path: item.path, claim: { scope, key, fingerprint: await fingerprint(item.request), id: proposed[index]! } });
    }
    const shards = new Map<number, typeof claims>();
    for (const c of claims) {
      const shard = idempotencyShard(scope, c.claim.key);
      shards.set(shard, [...(shards.get(shard) ?? []), c]);
    }
    const replies = await Promise.all(
      [...shards].map(async ([shard, group]) => ({ shard, group, reply: await this.idempotency(shard).reserve(group.map((g) => g.claim)) })),
    );
    const refused = replies.find((r) => !r.reply.ok);
    if (refused && !refused.reply.ok) {
      await Promise.all(
        replies.map(({ shard, group, reply }) => {
          if (!reply.ok) return;
          const mine = group.filter((_, i) => !reply.ids[i]!.existing).map((g) => ({ scope, key: g.claim.key, id: g.claim.id }));
          return mine.length ? this.idempotency(shard).release(mine) : undefined;
        }),
      );
      const first = refused.group[refused.reply.conflicts[0]!]!;
      throw idempotencyConflict(first.claim.key, first.path);
    }
    const ids = [...proposed];
    for (const { group, reply } of replies) if (reply.ok) group.forEach((g, i) => (ids[g.index] = reply.ids[i]!.id));
    return ids;
  }

  async watchTask(runId: string, ref: DispatchRef): Promise<WatchResult> {
    return this.existingRun(runId).watchTask(ref);
  }

  /** Newest first, merged across the index shards; the cursor is the last run id returned. */
  async listRuns(filter: RunFilter): Promise<RunList> {
    const limit = Math.min(Math.max(filter.limit ?? DEFAULT_LIST_LIMIT, 1), MAX_LIST_LIMIT);
    const pages = await Promise.all(
      Array.from({ length: RUN_INDEX_SHARDS }, (_, shard) =>
        this.env.RUN_INDEX.getByName(runIndexName(this.tenant, shard)).list(filter, limit + 1),
      ),
    );
    const merged = pages.flat().sort((a, b) => (a.runId < b.runId ? 1 : a.runId > b.runId ? -1 : 0));
    const runs = merged.slice(0, limit);
    return { runs, nextCursor: merged.length > limit ? (runs[runs.length - 1]?.runId ?? null) : null };
  }

  /**
   * Of the workers that share a workflow, the one whose pool (for the run's first tasks) has the
   * most free slots now; a run's tasks all go to the worker it was created for.
   */
  private async pickWorker(definition: WorkflowDefinition, workers: string[], queueShards: Record<string, number>): Promise<string> {
    if (workers.length === 1) return workers[0]!;
    const pool = poolOf(definition.tasks.find((t) => t.parents.length === 0 && !t.role) ?? definition.tasks[0]!);
    const free = await Promise.all(
      workers.map(async (w) => {
        const shards = Array.from({ length: queueShards[w] ?? 1 }, (_, shard) => shard);
        const all = await Promise.all(shards.map((shard) => this.env.TASK_QUEUES.getByName(taskQueueName(this.tenant, w, pool, shard)).stats()));
        return all.reduce((sum, stats) => sum + (stats ? stats.slots - stats.inFlight - stats.ready : 0), 0);
      }),
    );
    let best = 0;
    for (let i = 1; i < workers.length; i++) if (free[i]! > free[best]!) best = i;
    return workers[best]!;
  }

  async register(registration: WorkerRegistration): Promise<RegisterReply> {
    const result = unwrap(await this.registry().register(this.tenant, registration));
    invalidateDefinitions(this.tenant);
    return result;
  }

  /** Registers (or re-syncs) a worker served over HTTPS; `engineUrl` is where it calls back. */
  async registerUrl(url: string, engineUrl: string): Promise<WorkerInfo> {
    const result = unwrap(await this.registry().registerUrl(this.tenant, url, engineUrl));
    invalidateDefinitions(this.tenant);
    return result;
  }

  async workflows(): Promise<(WorkflowDefinition & { worker: string })[]> {
    return this.registry().workflows(this.tenant);
  }

  async upsertRateLimit(key: string, limit: number, duration: RateLimitDuration): Promise<RateLimitView> {
    const shard = flowShardOf({ kind: "rate", key, holder: "", units: 1, dynamic: null });
    return this.env.FLOW.getByName(flowLimitsName(this.tenant, shard)).upsertRateLimit(this.tenant, key, limit, duration);
  }

  /** Every flow object of the tenant, merged (FLOW_SHARDS calls). */
  async rateLimits(): Promise<RateLimitView[]> {
    const all = await Promise.all(Array.from({ length: FLOW_SHARDS }, (_, shard) => this.env.FLOW.getByName(flowLimitsName(this.tenant, shard)).rateLimits()));
    return all.flat().sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async concurrency(): Promise<ConcurrencyKeyView[]> {
    const all = await Promise.all(Array.from({ length: FLOW_SHARDS }, (_, shard) => this.env.FLOW.getByName(flowLimitsName(this.tenant, shard)).concurrency()));
    return all.flat().sort((a, b) => a.workflow.localeCompare(b.workflow) || a.key.localeCompare(b.key));
  }

  async workers(): Promise<WorkerInfo[]> {
    return this.registry().workers(this.tenant);
  }

  async resolve(name: string): Promise<ResolvedWorkflow> {
    const key = `${this.tenant}\u0000${name}`;
    const cached = definitions.get(key);
    if (cached && clock.now() - cached.at < DEFINITION_CACHE_MS) return cached.resolved;
    const resolution = await this.registry().resolve(this.tenant, name);
    if ("unavailable" in resolution) throw new SpindleError("workflow.unavailable", resolution.unavailable);
    if (!("found" in resolution)) throw notFound("workflow", name);
    const resolved = resolution.found as ResolvedWorkflow;
    definitions.set(key, { resolved, at: clock.now() });
    return resolved;
  }

  private get maxPayloadBytes(): number {
    return limitsOf(this.env).maxPayloadBytes;
  }

  /** An input or metadata over its limit is refused before anything is created (413). */
  private checkSizes(req: TriggerRequest): void {
    refuseOversized([sizeProblem("input", req.input, this.maxPayloadBytes), sizeProblem("additionalMetadata", req.additionalMetadata, MAX_METADATA_BYTES)]);
  }

  private checkEventSizes(event: EventPush, prefix = ""): void {
    refuseOversized([
      sizeProblem(`${prefix}payload`, event.payload, this.maxPayloadBytes),
      sizeProblem(`${prefix}additionalMetadata`, event.additionalMetadata, MAX_METADATA_BYTES),
    ]);
  }

  private registry() {
    return this.env.REGISTRY.getByName(registryName(this.tenant));
  }

  private idempotency(shard: number) {
    return this.env.IDEMPOTENCY.getByName(idempotencyName(this.tenant, shard));
  }

  private run(runId: string) {
    return this.env.RUNS.getByName(runObjectName(this.tenant, runId));
  }

  private existingRun(runId: string) {
    // An id that cannot be a run id must not create an empty object just to say so.
    if (!isUlid(runId)) throw notFound("run", runId);
    return this.run(runId);
  }
}

/**
 * A child's id derives from its parent link, so spawning it again (a duplicate delivery, a durable
 * replay) finds the same run instead of making another. A durable parent's children derive from the
 * spawning checkpoint's identity, which every replay makes again whatever the timing.
 */
function childRunId(tenant: string, parent: ParentLink): Promise<string> {
  const at = `${tenant}/${parent.runId}/${parent.taskName}`;
  if (parent.checkpoint !== undefined) return deterministicUlid(parent.startedAt, `${at}/c${parent.checkpoint}/${parent.index}`);
  if (parent.seq !== undefined) return deterministicUlid(parent.startedAt, `${at}/d${parent.seq}/${parent.index}`);
  return deterministicUlid(parent.startedAt, `${at}/${parent.attempt}/${parent.index}`);
}

/** Events spread over the index shards by id. */
export function eventIndexShard(eventId: string): number {
  return fnv1a(eventId) % EVENT_INDEX_SHARDS;
}

function isEndedStatus(status: RunStatus): boolean {
  return status === "COMPLETED" || status === "FAILED" || status === "CANCELLED";
}

/** The HTTP route checks events with zod; the RPC path comes here too, so check again. */
function checkEvent(event: EventPush, prefix = ""): void {
  const bad = (field: string, message: string): never => {
    throw new SpindleError("request.invalid", `${prefix}${field}: ${message}`, { fields: [{ path: `${prefix}${field}`, message }] });
  };
  if (typeof event.key !== "string" || event.key.length === 0 || event.key.length > 256) bad("key", "must be a string of 1 to 256 characters");
  if (event.scope !== undefined && (typeof event.scope !== "string" || event.scope.length === 0)) bad("scope", "must be a non-empty string");
  for (const [k, v] of Object.entries(event.additionalMetadata ?? {})) if (typeof v !== "string") bad(`additionalMetadata.${k}`, "must be a string");
}

/** Runs `fn`, prefixing the field paths of a validation error with `prefix` (`runs[2].`). */
async function prefixed<T>(prefix: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof SpindleError && err.fields) {
      throw new SpindleError(err.code, `${prefix.slice(0, -1)}: ${err.message}`, {
        fields: err.fields.map((f) => ({ path: `${prefix}${f.path}`, message: f.message })),
      });
    }
    throw err;
  }
}

export function unwrap<T>(reply: Reply<T>): T {
  if (reply.ok) return reply.value;
  const err = SpindleError.fromData(reply.error);
  if (err.code === "run.not_found") throw new SpindleError("run.not_found", reply.error.message);
  throw err;
}
