import type {
  CheckpointReply,
  CheckpointRequest,
  EventPush,
  Reply,
  RunFilter,
  RunList,
  RunView,
  TriggerRequest,
  TriggerResult,
  WatchResult,
  WorkerRegistration,
  WorkflowDefinition,
} from "@spindle/worker-sdk/protocol";
import { clock } from "../core/clock";
import { notFound, SpindleError } from "../core/errors";
import { checkInput } from "../core/input-schema";
import { deterministicUlid, isUlid, ulid } from "../core/ids";
import { eventBusName, registryName, runIndexName, runObjectName, RUN_INDEX_SHARDS } from "../core/names";
import type { Env } from "../env";
import type { ResolvedWorkflow, WorkerInfo } from "../registry/registry";
import { validateConditions } from "../core/conditions";
import { limitsOf, MAX_CHILDREN_PER_CALL, MAX_METADATA_BYTES, refuseOversized, sizeProblem } from "../core/limits";
import type { DispatchRef } from "../run/workflow-run";

/** How long a looked-up definition is reused before asking the registry again. */
export const DEFINITION_CACHE_MS = 5_000;
export const MAX_WAIT_MS = 60_000;
export const DEFAULT_LIST_LIMIT = 50;
export const MAX_LIST_LIMIT = 500;

const definitions = new Map<string, { resolved: ResolvedWorkflow; at: number }>();

/** Forget cached definitions (a registration changed them). */
export function invalidateDefinitions(tenant: string): void {
  for (const key of definitions.keys()) if (key.startsWith(`${tenant}\u0000`)) definitions.delete(key);
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

  async trigger(req: TriggerRequest): Promise<TriggerResult> {
    const { definition, worker } = await this.resolve(req.workflow);
    this.checkSizes(req);
    checkInput(definition.inputSchema, req.input);
    const now = clock.now();
    // A child's id derives from its parent link, so spawning it again (a duplicate delivery, a
    // durable replay) finds the same run instead of making another.
    const runId = req.parent
      ? await deterministicUlid(
          req.parent.startedAt,
          req.parent.seq !== undefined
            ? `${this.tenant}/${req.parent.runId}/${req.parent.taskName}/d${req.parent.seq}/${req.parent.index}`
            : `${this.tenant}/${req.parent.runId}/${req.parent.taskName}/${req.parent.attempt}/${req.parent.index}`,
        )
      : ulid(now);
    const reply = await this.run(runId).create({
      tenant: this.tenant,
      runId,
      definition,
      worker,
      input: req.input ?? null,
      additionalMetadata: req.additionalMetadata ?? {},
      priority: req.priority ?? definition.defaultPriority ?? 1,
      parent: req.parent ?? null,
    });
    return unwrap(reply);
  }

  /** Triggers many runs; every request is checked before any run is created. */
  async triggerMany(reqs: TriggerRequest[]): Promise<TriggerResult[]> {
    if (reqs.length > MAX_CHILDREN_PER_CALL) {
      throw new SpindleError("payload.too_large", `runs: ${reqs.length} runs in one call; the limit is ${MAX_CHILDREN_PER_CALL}`, {
        fields: [{ path: "runs", message: `${reqs.length} runs; the limit is ${MAX_CHILDREN_PER_CALL}` }],
      });
    }
    for (const [i, req] of reqs.entries()) {
      const { definition } = await this.resolve(req.workflow);
      try {
        this.checkSizes(req);
        checkInput(definition.inputSchema, req.input);
      } catch (err) {
        if (err instanceof SpindleError && err.fields) {
          throw new SpindleError(err.code, `runs[${i}]: ${err.message}`, {
            fields: err.fields.map((f) => ({ path: `runs[${i}].${f.path}`, message: f.message })),
          });
        }
        throw err;
      }
    }
    return Promise.all(reqs.map((r) => this.trigger(r)));
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

  async checkpoint(runId: string, req: CheckpointRequest): Promise<CheckpointReply> {
    if (req.conditions) validateConditions(req.conditions, "conditions");
    if (req.result && "value" in req.result) refuseOversized([sizeProblem("result", req.result.value, this.maxPayloadBytes)]);
    if (req.children && req.children.length > MAX_CHILDREN_PER_CALL) {
      throw new SpindleError("payload.too_large", `children: ${req.children.length} children in one call; the limit is ${MAX_CHILDREN_PER_CALL}`);
    }
    return unwrap(await this.existingRun(runId).checkpoint(req));
  }

  /** Pushes an event to the waiters of its key; returns its id. */
  async pushEvent(event: EventPush): Promise<{ eventId: string }> {
    checkEvent(event);
    this.checkEventSizes(event);
    const now = clock.now();
    const eventId = ulid(now);
    await this.env.EVENTS.getByName(eventBusName(this.tenant, event.key)).publish(this.tenant, event.key, {
      id: eventId,
      scope: event.scope ?? null,
      payload: event.payload ?? null,
      metadata: event.additionalMetadata ?? {},
      at: now,
    });
    return { eventId };
  }

  /** Pushes several events; all are checked before any is pushed. */
  async pushEvents(events: EventPush[]): Promise<{ eventId: string }[]> {
    events.forEach((e, i) => {
      checkEvent(e, `events[${i}].`);
      this.checkEventSizes(e, `events[${i}].`);
    });
    return Promise.all(events.map((e) => this.pushEvent(e)));
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

  async register(registration: WorkerRegistration): Promise<{ workflows: string[] }> {
    const result = unwrap(await this.registry().register(this.tenant, registration));
    invalidateDefinitions(this.tenant);
    return result;
  }

  async workflows(): Promise<(WorkflowDefinition & { worker: string })[]> {
    return this.registry().workflows(this.tenant);
  }

  async workers(): Promise<WorkerInfo[]> {
    return this.registry().workers(this.tenant);
  }

  async resolve(name: string): Promise<ResolvedWorkflow> {
    const key = `${this.tenant}\u0000${name}`;
    const cached = definitions.get(key);
    if (cached && clock.now() - cached.at < DEFINITION_CACHE_MS) return cached.resolved;
    const resolved = await this.registry().resolve(this.tenant, name);
    if (!resolved) throw notFound("workflow", name);
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

  private run(runId: string) {
    return this.env.RUNS.getByName(runObjectName(this.tenant, runId));
  }

  private existingRun(runId: string) {
    // An id that cannot be a run id must not create an empty object just to say so.
    if (!isUlid(runId)) throw notFound("run", runId);
    return this.run(runId);
  }
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

export function unwrap<T>(reply: Reply<T>): T {
  if (reply.ok) return reply.value;
  const err = SpindleError.fromData(reply.error);
  if (err.code === "run.not_found") throw new SpindleError("run.not_found", reply.error.message);
  throw err;
}
