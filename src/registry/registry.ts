import { DurableObject } from "cloudflare:workers";
import type {
  Reply,
  WorkerDescription,
  WorkerRegistration,
  WorkflowDefinition,
} from "@spindle/worker-sdk/protocol";
import { clock, iso } from "../core/clock";
import { validateWorkflow } from "../core/dag";
import { SpindleError, toErrorData } from "../core/errors";
import { sha256Hex } from "../core/ids";
import { isWorkerBindingName, shardSlots, taskQueueName, triggersName, workerBindingName, type Pool } from "../core/names";
import { tenantForTokenHash } from "../core/tenants";
import type { Env } from "../env";
import type { WorkerService } from "../scheduler/worker-service";
import { migrate, type Migration } from "../storage/migrate";
import { declaredTriggers, validateRegistration } from "./validate-registration";

/**
 * A tenant's workflow definitions and the workers that run them. Workers are found without a
 * manual step: the registry asks every `WORKER_*` service binding of the engine to describe itself
 * (when a workflow is looked up and not known, and when its knowledge is older than
 * DISCOVERY_TTL_MS) and keeps the workers whose token belongs to this tenant. A worker may also
 * push its registration through the engine's RPC entrypoint.
 */
const MIGRATIONS: readonly Migration[] = [
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
];

export const DISCOVERY_TTL_MS = 30_000;
/** A lookup of an unknown name re-discovers at most this often, so bad names cannot flood workers. */
export const MISS_REDISCOVERY_MS = 2_000;
const DESCRIBE_TIMEOUT_MS = 5_000;

export interface ResolvedWorkflow {
  definition: WorkflowDefinition;
  worker: string;
  /** How many task queues share each pool of the worker. */
  queueShards: number;
}

export interface WorkerInfo {
  name: string;
  slots: number;
  durableSlots: number;
  workflows: string[];
  registeredAt: string;
  blockedReason: string | null;
  binding: string;
}

export interface DiscoveryReport {
  at: string;
  bindings: { binding: string; worker: string | null; outcome: string }[];
}

interface WorkflowRow extends Record<string, SqlStorageValue> {
  name: string;
  worker: string;
  definition: string;
}

interface WorkerRow extends Record<string, SqlStorageValue> {
  name: string;
  registration: string;
  blocked_reason: string | null;
  registered_at: number;
}

export class Registry extends DurableObject<Env> {
  private discovering: Promise<DiscoveryReport> | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    void ctx.blockConcurrencyWhile(async () => {
      migrate(ctx.storage, MIGRATIONS);
    });
  }

  /** The definition of a workflow and the worker that runs it; discovers workers on a miss. */
  async resolve(tenant: string, name: string): Promise<ResolvedWorkflow | null> {
    const found = this.lookup(name);
    if (found && !this.discoveryIsStale()) return found;
    if (found) {
      // Known but stale: answer now, refresh in the background.
      this.ctx.waitUntil(this.discover(tenant).catch(() => undefined));
      return found;
    }
    if (this.discoveryAge() > MISS_REDISCOVERY_MS) await this.discover(tenant);
    return this.lookup(name);
  }

  /**
   * A registration pushed by a caller. If the engine is bound to a worker of that name, the
   * worker itself must say it belongs to the caller's tenant: otherwise one tenant could route its
   * runs to another tenant's code.
   */
  async register(tenant: string, registration: WorkerRegistration): Promise<Reply<{ workflows: string[] }>> {
    try {
      const name = typeof registration?.name === "string" ? registration.name : "";
      const service = this.env[workerBindingName(name) as `WORKER_${string}`] as WorkerService | undefined;
      if (service) {
        const description = await withTimeout(service.describe(), DESCRIBE_TIMEOUT_MS, `${workerBindingName(name)}.describe()`);
        if ((await tenantForTokenHash(this.env, description.tokenHash)) !== tenant) {
          throw new SpindleError("registry.forbidden", `worker '${name}' is bound to the engine but does not belong to this tenant`);
        }
      }
      return { ok: true, value: await this.apply(tenant, registration) };
    } catch (err) {
      return { ok: false, error: toErrorData(err, "registry.failed") };
    }
  }

  /** The workflows that events start (declared `onEvents`); discovers workers only if it never has. */
  async eventTriggered(tenant: string): Promise<ResolvedWorkflow[]> {
    if (this.discoveryAge() === Infinity) await this.discover(tenant);
    else if (this.discoveryIsStale()) this.ctx.waitUntil(this.discover(tenant).catch(() => undefined));
    return this.ctx.storage.sql
      .exec<WorkflowRow>("SELECT * FROM workflows WHERE json_extract(definition, '$.onEvents') IS NOT NULL")
      .toArray()
      .map((r) => this.resolved(r));
  }

  /** A workflow as its worker declares it now: rediscovers first if what is known is stale. */
  async current(tenant: string, name: string): Promise<ResolvedWorkflow | null> {
    if (this.discoveryIsStale()) await this.discover(tenant);
    return this.lookup(name);
  }

  async workflows(tenant: string): Promise<(WorkflowDefinition & { worker: string })[]> {
    if (this.discoveryIsStale()) await this.discover(tenant);
    return this.ctx.storage.sql
      .exec<WorkflowRow>("SELECT * FROM workflows ORDER BY name")
      .toArray()
      .map((r) => ({ ...(JSON.parse(r.definition) as WorkflowDefinition), worker: r.worker }));
  }

  async workers(tenant: string): Promise<WorkerInfo[]> {
    if (this.discoveryIsStale()) await this.discover(tenant);
    return this.ctx.storage.sql
      .exec<WorkerRow>("SELECT * FROM workers ORDER BY name")
      .toArray()
      .map((r) => {
        const reg = JSON.parse(r.registration) as WorkerRegistration;
        return {
          name: r.name,
          slots: reg.slots,
          durableSlots: reg.durableSlots,
          workflows: reg.workflows.map((w) => w.name),
          registeredAt: iso(r.registered_at)!,
          blockedReason: r.blocked_reason,
          binding: workerBindingName(r.name),
        };
      });
  }

  /** Asks every worker binding to describe itself. Concurrent callers share one round. */
  async discover(tenant: string): Promise<DiscoveryReport> {
    this.discovering ??= this.runDiscovery(tenant).finally(() => {
      this.discovering = null;
    });
    return this.discovering;
  }

  private async runDiscovery(tenant: string): Promise<DiscoveryReport> {
    const bindings = Object.keys(this.env).filter(isWorkerBindingName);
    const report: DiscoveryReport = { at: iso(clock.now())!, bindings: [] };
    await Promise.all(
      bindings.map(async (binding) => {
        const service = this.env[binding as `WORKER_${string}`] as WorkerService | undefined;
        let description: WorkerDescription;
        try {
          description = await withTimeout(service!.describe(), DESCRIBE_TIMEOUT_MS, `${binding}.describe()`);
        } catch (err) {
          report.bindings.push({ binding, worker: null, outcome: `describe failed: ${(err as Error).message}` });
          return;
        }
        const owner = await tenantForTokenHash(this.env, description.tokenHash);
        const worker = description.registration?.name ?? null;
        if (owner !== tenant) {
          report.bindings.push({ binding, worker, outcome: owner ? "belongs to another tenant" : "token not recognised" });
          return;
        }
        try {
          await this.apply(tenant, description.registration);
          report.bindings.push({ binding, worker, outcome: "registered" });
        } catch (err) {
          report.bindings.push({ binding, worker, outcome: `refused: ${(err as Error).message}` });
        }
      }),
    );
    this.ctx.storage.sql.exec(
      `INSERT INTO discovery (id, tenant, at, report) VALUES (1, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET at = excluded.at, report = excluded.report`,
      tenant,
      clock.now(),
      JSON.stringify(report),
    );
    return report;
  }

  private async apply(tenant: string, raw: WorkerRegistration): Promise<{ workflows: string[] }> {
    const registration = validateRegistration(raw);
    for (const wf of registration.workflows) validateWorkflow(wf);
    const now = clock.now();
    const hash = await sha256Hex(JSON.stringify(registration));
    const bindingName = workerBindingName(registration.name);
    const blockedReason =
      this.env[bindingName as `WORKER_${string}`] === undefined
        ? `worker '${registration.name}' has no service binding ${bindingName} in the engine's wrangler.toml`
        : null;
    // A workflow belongs to one worker; another worker claiming it is refused, not silently moved.
    for (const wf of registration.workflows) {
      const owner = this.ctx.storage.sql
        .exec<{ worker: string }>("SELECT worker FROM workflows WHERE name = ?", wf.name)
        .toArray()[0]?.worker;
      if (owner && owner !== registration.name) {
        throw new SpindleError(
          "registry.conflict",
          `workflow '${wf.name}' is already registered by worker '${owner}'; worker '${registration.name}' cannot claim it`,
        );
      }
    }
    // Declared crons and filters first: a workflow is never visible to a push without its filters.
    await this.env.TRIGGERS.getByName(triggersName(tenant)).syncDeclared(tenant, registration.name, await declaredTriggers(registration));
    this.ctx.storage.transactionSync(() => {
      this.ctx.storage.sql.exec(
        `INSERT INTO workers (name, registration, hash, blocked_reason, registered_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET registration = excluded.registration, hash = excluded.hash,
           blocked_reason = excluded.blocked_reason, registered_at = excluded.registered_at`,
        registration.name,
        JSON.stringify(registration),
        hash,
        blockedReason,
        now,
      );
      for (const wf of registration.workflows) {
        this.ctx.storage.sql.exec(
          `INSERT INTO workflows (name, worker, definition, updated_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET worker = excluded.worker, definition = excluded.definition,
             updated_at = excluded.updated_at`,
          wf.name,
          registration.name,
          JSON.stringify(wf),
          now,
        );
      }
    });
    const pools: [Pool, number][] = [
      ["regular", registration.slots],
      ["durable", registration.durableSlots],
    ];
    const shards = registration.queueShards ?? 1;
    await Promise.all(
      pools.flatMap(([pool, slots]) =>
        Array.from({ length: shards }, (_, shard) =>
          this.env.TASK_QUEUES.getByName(taskQueueName(tenant, registration.name, pool, shard)).configure(
            { tenant, worker: registration.name, pool, shard },
            shardSlots(slots, shards, shard),
            blockedReason,
          ),
        ),
      ),
    );
    return { workflows: registration.workflows.map((w) => w.name) };
  }

  private lookup(name: string): ResolvedWorkflow | null {
    const row = this.ctx.storage.sql.exec<WorkflowRow>("SELECT * FROM workflows WHERE name = ?", name).toArray()[0];
    return row ? this.resolved(row) : null;
  }

  private resolved(row: WorkflowRow): ResolvedWorkflow {
    const worker = this.ctx.storage.sql.exec<{ registration: string }>("SELECT registration FROM workers WHERE name = ?", row.worker).toArray()[0];
    const queueShards = worker ? ((JSON.parse(worker.registration) as WorkerRegistration).queueShards ?? 1) : 1;
    return { definition: JSON.parse(row.definition) as WorkflowDefinition, worker: row.worker, queueShards };
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
