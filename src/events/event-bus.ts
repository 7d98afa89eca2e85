import { DurableObject } from "cloudflare:workers";
import { clock } from "../core/clock";
import { Rounds } from "../core/rounds";
import { eventContext, matches } from "../core/cel";
import { MAX_LOOKBACK_MS } from "../core/conditions";
import { eventBusName, runObjectName } from "../core/names";
import type { Env } from "../env";
import { migrate, type Migration } from "../storage/migrate";

/**
 * The waiters of one event key, per tenant, with their CEL filters. A pushed event wakes every
 * waiter whose scope and expression match, once: the waiter is removed in the same write that
 * queues its delivery. Events are kept for MAX_LOOKBACK_MS so a waiter that arrives late (its wait
 * was reached just before the event, or it asked for a lookback window) still finds them.
 * Deliveries to runs are retried from the alarm, backing off, DELIVERY_MAX_TRIES times; runs ignore a
 * repeat. One that never lands is dead-lettered (kept in `dead_letters`), and the run is told, with
 * as many tries, so the task that waited fails saying which event could not be delivered.
 */
export const EVENT_BUS_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "events, waiters, deliveries",
    sql: [
      "CREATE TABLE config (id INTEGER PRIMARY KEY CHECK (id = 1), tenant TEXT NOT NULL, key TEXT NOT NULL)",
      `CREATE TABLE events (
        id TEXT PRIMARY KEY,
        scope TEXT,
        payload TEXT NOT NULL,
        metadata TEXT NOT NULL,
        at INTEGER NOT NULL
      )`,
      "CREATE INDEX events_at ON events (at)",
      `CREATE TABLE waiters (
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        expression TEXT,
        scope TEXT,
        since_at INTEGER NOT NULL,
        ref TEXT NOT NULL
      )`,
      `CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        waiter TEXT NOT NULL UNIQUE,
        run_id TEXT NOT NULL,
        body TEXT NOT NULL,
        tries INTEGER NOT NULL DEFAULT 0,
        next_at INTEGER NOT NULL
      )`,
    ],
  },
  {
    version: 3,
    description: "dead letters: deliveries that failed every try, and the notice owed to their run",
    sql: [
      `CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY,
        waiter TEXT NOT NULL UNIQUE,
        run_id TEXT NOT NULL,
        body TEXT NOT NULL,
        tries INTEGER NOT NULL,
        error TEXT NOT NULL,
        at INTEGER NOT NULL,
        notice_tries INTEGER NOT NULL DEFAULT 0,
        notice_at INTEGER
      )`,
      "CREATE INDEX dead_letters_notice ON dead_letters (notice_at)",
    ],
  },
];

/** Events stay this long after their push (the longest lookback, plus a margin). */
export const EVENT_RETENTION_MS = MAX_LOOKBACK_MS + 3_600_000;
const DELIVERY_RETRY_BASE_MS = 500;
const DELIVERY_RETRY_MAX_MS = 60_000;
/** Tries of a delivery (and then of the notice of its loss) before giving up: about 8.5 minutes. */
export const DELIVERY_MAX_TRIES = 15;
const backoff = (tries: number) => Math.min(DELIVERY_RETRY_BASE_MS * 2 ** tries, DELIVERY_RETRY_MAX_MS);

export interface EventRecord {
  id: string;
  scope: string | null;
  payload: unknown;
  metadata: Record<string, string>;
  at: number;
}

/** A wait's event condition, as the run registers it here. */
export interface Waiter {
  /** Unique per arming of a condition leaf: `${runId}|${task}|${seq}|${list}|${group}|${leaf}|${arming}`. */
  id: string;
  runId: string;
  expression: string | null;
  scope: string | null;
  /** Events pushed at or after this time match (the time the wait was reached, minus any lookback). */
  sinceAt: number;
  /** What the run needs to find the condition again. */
  ref: ConditionRef;
}

export interface ConditionRef {
  task: string;
  seq: number;
  list: "wait" | "skip" | "cancel";
  group: number;
  leaf: number;
  /** Which arming of the condition this is: a replay re-arms the same position anew. */
  arming: string;
}

/** What the bus tells a run: this condition of yours was met by this event. */
export interface ConditionMet extends ConditionRef {
  eventId: string;
  payload: unknown;
}

/** What the bus tells a run when it could not deliver a `ConditionMet` within its tries. */
export interface ConditionLost extends ConditionRef {
  eventId: string;
  tries: number;
  error: string;
  /** The bus that held the delivery. */
  from: string;
}

interface DeadLetterRow extends Record<string, SqlStorageValue> {
  id: number;
  run_id: string;
  body: string;
  tries: number;
  error: string;
  notice_tries: number;
}

interface EventRow extends Record<string, SqlStorageValue> {
  id: string;
  scope: string | null;
  payload: string;
  metadata: string;
  at: number;
}

interface WaiterRow extends Record<string, SqlStorageValue> {
  id: string;
  run_id: string;
  expression: string | null;
  scope: string | null;
  since_at: number;
  ref: string;
}

interface DeliveryRow extends Record<string, SqlStorageValue> {
  id: number;
  waiter: string;
  run_id: string;
  body: string;
  tries: number;
}

export class EventBus extends DurableObject<Env> {
  private readonly flushes = new Rounds(async () => {
    const config = this.ctx.storage.sql.exec<{ tenant: string }>("SELECT tenant FROM config WHERE id = 1").toArray()[0];
    if (config) await this.deliverDue(config.tenant);
    return false;
  });

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    void ctx.blockConcurrencyWhile(async () => {
      migrate(ctx.storage, EVENT_BUS_MIGRATIONS);
    });
  }

  /** Records an event and wakes the waiters it matches, once per event id. Returns how many it woke. */
  async publish(tenant: string, key: string, event: EventRecord): Promise<{ woke: number }> {
    this.ensureConfig(tenant, key);
    const sql = this.ctx.storage.sql;
    let woke = 0;
    this.ctx.storage.transactionSync(() => {
      const inserted = sql.exec(
        "INSERT INTO events (id, scope, payload, metadata, at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        event.id,
        event.scope,
        JSON.stringify(event.payload ?? null),
        JSON.stringify(event.metadata),
        event.at,
      ).rowsWritten;
      // A retried push of an event already recorded (same idempotency key, so same id): the first
      // write woke its waiters, and a waiter armed since was matched against it when it subscribed.
      if (inserted === 0) return;
      const context = eventContext(event.payload, event.metadata);
      for (const w of sql.exec<WaiterRow>("SELECT * FROM waiters WHERE since_at <= ?", event.at).toArray()) {
        if (!scopeMatches(w.scope, event.scope) || !matches(w.expression ?? undefined, context)) continue;
        this.queueDelivery(w, event);
        woke++;
      }
    });
    await this.flush();
    return { woke };
  }

  /** Registers waiters; one that an already-kept event matches is delivered at once instead. */
  async subscribe(tenant: string, key: string, waiters: Waiter[]): Promise<void> {
    this.ensureConfig(tenant, key);
    const sql = this.ctx.storage.sql;
    this.ctx.storage.transactionSync(() => {
      for (const w of waiters) {
        const row: WaiterRow = {
          id: w.id,
          run_id: w.runId,
          expression: w.expression,
          scope: w.scope,
          since_at: w.sinceAt,
          ref: JSON.stringify(w.ref),
        };
        // Already delivered (a resent subscription): nothing to do.
        if (sql.exec("SELECT 1 FROM deliveries WHERE waiter = ?", w.id).toArray().length) continue;
        const kept = sql.exec<EventRow>("SELECT * FROM events WHERE at >= ? ORDER BY at, id", w.sinceAt).toArray();
        const hit = kept.find(
          (e) => scopeMatches(w.scope, e.scope) && matches(w.expression ?? undefined, eventContext(JSON.parse(e.payload), JSON.parse(e.metadata) as Record<string, string>)),
        );
        if (hit) {
          this.queueDelivery(row, toEvent(hit));
          continue;
        }
        sql.exec(
          "INSERT INTO waiters (id, run_id, expression, scope, since_at, ref) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
          row.id,
          row.run_id,
          row.expression,
          row.scope,
          row.since_at,
          row.ref,
        );
      }
    });
    await this.flush();
  }

  async unsubscribe(ids: string[]): Promise<void> {
    for (const id of ids) this.ctx.storage.sql.exec("DELETE FROM waiters WHERE id = ?", id);
  }

  async waiterCount(): Promise<number> {
    return this.ctx.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM waiters").toArray()[0]?.n ?? 0;
  }

  override async alarm(): Promise<void> {
    this.ctx.storage.sql.exec("DELETE FROM events WHERE at < ?", clock.now() - EVENT_RETENTION_MS);
    await this.flush();
  }

  private queueDelivery(w: WaiterRow, event: EventRecord): void {
    const body: ConditionMet = { ...(JSON.parse(w.ref) as ConditionRef), eventId: event.id, payload: event.payload };
    this.ctx.storage.sql.exec("DELETE FROM waiters WHERE id = ?", w.id);
    this.ctx.storage.sql.exec(
      "INSERT INTO deliveries (waiter, run_id, body, next_at) VALUES (?, ?, ?, ?) ON CONFLICT (waiter) DO NOTHING",
      w.id,
      w.run_id,
      JSON.stringify(body),
      clock.now(),
    );
  }

  /** Sends due deliveries to their runs, one round at a time; failures back off and wait for the alarm. */
  private async flush(): Promise<void> {
    await this.flushes.run();
    await this.armAlarm();
  }

  private async deliverDue(tenant: string): Promise<void> {
    const sql = this.ctx.storage.sql;
    const due = sql.exec<DeliveryRow>("SELECT * FROM deliveries WHERE next_at <= ? ORDER BY id", clock.now()).toArray();
    await Promise.all(
      due.map(async (d) => {
        try {
          await this.env.RUNS.getByName(runObjectName(tenant, d.run_id)).conditionMet(JSON.parse(d.body) as ConditionMet);
          sql.exec("DELETE FROM deliveries WHERE id = ?", d.id);
        } catch (err) {
          const reason = err instanceof Error ? err.message : String(err);
          console.error(`event delivery to run ${d.run_id} failed (try ${d.tries + 1} of ${DELIVERY_MAX_TRIES}): ${reason}`);
          if (d.tries + 1 < DELIVERY_MAX_TRIES) {
            sql.exec("UPDATE deliveries SET tries = tries + 1, next_at = ? WHERE id = ?", clock.now() + backoff(d.tries), d.id);
            return;
          }
          this.ctx.storage.transactionSync(() => {
            sql.exec(
              "INSERT INTO dead_letters (waiter, run_id, body, tries, error, at, notice_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (waiter) DO NOTHING",
              d.waiter,
              d.run_id,
              d.body,
              d.tries + 1,
              reason.slice(0, 4096),
              clock.now(),
              clock.now(),
            );
            sql.exec("DELETE FROM deliveries WHERE id = ?", d.id);
          });
        }
      }),
    );
    await this.noticeLosses(tenant);
  }

  /** Tells each run whose delivery was dead-lettered, so its waiting task fails (bounded tries too). */
  private async noticeLosses(tenant: string): Promise<void> {
    const sql = this.ctx.storage.sql;
    const due = sql.exec<DeadLetterRow>("SELECT * FROM dead_letters WHERE notice_at <= ? ORDER BY id", clock.now()).toArray();
    if (due.length === 0) return;
    const key = sql.exec<{ key: string }>("SELECT key FROM config WHERE id = 1").one().key;
    await Promise.all(
      due.map(async (d) => {
        const met = JSON.parse(d.body) as ConditionMet;
        const lost: ConditionLost = {
          task: met.task,
          seq: met.seq,
          list: met.list,
          group: met.group,
          leaf: met.leaf,
          arming: met.arming,
          eventId: met.eventId,
          tries: d.tries,
          error: d.error,
          from: eventBusName(tenant, key),
        };
        try {
          await this.env.RUNS.getByName(runObjectName(tenant, d.run_id)).conditionLost(lost);
          sql.exec("UPDATE dead_letters SET notice_at = NULL WHERE id = ?", d.id);
        } catch (err) {
          console.error(`notice of a lost event delivery to run ${d.run_id} failed: ${err instanceof Error ? err.message : String(err)}`);
          const tries = d.notice_tries + 1;
          sql.exec("UPDATE dead_letters SET notice_tries = ?, notice_at = ? WHERE id = ?", tries, tries < DELIVERY_MAX_TRIES ? clock.now() + backoff(d.notice_tries) : null, d.id);
        }
      }),
    );
  }

  /** Deliveries that failed every try (kept here; their runs show them too once told). */
  async deadLetters(): Promise<{ runId: string; eventId: string; task: string; tries: number; error: string; at: number; noticed: boolean }[]> {
    return this.ctx.storage.sql
      .exec<DeadLetterRow & { at: number; notice_at: number | null }>("SELECT * FROM dead_letters ORDER BY id")
      .toArray()
      .map((r) => {
        const met = JSON.parse(r.body) as ConditionMet;
        return { runId: r.run_id, eventId: met.eventId, task: met.task, tries: r.tries, error: r.error, at: r.at, noticed: r.notice_at === null && r.notice_tries < DELIVERY_MAX_TRIES };
      });
  }

  private async armAlarm(): Promise<void> {
    const sql = this.ctx.storage.sql;
    const retry =
      sql.exec<{ next: number | null }>("SELECT MIN(at) AS next FROM (SELECT next_at AS at FROM deliveries UNION ALL SELECT notice_at FROM dead_letters)").toArray()[0]
        ?.next ?? null;
    const oldest = sql.exec<{ at: number | null }>("SELECT MIN(at) AS at FROM events").toArray()[0]?.at ?? null;
    const prune = oldest === null ? null : oldest + EVENT_RETENTION_MS;
    const next = [retry, prune].filter((x): x is number => x !== null).sort((a, b) => a - b)[0];
    if (next === undefined) return;
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > next) await this.ctx.storage.setAlarm(next);
  }

  private ensureConfig(tenant: string, key: string): void {
    this.ctx.storage.sql.exec("INSERT INTO config (id, tenant, key) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING", tenant, key);
  }
}

/** A waiter with a scope matches only events pushed with that scope; one without matches any. */
function scopeMatches(waiterScope: string | null, eventScope: string | null): boolean {
  return waiterScope === null || waiterScope === eventScope;
}

function toEvent(r: EventRow): EventRecord {
  return { id: r.id, scope: r.scope, payload: JSON.parse(r.payload), metadata: JSON.parse(r.metadata) as Record<string, string>, at: r.at };
}
