import { DurableObject } from "cloudflare:workers";
import { clock } from "../core/clock";
import { runObjectName } from "../core/names";
import { Rounds } from "../core/rounds";
import type { Env } from "../env";
import { migrate, type Migration } from "../storage/migrate";
import type { DispatchMessage, EnqueueItem, EnqueueReply, TaskQueueIdentity } from "./messages";

/**
 * One queue of ready tasks per tenant, worker and slot pool. It admits tasks while the worker has
 * free slots: resumed work first (a durable task's next invocation, a lost dispatch sent again:
 * they have started once already), then by priority, then first come, first served; and sends
 * each admitted task to the dispatch queue. A slot is leased until the attempt's consumer (or the
 * run, when it declares the attempt lost) releases it.
 *
 * Admission writes the lease in the same commit as the enqueue (or release) that made room, and the
 * queue send leaves only once that commit is durable (the output gate). A send that fails puts the
 * tasks back. A lease still held `lease_ms` after its send is sent again, then again at growing
 * intervals (up to RESEND_MAX_MS) until released: a message lost before any consumer started it is
 * delivered within DISPATCH_RESEND_MS, and the run refuses (and keeps the slot of) a start it has
 * already seen, or frees the slot of one that is no longer current. A dispatch sent
 * MAX_DISPATCH_RESENDS times more and still leased is not sent again: its run is asked, and fails
 * the task if it never started (its start keeps throwing, or every message was lost).
 */
/** Admission order: resumed invocations (invocation > 0) first, then priority, then arrival. */
const ADMISSION_ORDER = "(invocation > 0) DESC, priority DESC, enqueued_at, seq";

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "config, ready tasks, slot leases",
    sql: [
      `CREATE TABLE config (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        tenant TEXT NOT NULL,
        worker TEXT NOT NULL,
        pool TEXT NOT NULL CHECK (pool IN ('regular','durable')),
        slots INTEGER NOT NULL DEFAULT 0,
        blocked_reason TEXT
      )`,
      `CREATE TABLE ready (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        run_id TEXT NOT NULL,
        task TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        invocation INTEGER NOT NULL,
        priority INTEGER NOT NULL,
        enqueued_at INTEGER NOT NULL,
        lease_ms INTEGER NOT NULL
      )`,
      "CREATE INDEX ready_order ON ready (priority DESC, enqueued_at, seq)",
      `CREATE TABLE leases (
        key TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        task TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        invocation INTEGER NOT NULL,
        priority INTEGER NOT NULL,
        enqueued_at INTEGER NOT NULL,
        lease_ms INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        resent INTEGER NOT NULL DEFAULT 0
      )`,
      "CREATE INDEX leases_expiry ON leases (expires_at)",
    ],
  },
  {
    version: 2,
    description: "resumed invocations are admitted ahead of new work",
    sql: ["DROP INDEX ready_order", `CREATE INDEX ready_order ON ready (${ADMISSION_ORDER})`],
  },
];

/** A lease still held this long after its last send is sent again at the latest. */
export const RESEND_MAX_MS = 5 * 60_000;
/**
 * Re-sends of one dispatch; at the expiry after the last (about 17.5 minutes after the first send)
 * its run is asked instead: a start that throws every time would otherwise be sent forever,
 * holding its slot.
 */
export const MAX_DISPATCH_RESENDS = 5;

/** Queues accept at most 100 messages per `sendBatch`. */
const SEND_BATCH_LIMIT = 100;
const SEND_RETRY_MS = 1_000;

interface ConfigRow extends Record<string, SqlStorageValue> {
  tenant: string;
  worker: string;
  pool: string;
  slots: number;
  blocked_reason: string | null;
}

interface TaskRow extends Record<string, SqlStorageValue> {
  key: string;
  run_id: string;
  task: string;
  attempt: number;
  invocation: number;
  priority: number;
  enqueued_at: number;
  lease_ms: number;
}

export interface TaskQueueStats {
  worker: string;
  pool: string;
  slots: number;
  inFlight: number;
  ready: number;
  blockedReason: string | null;
}

const COLUMNS = "key, run_id, task, attempt, invocation, priority, enqueued_at, lease_ms";
/** A task's values in COLUMNS order. */
const values = (r: TaskRow): SqlStorageValue[] => [r.key, r.run_id, r.task, r.attempt, r.invocation, r.priority, r.enqueued_at, r.lease_ms];

export class TaskQueue extends DurableObject<Env> {
  private readonly pumps = new Rounds(() => this.pumpRound());
  /** Where the runtime's alarm points (undefined until read once). */
  private alarmAt: number | null | undefined;
  private retryAt: number | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    void ctx.blockConcurrencyWhile(async () => {
      migrate(ctx.storage, MIGRATIONS);
      this.alarmAt = await ctx.storage.getAlarm();
    });
  }

  /** Sets the pool's size when a worker registers (or marks why it cannot take tasks). */
  async configure(identity: TaskQueueIdentity, slots: number, blockedReason: string | null): Promise<void> {
    this.ensureIdentity(identity);
    this.ctx.storage.sql.exec("UPDATE config SET slots = ?, blocked_reason = ? WHERE id = 1", slots, blockedReason);
    await this.pump();
  }

  async enqueue(identity: TaskQueueIdentity, items: EnqueueItem[]): Promise<EnqueueReply> {
    const config = this.ensureIdentity(identity);
    for (const item of items) {
      const row: TaskRow = {
        key: item.key,
        run_id: item.runId,
        task: item.task,
        attempt: item.attempt,
        invocation: item.invocation,
        priority: item.priority,
        enqueued_at: item.enqueuedAt,
        lease_ms: item.leaseMs,
      };
      // A duplicate enqueue (an outbox resend) hits the UNIQUE key, or finds the task leased, and changes nothing.
      this.ctx.storage.sql.exec(
        `INSERT INTO ready (${COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM leases WHERE key = ?)
         ON CONFLICT (key) DO NOTHING`,
        ...values(row),
        item.key,
      );
    }
    await this.pump();
    return { blockedReason: blockedReason(config) };
  }

  /** The attempt behind `key` no longer holds its slot. */
  async release(key: string): Promise<void> {
    const freed = this.ctx.storage.sql.exec("DELETE FROM leases WHERE key = ?", key).rowsWritten;
    if (freed > 0) await this.pump();
  }

  /**
   * Drops tasks that will not run after all (their run was cancelled, they timed out waiting, or the
   * run declared their dispatch lost), and frees the slot of any that was leased.
   */
  async remove(keys: string[]): Promise<void> {
    let freed = 0;
    for (const key of keys) {
      this.ctx.storage.sql.exec("DELETE FROM ready WHERE key = ?", key);
      freed += this.ctx.storage.sql.exec("DELETE FROM leases WHERE key = ?", key).rowsWritten;
    }
    if (freed > 0) await this.pump();
  }

  async stats(): Promise<TaskQueueStats | null> {
    const config = this.config();
    if (!config) return null;
    const count = (table: string) => this.ctx.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table}`).toArray()[0]?.n ?? 0;
    return {
      worker: config.worker,
      pool: config.pool,
      slots: config.slots,
      inFlight: count("leases"),
      ready: count("ready"),
      blockedReason: blockedReason(config),
    };
  }

  /** Lease expiries (send again, and look again later) and send retries. */
  override async alarm(): Promise<void> {
    this.alarmAt = null;
    this.retryAt = null;
    const config = this.config();
    const now = clock.now();
    const expired = this.ctx.storage.sql.exec<TaskRow & { resent: number }>("SELECT * FROM leases WHERE expires_at <= ?", now).toArray();
    for (const lease of expired) {
      const next = Math.min(RESEND_MAX_MS, lease.lease_ms * 2 ** (lease.resent + 1));
      this.ctx.storage.sql.exec("UPDATE leases SET resent = resent + 1, expires_at = ? WHERE key = ?", now + next, lease.key);
    }
    this.planAlarm();
    const resend = expired.filter((l) => l.resent < MAX_DISPATCH_RESENDS);
    if (config && resend.length > 0) await this.send(config, resend).catch(() => undefined);
    if (config) await this.giveUp(config, expired.filter((l) => l.resent >= MAX_DISPATCH_RESENDS));
    await this.pump();
  }

  /**
   * Leases sent MAX_DISPATCH_RESENDS times more: the run says whether the claim runs (a long task:
   * keep its lease) or not (freed; a task still queued with it fails). A run that cannot be asked
   * is asked again at the lease's next expiry.
   */
  private async giveUp(config: ConfigRow, leases: (TaskRow & { resent: number })[]): Promise<void> {
    await Promise.all(
      leases.map(async (l) => {
        try {
          const run = this.env.RUNS.getByName(runObjectName(config.tenant, l.run_id));
          const answer = await run.dispatchNeverStarted({ task: l.task, attempt: l.attempt, invocation: l.invocation }, l.resent + 1);
          if (answer !== "running") this.ctx.storage.sql.exec("DELETE FROM leases WHERE key = ?", l.key);
        } catch (err) {
          console.error(`task queue ${config.worker}/${config.pool}: could not ask run ${l.run_id} about its dispatch ${l.key}`, err);
        }
      }),
    );
  }

  private config(): ConfigRow | null {
    return this.ctx.storage.sql.exec<ConfigRow>("SELECT * FROM config WHERE id = 1").toArray()[0] ?? null;
  }

  private ensureIdentity(identity: TaskQueueIdentity): ConfigRow {
    const existing = this.config();
    if (existing) return existing;
    this.ctx.storage.sql.exec("INSERT INTO config (id, tenant, worker, pool) VALUES (1, ?, ?, ?)", identity.tenant, identity.worker, identity.pool);
    return this.config()!;
  }

  /**
   * Admits ready tasks into free slots and sends them. One pump runs at a time; a call that arrives
   * while one is sending asks it to go round again.
   */
  private pump(): Promise<void> {
    return this.pumps.run();
  }

  /** One admission and send; true while there may be more to admit. */
  private async pumpRound(): Promise<boolean> {
    const config = this.config();
    if (!config || blockedReason(config)) return false;
    const admitted = this.admit(config);
    if (admitted.length === 0) return false;
    try {
      await this.send(config, admitted);
    } catch (err) {
      console.error(`task queue ${config.worker}/${config.pool}: dispatch send failed, retrying`, err);
      this.putBack(admitted);
      this.retryAt = clock.now() + SEND_RETRY_MS;
      this.planAlarm();
      return false;
    }
    return true;
  }

  /** Moves the next ready tasks into free slots, in one write; plans the lease-expiry alarm. */
  private admit(config: ConfigRow): TaskRow[] {
    let rows: TaskRow[] = [];
    this.ctx.storage.transactionSync(() => {
      const leased = this.ctx.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM leases").toArray()[0]?.n ?? 0;
      const free = Math.min(config.slots - leased, SEND_BATCH_LIMIT);
      if (free <= 0) return;
      rows = this.ctx.storage.sql
        .exec<TaskRow & { seq: number }>(`SELECT seq, ${COLUMNS} FROM ready ORDER BY ${ADMISSION_ORDER} LIMIT ?`, free)
        .toArray();
      const now = clock.now();
      for (const r of rows) {
        this.ctx.storage.sql.exec("DELETE FROM ready WHERE key = ?", r.key);
        this.ctx.storage.sql.exec(
          `INSERT INTO leases (${COLUMNS}, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING`,
          ...values(r),
          now + r.lease_ms,
        );
      }
    });
    if (rows.length > 0) this.planAlarm();
    return rows;
  }

  private putBack(rows: TaskRow[]): void {
    this.ctx.storage.transactionSync(() => {
      for (const r of rows) {
        this.ctx.storage.sql.exec("DELETE FROM leases WHERE key = ?", r.key);
        this.ctx.storage.sql.exec(`INSERT INTO ready (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING`, ...values(r));
      }
    });
  }

  private async send(config: ConfigRow, rows: TaskRow[]): Promise<void> {
    const queue = config.pool === "durable" ? this.env.DISPATCH_DURABLE : this.env.DISPATCH;
    await queue.sendBatch(rows.map((r) => ({ body: toMessage(config, r), contentType: "json" as const })));
  }

  /** Points the alarm at the earliest lease expiry or send retry, without waiting for it. */
  private planAlarm(): void {
    const expiry = this.ctx.storage.sql.exec<{ next: number | null }>("SELECT MIN(expires_at) AS next FROM leases").toArray()[0]?.next ?? null;
    const next = [expiry, this.retryAt].filter((t): t is number => t !== null).sort((a, b) => a - b)[0] ?? null;
    if (next === null || (this.alarmAt !== null && this.alarmAt !== undefined && this.alarmAt <= next)) return;
    this.alarmAt = next;
    this.ctx.storage.setAlarm(next).catch((err: unknown) => console.error("could not set the task queue's alarm", err));
  }
}

function blockedReason(config: ConfigRow): string | null {
  if (config.blocked_reason) return config.blocked_reason;
  if (config.slots <= 0) return `no worker named '${config.worker}' has registered a ${config.pool} slot pool`;
  return null;
}

function toMessage(config: ConfigRow, r: TaskRow): DispatchMessage {
  return {
    tenant: config.tenant,
    worker: config.worker,
    pool: config.pool as DispatchMessage["pool"],
    key: r.key,
    runId: r.run_id,
    task: r.task,
    attempt: r.attempt,
    invocation: r.invocation,
  };
}
