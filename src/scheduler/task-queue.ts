import { DurableObject } from "cloudflare:workers";
import { clock } from "../core/clock";
import { runObjectName, taskQueueName, type Pool } from "../core/names";
import { Rounds } from "../core/rounds";
import type { Env } from "../env";
import { migrate, type Migration } from "../storage/migrate";
import { type Need } from "../core/flow";
import { dispatchQueueOf } from "./dispatch";
import { giveBack, takeFlow, type FlowItem } from "./flow-admission";
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
 *
 * Flow control: a task with concurrency keys or rate limits is admitted only when its slots and
 * everything it needs from the `FlowLimits` objects are all taken (`takeFlow`): while those are
 * asked its lease is `acquiring` (an eviction then asks again: taking is idempotent per holder),
 * and a task refused anywhere gives back what it took and waits in `ready`, blocked on what
 * refused it, until that object says it freed up (or FLOW_RECHECK_MS, or a rate limit's next
 * unit). Round-robin keys take turns (`turn`), so no key's backlog holds up another's.
 */
/** Admission order: resumed invocations (invocation > 0) first, then priority, then turns of round-robin keys, then arrival. */
const ADMISSION_ORDER = "(invocation > 0) DESC, priority DESC, turn, enqueued_at, seq";
/** A task blocked by a limit asks again this often even if no release tells it to. */
const FLOW_RECHECK_MS = 10_000;
/** An admission still `acquiring` this long after it began (the queue was evicted meanwhile) starts over. */
const ACQUIRE_TIMEOUT_MS = 15_000;

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
    sql: ["DROP INDEX ready_order", "CREATE INDEX ready_order ON ready ((invocation > 0) DESC, priority DESC, enqueued_at, seq)"],
  },
  {
    version: 3,
    description: "flow control: slot costs, needs, round-robin turns, blocked tasks, leases being acquired",
    sql: [
      "ALTER TABLE ready ADD COLUMN slot_cost INTEGER NOT NULL DEFAULT 1",
      "ALTER TABLE ready ADD COLUMN needs TEXT",
      "ALTER TABLE ready ADD COLUMN grp TEXT",
      "ALTER TABLE ready ADD COLUMN turn INTEGER NOT NULL DEFAULT 0",
      "ALTER TABLE ready ADD COLUMN blocked_on TEXT",
      "ALTER TABLE ready ADD COLUMN blocked_until INTEGER",
      "ALTER TABLE ready ADD COLUMN blocked_reason TEXT",
      "ALTER TABLE leases ADD COLUMN slot_cost INTEGER NOT NULL DEFAULT 1",
      "ALTER TABLE leases ADD COLUMN state TEXT NOT NULL DEFAULT 'sent' CHECK (state IN ('acquiring','sent'))",
      "CREATE TABLE turns (grp TEXT PRIMARY KEY, next INTEGER NOT NULL)",
      "DROP INDEX ready_order",
      `CREATE INDEX ready_order ON ready (${ADMISSION_ORDER})`,
      "CREATE INDEX ready_blocked ON ready (blocked_on)",
      "CREATE INDEX ready_turn ON ready (turn)",
    ],
  },
  {
    version: 4,
    description: "which of its pool's task queues this is",
    sql: ["ALTER TABLE config ADD COLUMN shard INTEGER NOT NULL DEFAULT 0"],
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
  shard: number;
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
  slot_cost: number;
}

interface ReadyRow extends TaskRow {
  needs: string | null;
  blocked_on: string | null;
  blocked_until: number | null;
  blocked_reason: string | null;
}

export interface TaskQueueStats {
  worker: string;
  pool: string;
  slots: number;
  inFlight: number;
  ready: number;
  blockedReason: string | null;
}

const COLUMNS = "key, run_id, task, attempt, invocation, priority, enqueued_at, lease_ms, slot_cost";
/** A task's values in COLUMNS order. */
const values = (r: TaskRow): SqlStorageValue[] => [r.key, r.run_id, r.task, r.attempt, r.invocation, r.priority, r.enqueued_at, r.lease_ms, r.slot_cost];

export class TaskQueue extends DurableObject<Env> {
  private readonly pumps = new Rounds(() => this.pumpRound());
  /** Where the runtime's alarm points (undefined until read once). */
  private alarmAt: number | null | undefined;
  private retryAt: number | null = null;
  private cachedConfig: ConfigRow | null | undefined;
  /** Runs waiting for the reply to their enqueue, and what has been admitted of theirs meanwhile. */
  private readonly callers = new Map<string, DispatchMessage[]>();

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
    this.cachedConfig = undefined;
    await this.pump();
  }

  /**
   * `caller`: the run enqueuing (it sends its own enqueues): what this call's admission admits of that
   * run comes back in the reply (`admitted`) for the run to start itself, instead of being handed to
   * it by a call of its own.
   */
  async enqueue(identity: TaskQueueIdentity, items: EnqueueItem[], caller?: string): Promise<EnqueueReply> {
    const config = this.ensureIdentity(identity);
    const admitted: DispatchMessage[] = [];
    const collecting = caller !== undefined && !this.callers.has(caller);
    if (collecting) this.callers.set(caller, admitted);
    try {
      this.insertReady(items);
      await this.pump();
    } finally {
      if (collecting) this.callers.delete(caller);
    }
    return { blockedReason: blockedReason(config), ...(admitted.length > 0 ? { admitted } : {}) };
  }

  private insertReady(items: EnqueueItem[]): void {
    this.ctx.storage.transactionSync(() => {
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
          slot_cost: item.slotCost ?? 1,
        };
        const sql = this.ctx.storage.sql;
        if (sql.exec("SELECT 1 FROM leases WHERE key = ? UNION ALL SELECT 1 FROM ready WHERE key = ?", item.key, item.key).toArray().length > 0) {
          // A duplicate enqueue (an outbox resend) finds the task ready or leased, and changes nothing.
          continue;
        }
        const group = item.flow?.group ?? null;
        const turn = this.turnOf(group);
        sql.exec(
          `INSERT INTO ready (${COLUMNS}, needs, grp, turn) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          ...values(row),
          item.flow && item.flow.needs.length > 0 ? JSON.stringify(item.flow.needs) : null,
          group,
          turn,
        );
      }
    });
  }

  /**
   * Round-robin turns: a key's n-th waiting task takes turn n (counted from the oldest turn still
   * waiting), so keys queued as AAABBBCCC are admitted ABCABCABC.
   */
  private turnOf(group: string | null): number {
    const sql = this.ctx.storage.sql;
    const floor = sql.exec<{ t: number | null }>("SELECT MIN(turn) AS t FROM ready").toArray()[0]?.t ?? 0;
    if (group === null) return floor;
    const next = sql.exec<{ next: number }>("SELECT next FROM turns WHERE grp = ?", group).toArray()[0]?.next ?? 0;
    const turn = Math.max(next, floor);
    sql.exec("INSERT INTO turns (grp, next) VALUES (?, ?) ON CONFLICT (grp) DO UPDATE SET next = excluded.next", group, turn + 1);
    return turn;
  }

  /** A `FlowLimits` object freed some of what these ids name: the tasks blocked on them try again now. */
  async flowFreed(ids: string[]): Promise<void> {
    let woken = 0;
    for (const id of ids) {
      woken += this.ctx.storage.sql.exec("UPDATE ready SET blocked_until = NULL WHERE blocked_on = ? AND blocked_until IS NOT NULL", id).rowsWritten;
    }
    if (woken > 0) await this.pump();
  }

  /** Why each of these queued tasks has not started (null: it is on its way, or not here). */
  async whyQueued(keys: string[]): Promise<(string | null)[]> {
    const config = this.config();
    const now = clock.now();
    const used = this.usedSlots();
    return keys.map((key) => {
      const r = this.ctx.storage.sql.exec<ReadyRow>("SELECT * FROM ready WHERE key = ?", key).toArray()[0];
      if (!r || !config) return null;
      if (blockedReason(config)) return blockedReason(config);
      if (r.blocked_until !== null && r.blocked_until > now && r.blocked_reason) {
        return r.blocked_on?.startsWith("rate\u0000") && r.blocked_reason.includes("exhausted")
          ? `${r.blocked_reason}, next unit in ${((r.blocked_until - now) / 1000).toFixed(1)} s`
          : r.blocked_reason;
      }
      if (r.slot_cost > config.slots) return `needs ${r.slot_cost} slots; worker '${config.worker}' has ${config.slots} ${config.pool} slots`;
      if (config.slots - used < r.slot_cost) return `no free slot on worker '${config.worker}'`;
      return null;
    });
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
      inFlight: this.usedSlots(),
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
    // An admission that was asking its flow objects when the queue went away starts over: taking is idempotent per holder.
    this.ctx.storage.transactionSync(() => {
      for (const lease of this.ctx.storage.sql.exec<{ key: string }>("SELECT key FROM leases WHERE state = 'acquiring' AND expires_at <= ?", now).toArray()) {
        this.ctx.storage.sql.exec("DELETE FROM leases WHERE key = ?", lease.key);
        this.ctx.storage.sql.exec("UPDATE ready SET blocked_until = NULL WHERE key = ?", lease.key);
      }
    });
    const expired = this.ctx.storage.sql.exec<TaskRow & { resent: number }>("SELECT * FROM leases WHERE state = 'sent' AND expires_at <= ?", now).toArray();
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

  /** The config row, read once and kept: it changes only through `configure` and `ensureIdentity`, which drop this copy. */
  private config(): ConfigRow | null {
    if (this.cachedConfig === undefined) this.cachedConfig = this.ctx.storage.sql.exec<ConfigRow>("SELECT * FROM config WHERE id = 1").toArray()[0] ?? null;
    return this.cachedConfig;
  }

  private ensureIdentity(identity: TaskQueueIdentity): ConfigRow {
    const existing = this.config();
    if (existing) return existing;
    this.ctx.storage.sql.exec(
      "INSERT INTO config (id, tenant, worker, pool, shard) VALUES (1, ?, ?, ?, ?)",
      identity.tenant,
      identity.worker,
      identity.pool,
      identity.shard ?? 0,
    );
    this.cachedConfig = undefined;
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
    const candidates = this.admit(config);
    if (candidates.length === 0) return false;
    const admitted = await this.takeFlow(config, candidates);
    if (admitted.length === 0) return true;
    const viaQueue = await this.handOver(config, admitted);
    if (viaQueue.length === 0) return true;
    try {
      await this.send(config, viaQueue);
    } catch (err) {
      console.error(`task queue ${config.worker}/${config.pool}: dispatch send failed, retrying`, err);
      this.putBack(viaQueue);
      this.retryAt = clock.now() + SEND_RETRY_MS;
      this.planAlarm();
      return false;
    }
    return true;
  }

  /**
   * Dispatching at once: each admitted task is handed straight to its run, which starts it and runs
   * it on the worker (`WorkflowRun.dispatch`). Returns the tasks to send through the dispatch queue
   * instead: those whose run could not be reached or did not answer (if it did start the task, the
   * queued copy is refused there as a duplicate) and those whose run is busy. A run that refuses a
   * stale dispatch gets its slot back here. The lease stays as it is either way: a dispatch that
   * neither starts nor is refused is sent again when it expires.
   */
  private async handOver(config: ConfigRow, rows: TaskRow[]): Promise<TaskRow[]> {
    const replies = await Promise.all(
      rows.map(async (r) => {
        const caller = this.callers.get(r.run_id);
        if (caller) {
          // Its run is waiting for this queue's answer to its enqueue: the answer carries it.
          caller.push(toMessage(config, r));
          return { kind: "started" as const };
        }
        try {
          const reply = await this.env.RUNS.getByName(runObjectName(config.tenant, r.run_id)).dispatch(toMessage(config, r));
          return reply.ok ? reply.value : { kind: "stale" as const, reason: reply.error.message, release: true };
        } catch (err) {
          console.error(`task queue ${config.worker}/${config.pool}: could not hand ${r.key} to its run, sending it through the dispatch queue`, err);
          return null;
        }
      }),
    );
    const refused = rows.filter((_, i) => {
      const reply = replies[i];
      return reply?.kind === "stale" && reply.release;
    });
    if (refused.length > 0) {
      this.ctx.storage.transactionSync(() => {
        for (const r of refused) this.ctx.storage.sql.exec("DELETE FROM leases WHERE key = ?", r.key);
      });
    }
    return rows.filter((_, i) => replies[i] === null || replies[i]!.kind === "busy");
  }

  private usedSlots(): number {
    return this.ctx.storage.sql.exec<{ n: number | null }>("SELECT SUM(slot_cost) AS n FROM leases").toArray()[0]?.n ?? 0;
  }

  /**
   * Leases the next ready tasks that fit in the free slots, in order, in one write: a task with no
   * limits is leased outright (its ready row goes); one with limits is leased `acquiring` and keeps
   * its ready row, marked taken, until `takeFlow` decides. A task that needs more slots than the
   * next free ones waits, and nothing behind it passes (it would starve); one that needs more than
   * the pool has is passed over (it waits, saying so).
   */
  private admit(config: ConfigRow): ReadyRow[] {
    let rows: ReadyRow[] = [];
    this.ctx.storage.transactionSync(() => {
      let free = config.slots - this.usedSlots();
      if (free <= 0) return;
      const now = clock.now();
      const candidates = this.ctx.storage.sql
        .exec<ReadyRow>(
          `SELECT ${COLUMNS}, needs, blocked_on, blocked_until, blocked_reason FROM ready
           WHERE (blocked_until IS NULL OR blocked_until <= ?) AND slot_cost <= ? ORDER BY ${ADMISSION_ORDER} LIMIT ?`,
          now,
          config.slots,
          // Each task takes at least one slot: no more than `free` of them can be admitted.
          Math.min(free, SEND_BATCH_LIMIT),
        )
        .toArray();
      for (const r of candidates) {
        if (r.slot_cost > free) break;
        free -= r.slot_cost;
        rows.push(r);
        if (r.needs) {
          this.ctx.storage.sql.exec("UPDATE ready SET blocked_until = ? WHERE key = ?", now + ACQUIRE_TIMEOUT_MS, r.key);
          this.ctx.storage.sql.exec(
            `INSERT INTO leases (${COLUMNS}, expires_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'acquiring') ON CONFLICT (key) DO NOTHING`,
            ...values(r),
            now + ACQUIRE_TIMEOUT_MS,
          );
        } else {
          this.ctx.storage.sql.exec("DELETE FROM ready WHERE key = ?", r.key);
          this.ctx.storage.sql.exec(
            `INSERT INTO leases (${COLUMNS}, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING`,
            ...values(r),
            now + r.lease_ms,
          );
        }
      }
    });
    if (rows.length > 0) this.planAlarm();
    return rows;
  }

  /**
   * Takes the flow needs of the leased tasks that have some; returns the tasks to send: those with
   * none, and those granted everything. A refused task loses its lease and waits, blocked on what
   * refused it; a task removed meanwhile (its run cancelled it) gives back what it was granted.
   */
  private async takeFlow(config: ConfigRow, rows: ReadyRow[]): Promise<TaskRow[]> {
    const flowRows = rows.filter((r) => r.needs);
    if (flowRows.length === 0) return rows;
    const items: FlowItem[] = flowRows.map((r) => ({ key: r.key, runId: r.run_id, queuedAt: r.enqueued_at, needs: JSON.parse(r.needs!) as Need[] }));
    const queue = taskQueueNameOf(config);
    const outcomes = await takeFlow(this.env, config.tenant, queue, items);
    const now = clock.now();
    const vanished: FlowItem[] = [];
    const granted = new Set<string>();
    this.ctx.storage.transactionSync(() => {
      const sql = this.ctx.storage.sql;
      flowRows.forEach((r, i) => {
        const outcome = outcomes[i]!;
        if (outcome.granted) {
          const still = sql.exec("UPDATE leases SET state = 'sent', expires_at = ? WHERE key = ? AND state = 'acquiring'", now + r.lease_ms, r.key).rowsWritten;
          if (still > 0) {
            sql.exec("DELETE FROM ready WHERE key = ?", r.key);
            granted.add(r.key);
          } else vanished.push(items[i]!);
          return;
        }
        sql.exec("DELETE FROM leases WHERE key = ? AND state = 'acquiring'", r.key);
        const until = outcome.retryAt ?? now + FLOW_RECHECK_MS;
        sql.exec(
          "UPDATE ready SET blocked_on = ?, blocked_until = ?, blocked_reason = ? WHERE key = ?",
          outcome.blockedOn,
          Math.min(until, now + FLOW_RECHECK_MS),
          outcome.reason,
          r.key,
        );
      });
    });
    this.planAlarm();
    for (const item of vanished) this.ctx.waitUntil(giveBack(this.env, config.tenant, item, () => false));
    return rows.filter((r) => !r.needs || granted.has(r.key));
  }

  private putBack(rows: TaskRow[]): void {
    this.ctx.storage.transactionSync(() => {
      for (const r of rows) {
        const held = this.ctx.storage.sql.exec("DELETE FROM leases WHERE key = ?", r.key).rowsWritten > 0;
        // What a task took from its flow objects stays taken for its next try; a task removed meanwhile stays out.
        if (held) this.ctx.storage.sql.exec(`INSERT INTO ready (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING`, ...values(r));
      }
    });
  }

  private async send(config: ConfigRow, rows: TaskRow[]): Promise<void> {
    await dispatchQueueOf(this.env, config.pool as Pool).sendBatch(rows.map((r) => ({ body: toMessage(config, r), contentType: "json" as const })));
  }

  /** Points the alarm at the earliest lease expiry or send retry, without waiting for it. */
  private planAlarm(): void {
    const expiry = this.ctx.storage.sql.exec<{ next: number | null }>("SELECT MIN(expires_at) AS next FROM leases").toArray()[0]?.next ?? null;
    const blocked = this.ctx.storage.sql.exec<{ next: number | null }>("SELECT MIN(blocked_until) AS next FROM ready").toArray()[0]?.next ?? null;
    const next = [expiry, blocked, this.retryAt].filter((t): t is number => t !== null).sort((a, b) => a - b)[0] ?? null;
    if (next === null || (this.alarmAt !== null && this.alarmAt !== undefined && this.alarmAt <= next)) return;
    this.alarmAt = next;
    this.ctx.storage.setAlarm(next).catch((err: unknown) => console.error("could not set the task queue's alarm", err));
  }
}

const taskQueueNameOf = (config: ConfigRow): string => taskQueueName(config.tenant, config.worker, config.pool as Pool, config.shard);

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
    ...(config.shard > 0 ? { shard: config.shard } : {}),
    key: r.key,
    runId: r.run_id,
    task: r.task,
    attempt: r.attempt,
    invocation: r.invocation,
  };
}
