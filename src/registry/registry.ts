import { DurableObject } from "cloudflare:workers";
import type { Reply, WorkerDescription, WorkerRegistration, WorkflowDefinition } from "@spindle/worker-sdk/protocol";
import { clock, iso } from "../core/clock";
import { validateWorkflow } from "../core/dag";
import { SpindleError, toErrorData } from "../core/errors";
import { isWorkerBindingName, shardSlots, taskQueueName, triggersName, workerBindingName, type Pool } from "../core/names";
import { tenantForTokenHash } from "../core/tenants";
import type { Env } from "../env";
import { describeOverHttps, WorkerCallError, type HttpsEndpoint } from "../scheduler/https-worker";
import type { WorkerService } from "../scheduler/worker-service";
import { migrate, type Migration } from "../storage/migrate";
import { RegistryStore, REGISTRY_V2_SQL, type Transport, type WorkerRow, type WorkerStatus } from "./registry-store";
import { declaredTriggers, validateRegistration } from "./validate-registration";

/**
 * The registry's schema (its tables are described in `registry-store.ts`).
 */
export const REGISTRY_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "workers, workflows, discovery state",
    sql: [
      `CREATE TABLE workers (
        name TEXT PRIMARY KEY,
        registration TEXT NOT NULL,
        hash TEXT NOT NULL,
        blocked_reason TEXT,
        registered_at INTEGER NOT NULL
      )`,
      `CREATE TABLE workflows (
        name TEXT PRIMARY KEY,
        worker TEXT NOT NULL,
        definition TEXT NOT NULL,
        updated_at INTEGER NOT NULL
      )`,
      `CREATE TABLE discovery (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        tenant TEXT NOT NULL,
        at INTEGER NOT NULL,
        report TEXT NOT NULL
      )`,
    ],
  },
  { version: 2, description: "worker transport and status, workflows shared by workers", sql: REGISTRY_V2_SQL },
];

export const DISCOVERY_TTL_MS = 30_000;
/** A lookup of an unknown name re-discovers at most this often, so bad names cannot flood workers. */
export const MISS_REDISCOVERY_MS = 2_000;
const DESCRIBE_TIMEOUT_MS = 5_000;

export interface ResolvedWorkflow {
  definition: WorkflowDefinition;
  /** The active workers that run it (more than one when they declare it equally). */
  workers: string[];
  /** How many task queues share each pool, by worker. */
  queueShards: Record<string, number>;
}

export type Resolution = { found: ResolvedWorkflow } | { unavailable: string } | { missing: true };

export interface WorkerInfo {
  name: string;
  transport: Transport;
  status: WorkerStatus;
  /** Why the worker is not active, or a note on it (a workflow refused). */
  reason: string | null;
  url: string | null;
  binding: string | null;
  slots: number;
  durableSlots: number;
  slotsInUse: { regular: number; durable: number };
  workflows: { name: string; status: "active" | "refused"; reason: string | null }[];
  registeredAt: string;
  lastSeenAt: string | null;
}

export interface RegisterReply {
  workflows: string[];
  refused: { workflow: string; reason: string }[];
}

export interface DiscoveryReport {
  at: string;
  bindings: { binding: string; worker: string | null; outcome: string }[];
}

/**
 * A tenant's workflow definitions and the workers that run them. Workers bound to the engine are
 * found without a manual step: the registry asks every `WORKER_*` service binding to describe
 * itself (when a workflow is looked up and not known, and when its knowledge is older than
 * DISCOVERY_TTL_MS), and asks again every worker registered by URL. Every worker it has tried is
 * kept with its status (`active`, `refused`, `unreachable`) and the reason, so a worker that is
 * not used says why.
 */
export class Registry extends DurableObject<Env> {
  private discovering: Promise<DiscoveryReport> | null = null;
  private readonly store: RegistryStore;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.store = new RegistryStore(ctx.storage.sql);
    void ctx.blockConcurrencyWhile(async () => {
      migrate(ctx.storage, REGISTRY_MIGRATIONS);
    });
  }

  /** The definition of a workflow and the workers that run it; discovers workers on a miss. */
  async resolve(tenant: string, name: string): Promise<Resolution> {
    const found = this.lookup(name);
    if (found && !this.discoveryIsStale()) return { found };
    if (found) {
      // Known but stale: answer now, refresh in the background.
      this.ctx.waitUntil(this.discover(tenant).catch(() => undefined));
      return { found };
    }
    if (this.discoveryAge() > MISS_REDISCOVERY_MS) await this.discover(tenant);
    const now = this.lookup(name);
    if (now) return { found: now };
    const unavailable = this.store.unavailable(name);
    return unavailable ? { unavailable } : { missing: true };
  }

  /**
   * A registration pushed by a caller. If the engine is bound to a worker of that name, the
   * worker itself must say it belongs to the caller's tenant: otherwise one tenant could route its
   * runs to another tenant's code.
   */
  async register(tenant: string, registration: WorkerRegistration): Promise<Reply<RegisterReply>> {
    try {
      const name = typeof registration?.name === "string" ? registration.name : "";
      const service = this.env[workerBindingName(name) as `WORKER_${string}`] as WorkerService | undefined;
      if (service) {
        const description = await withTimeout(service.describe(), DESCRIBE_TIMEOUT_MS, `${workerBindingName(name)}.describe()`);
        if ((await tenantForTokenHash(this.env, description.tokenHash)) !== tenant) {
          throw new SpindleError("registry.forbidden", `worker '${name}' is bound to the engine but does not belong to this tenant`);
        }
      }
      return { ok: true, value: await this.apply(tenant, registration, { transport: "binding", url: null, engineUrl: null }) };
    } catch (err) {
      return { ok: false, error: toErrorData(err, "registry.failed") };
    }
  }

  /**
   * Registers (or re-syncs) a worker served over HTTPS: asks it to describe itself with a signed
   * request and stores its URL. A worker that refuses the signature or cannot be reached is kept
   * with that status and reason.
   */
  async registerUrl(tenant: string, url: string, engineUrl: string): Promise<Reply<WorkerInfo>> {
    try {
      const name = await this.syncHttps(tenant, { url, engineUrl });
      const info = (await this.workerInfos(tenant, [name]))[0]!;
      if (info.status === "refused") throw new SpindleError("worker.refused", info.reason ?? "refused");
      if (info.status === "unreachable") throw new SpindleError("worker.unreachable", info.reason ?? "unreachable");
      return { ok: true, value: info };
    } catch (err) {
      return { ok: false, error: toErrorData(err, "registry.failed") };
    }
  }

  /** How to reach a worker registered by URL, for dispatch. */
  async endpoint(worker: string): Promise<HttpsEndpoint | null> {
    const row = this.store.worker(worker);
    return row?.transport === "https" && row.url ? { url: row.url, engineUrl: row.engine_url } : null;
  }

  /** Dispatch could not use an HTTPS worker: say so on its entry until it answers again. */
  async reportFailure(worker: string, status: "refused" | "unreachable", reason: string): Promise<void> {
    const row = this.store.worker(worker);
    if (!row || row.transport !== "https") return;
    this.store.recordFailure({ name: worker, transport: "https", url: row.url, engineUrl: row.engine_url, status, reason }, clock.now());
  }

  /** The workflows that events start (declared `onEvents`); discovers workers only if it never has. */
  async eventTriggered(tenant: string): Promise<ResolvedWorkflow[]> {
    if (this.discoveryAge() === Infinity) await this.discover(tenant);
    else if (this.discoveryIsStale()) this.ctx.waitUntil(this.discover(tenant).catch(() => undefined));
    return this.ctx.storage.sql
      .exec<{ name: string }>("SELECT name FROM workflows WHERE json_extract(definition, '$.onEvents') IS NOT NULL ORDER BY name")
      .toArray()
      .map((r) => this.lookup(r.name))
      .filter((r): r is ResolvedWorkflow => r !== null);
  }

  /** A workflow as its workers declare it now: rediscovers first if what is known is stale. */
  async current(tenant: string, name: string): Promise<ResolvedWorkflow | null> {
    if (this.discoveryIsStale()) await this.discover(tenant);
    return this.lookup(name);
  }

  async workflows(tenant: string): Promise<(WorkflowDefinition & { worker: string })[]> {
    if (this.discoveryIsStale()) await this.discover(tenant);
    return this.store.workflows();
  }

  async workers(tenant: string): Promise<WorkerInfo[]> {
    if (this.discoveryIsStale()) await this.discover(tenant);
    return this.workerInfos(tenant, this.store.workers().map((w) => w.name));
  }

  /** Asks every worker binding, and every worker registered by URL, to describe itself. Concurrent callers share one round. */
  async discover(tenant: string): Promise<DiscoveryReport> {
    this.discovering ??= this.runDiscovery(tenant).finally(() => {
      this.discovering = null;
    });
    return this.discovering;
  }

  private async runDiscovery(tenant: string): Promise<DiscoveryReport> {
    const bindings = Object.keys(this.env).filter(isWorkerBindingName);
    const report: DiscoveryReport = { at: iso(clock.now())!, bindings: [] };
    const https = this.store.httpsWorkers().map((w) => this.syncHttps(tenant, { url: w.url!, engineUrl: w.engine_url }).catch(() => undefined));
    await Promise.all([
      ...https,
      ...bindings.map(async (binding) => {
        const service = this.env[binding as `WORKER_${string}`] as WorkerService | undefined;
        const known = this.store.workers().find((w) => w.transport === "binding" && workerBindingName(w.name) === binding);
        let description: WorkerDescription;
        try {
          description = await withTimeout(service!.describe(), DESCRIBE_TIMEOUT_MS, `${binding}.describe()`);
        } catch (err) {
          const reason = `the engine's binding ${binding} did not describe the worker: ${(err as Error).message}`;
          const name = known?.name ?? binding;
          this.store.recordFailure({ name, transport: "binding", url: null, engineUrl: null, status: "unreachable", reason }, clock.now());
          report.bindings.push({ binding, worker: null, outcome: `describe failed: ${(err as Error).message}` });
          return;
        }
        const owner = await tenantForTokenHash(this.env, description.tokenHash);
        const worker = description.registration?.name ?? null;
        if (owner !== tenant) {
          // Another tenant's worker is none of this tenant's business; one whose token no tenant
          // holds is shown to every tenant, since its owner cannot be told apart.
          if (!owner && worker) {
            const reason = `its SPINDLE_API_TOKEN is not the token of any tenant (reached through the binding ${binding})`;
            this.store.recordFailure(
              { name: worker, transport: "binding", url: null, engineUrl: null, status: "refused", reason, registration: description.registration },
              clock.now(),
            );
          }
          report.bindings.push({ binding, worker, outcome: owner ? "belongs to another tenant" : "token not recognised" });
          return;
        }
        try {
          await this.apply(tenant, description.registration, { transport: "binding", url: null, engineUrl: null });
          // An entry kept under the binding's name while the worker could not say its own goes.
          if (worker !== binding) this.ctx.storage.sql.exec("DELETE FROM workers WHERE name = ? AND transport = 'binding' AND registration = 'null'", binding);
          report.bindings.push({ binding, worker, outcome: "registered" });
        } catch (err) {
          report.bindings.push({ binding, worker, outcome: `refused: ${(err as Error).message}` });
        }
      }),
    ]);
    this.ctx.storage.sql.exec(
      `INSERT INTO discovery (id, tenant, at, report) VALUES (1, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET at = excluded.at, report = excluded.report`,
      tenant,
      clock.now(),
      JSON.stringify(report),
    );
    return report;
  }

  /** Describes the worker at `url` over signed HTTPS and records what came of it; returns its name. */
  private async syncHttps(tenant: string, endpoint: HttpsEndpoint): Promise<string> {
    const known = this.store.workerByUrl(endpoint.url);
    let registration: WorkerRegistration;
    try {
      registration = await describeOverHttps(this.env, tenant, endpoint);
    } catch (err) {
      const status = err instanceof WorkerCallError ? err.kind : "unreachable";
      const name = known?.name ?? endpoint.url;
      this.store.recordFailure({ name, transport: "https", url: endpoint.url, engineUrl: endpoint.engineUrl, status, reason: (err as Error).message }, clock.now());
      return name;
    }
    const clash = this.store.worker(typeof registration?.name === "string" ? registration.name : "");
    if (clash && clash.url !== endpoint.url && (clash.transport === "binding" || clash.status === "active")) {
      throw new SpindleError("registry.conflict", `a worker named '${registration.name}' is already registered ${clash.url ? `at ${clash.url}` : "through a binding"}`);
    }
    if (known && known.name !== registration.name) this.ctx.storage.sql.exec("DELETE FROM workers WHERE name = ?", known.name);
    await this.apply(tenant, registration, { transport: "https", url: endpoint.url, engineUrl: endpoint.engineUrl });
    return registration.name;
  }

  private async apply(tenant: string, raw: WorkerRegistration, source: { transport: Transport; url: string | null; engineUrl: string | null }): Promise<RegisterReply> {
    const registration = validateRegistration(raw);
    for (const wf of registration.workflows) validateWorkflow(wf);
    const bindingName = workerBindingName(registration.name);
    const unreachable =
      source.transport === "binding" && this.env[bindingName as `WORKER_${string}`] === undefined
        ? `the engine has no service binding ${bindingName} to worker '${registration.name}' and no URL for it: add the binding to the engine's wrangler.toml, or serve the worker with spindle.serve() and register it with POST /api/v1/workers {url}`
        : null;
    // Declared crons and filters first: a workflow is never visible to a push without its filters.
    // Not those of a workflow this worker will be refused for: they are another definition's.
    const declaredNow = new Set(registration.workflows.map((wf) => wf.name));
    const dropped = this.store.claims(registration.name).filter((c) => c.status === "active" && !declaredNow.has(c.workflow)).map((c) => c.workflow);
    await this.syncDeclaredTriggers(tenant, registration);
    const result = this.ctx.storage.transactionSync(() =>
      this.store.applyRegistration(
        { name: registration.name, ...source, status: unreachable ? "unreachable" : "active", reason: unreachable, registration },
        clock.now(),
      ),
    );
    await this.configureQueues(tenant, registration, unreachable);
    // A workflow this worker dropped that others still run keeps their declared crons and
    // filters: the rows this worker held went with its sync, so the others' are synced again.
    if (dropped.length > 0) {
      for (const other of this.store.workers()) {
        if (other.name === registration.name) continue;
        if (!this.store.claims(other.name).some((c) => c.status === "active" && dropped.includes(c.workflow))) continue;
        const theirs = JSON.parse(other.registration) as WorkerRegistration | null;
        if (theirs) await this.syncDeclaredTriggers(tenant, theirs);
      }
    }
    return { workflows: result.accepted, refused: result.refused };
  }

  /** Declared crons and filters of a worker's workflows, except those it is refused for (another definition's). */
  private async syncDeclaredTriggers(tenant: string, registration: WorkerRegistration): Promise<void> {
    const taken = registration.workflows.filter((wf) => this.store.differingOwners(registration.name, wf).length === 0);
    await this.env.TRIGGERS.getByName(triggersName(tenant)).syncDeclared(tenant, registration.name, await declaredTriggers({ ...registration, workflows: taken }));
  }

  /**
   * Sets the worker's pools. Only a registration blocks them (a worker the engine has no way to
   * reach); a failed describe or dispatch does not: it may be passing (a restart, a redeploy), the
   * tasks already queued keep their place, and new triggers see the status until it answers again.
   */
  private async configureQueues(tenant: string, reg: WorkerRegistration, blockedReason: string | null): Promise<void> {
    const worker = reg.name;
    const pools: [Pool, number][] = [
      ["regular", reg.slots],
      ["durable", reg.durableSlots],
    ];
    const shards = reg.queueShards ?? 1;
    await Promise.all(
      pools.flatMap(([pool, slots]) =>
        Array.from({ length: shards }, (_, shard) =>
          this.env.TASK_QUEUES.getByName(taskQueueName(tenant, worker, pool, shard)).configure(
            { tenant, worker, pool, shard },
            shardSlots(slots, shards, shard),
            blockedReason,
          ),
        ),
      ),
    );
  }

  private async workerInfos(tenant: string, names: string[]): Promise<WorkerInfo[]> {
    const rows = names.map((n) => this.store.worker(n)).filter((r): r is WorkerRow => r !== null);
    return Promise.all(
      rows.map(async (r) => {
        const reg = JSON.parse(r.registration) as WorkerRegistration | null;
        const claims = this.store.claims(r.name);
        const shards = Array.from({ length: reg?.queueShards ?? 1 }, (_, shard) => shard);
        const inUse = async (pool: Pool) =>
          reg
            ? (await Promise.all(shards.map(async (shard) => (await this.env.TASK_QUEUES.getByName(taskQueueName(tenant, r.name, pool, shard)).stats())?.inFlight ?? 0))).reduce((a, b) => a + b, 0)
            : 0;
        const [regular, durable] = await Promise.all([inUse("regular"), inUse("durable")]);
        const workflows = reg
          ? reg.workflows.map((w) => {
              const claim = claims.find((c) => c.workflow === w.name);
              return { name: w.name, status: claim?.status ?? ("refused" as const), reason: claim ? claim.reason : (r.reason ?? null) };
            })
          : [];
        return {
          name: r.name,
          transport: r.transport,
          status: r.status,
          reason: r.reason ?? workflows.find((w) => w.reason)?.reason ?? null,
          url: r.url,
          binding: r.transport === "binding" ? workerBindingName(r.name) : null,
          slots: reg?.slots ?? 0,
          durableSlots: reg?.durableSlots ?? 0,
          slotsInUse: { regular, durable },
          workflows,
          registeredAt: iso(r.registered_at)!,
          lastSeenAt: iso(r.last_seen_at),
        };
      }),
    );
  }

  private lookup(name: string): ResolvedWorkflow | null {
    const found = this.store.workflow(name);
    if (!found || found.workers.length === 0) return null;
    const queueShards: Record<string, number> = {};
    for (const worker of found.workers) {
      const registration = JSON.parse(this.store.worker(worker)?.registration ?? "null") as WorkerRegistration | null;
      queueShards[worker] = registration?.queueShards ?? 1;
    }
    return { definition: found.definition, workers: found.workers, queueShards };
  }

  private discoveryAge(): number {
    const at = this.ctx.storage.sql.exec<{ at: number }>("SELECT at FROM discovery WHERE id = 1").toArray()[0]?.at;
    return at === undefined ? Infinity : clock.now() - at;
  }

  private discoveryIsStale(): boolean {
    return this.discoveryAge() > DISCOVERY_TTL_MS;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms}ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
