import { DurableObject } from "cloudflare:workers";
import { clock } from "../core/clock";
import { Rounds } from "../core/rounds";
import { CEL_EVALUATION_BUDGET, eventContext, evaluateFilter } from "../core/cel";
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
 *
 * Evaluating filters is bounded work: each expression runs under the CEL budget, and a push (or a
 * subscription that looks back) evaluates at most SCAN_ROUND_BUDGET units in one transaction; what
 * is left is a scan that the alarm resumes round by round, so no write holds the object for long.
 * An expression that errors or runs out of budget does not match; its last error stays on the
 * waiter, and the run shows it on the waiting task. Every WAITER_CHECK_INTERVAL_MS the alarm asks
 * each waiter's run whether it still waits, and drops those it no longer arms (a lost unsubscribe).
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
  {
    version: 4,
    description: "bounded evaluation (scans, backfills), evaluation errors, stale-waiter checks",
    sql: [
      // A pushed event whose waiters are not all evaluated yet, and the last waiter id it reached.
      "CREATE TABLE scans (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, after_waiter TEXT NOT NULL DEFAULT '')",
      // Not null: the waiter still has kept events to look back through, after this `at|id`.
      "ALTER TABLE waiters ADD COLUMN backfill_after TEXT",
      "ALTER TABLE waiters ADD COLUMN error TEXT",
      "ALTER TABLE waiters ADD COLUMN error_event TEXT",
      "ALTER TABLE waiters ADD COLUMN checked_at INTEGER NOT NULL DEFAULT 0",
      "CREATE INDEX waiters_checked_at ON waiters (checked_at)",
    ],
  },
  {
    version: 5,
    description: "the waiting tasks each event woke, for the event log",
    sql: [
      "CREATE TABLE woken (event_id TEXT NOT NULL, run_id TEXT NOT NULL, task TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (event_id, run_id, task))",
      "CREATE INDEX woken_at ON woken (at)",
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
/** Cost units of filter evaluation one transaction may spend (a few expressions at their budget). */
export const SCAN_ROUND_BUDGET = 5 * CEL_EVALUATION_BUDGET;
/** The event log shows at most this many of the tasks one event woke. */
export const MAX_WOKEN_SHOWN = 1_000;
/** How often a waiter's run is asked whether it still waits. */
export const WAITER_CHECK_INTERVAL_MS = 10 * 60_000;

export interface EventRecord {
  id: string;
  scope: string | null;
  payload: unknown;
  metadata: Record<string, string>;
  /** When this bus first recorded the event (its clock): what waiters' `sinceAt` and lookbacks compare with. */
  at: number;
}

/** An event as it is pushed: the bus gives it its time when it first records it. */
export type PushedEvent = Omit<EventRecord, "at">;

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

interface ScanRow extends Record<string, SqlStorageValue> {
  id: number;
  event_id: string;
  after_waiter: string;
}

/** The last evaluation error of a waiter's expression, for the run's view. */
export interface WaiterError {
  error: string;
  eventId: string;
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

  /**
   * Records an event and wakes the waiters it matches, evaluating as much as one round's budget
   * allows before answering; the alarm finishes a larger scan. Returns how many it woke so far.
   *
   * The event's time is when this bus first records it, not the time in its id: the id is chosen
   * when a push reserves its idempotency key, and a retried push (same id) may land after a waiter
   * armed in between, which must see it. A repeat of an id recorded already changes nothing.
   */
  async publish(tenant: string, key: string, event: PushedEvent): Promise<{ woke: number }> {
    this.ensureConfig(tenant, key);
    const sql = this.ctx.storage.sql;
    const woke = this.scanRound(() => {
      const inserted = sql.exec(
        "INSERT INTO events (id, scope, payload, metadata, at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        event.id,
        event.scope,
        JSON.stringify(event.payload ?? null),
        JSON.stringify(event.metadata),
        clock.now(),
      ).rowsWritten;
      if (inserted) sql.exec("INSERT INTO scans (event_id) VALUES (?)", event.id);
    });
    await this.flush();
    return { woke };
  }

  /** Registers waiters; each first looks back through the kept events it may match (a backfill). */
  async subscribe(tenant: string, key: string, waiters: Waiter[]): Promise<void> {
    this.ensureConfig(tenant, key);
    const sql = this.ctx.storage.sql;
    const now = clock.now();
    this.scanRound(() => {
      for (const w of waiters) {
        // Already delivered (a resent subscription): nothing to do.
        if (sql.exec("SELECT 1 FROM deliveries WHERE waiter = ?", w.id).toArray().length) continue;
        sql.exec(
          `INSERT INTO waiters (id, run_id, expression, scope, since_at, ref, backfill_after, checked_at) VALUES (?, ?, ?, ?, ?, ?, '', ?)
           ON CONFLICT (id) DO NOTHING`,
          w.id,
          w.runId,
          w.expression,
          w.scope,
          w.sinceAt,
          JSON.stringify(w.ref),
          now,
        );
      }
    });
    await this.flush();
  }

  async unsubscribe(ids: string[]): Promise<void> {
    for (const id of ids) this.ctx.storage.sql.exec("DELETE FROM waiters WHERE id = ?", id);
  }

  /** The last evaluation error of each of these waiters that has one. */
  async waiterErrors(ids: string[]): Promise<Record<string, WaiterError>> {
    const errors: Record<string, WaiterError> = {};
    for (const id of ids) {
      const row = this.ctx.storage.sql
        .exec<{ error: string | null; error_event: string | null }>("SELECT error, error_event FROM waiters WHERE id = ?", id)
        .toArray()[0];
      if (row?.error) errors[id] = { error: row.error, eventId: row.error_event ?? "" };
    }
    return errors;
  }

  /**
   * One round of evaluation within SCAN_ROUND_BUDGET, in one transaction: first the backfills of new
   * waiters (through kept events, oldest first), then pushed events against their waiters, oldest
   * push first. `first` is the write that made the work (a push, a subscription): same transaction.
   * Returns how many waiters it woke.
   */
  private scanRound(first?: () => void): number {
    const sql = this.ctx.storage.sql;
    let woke = 0;
    let spent = 0;
    // Each event is parsed once per round, whatever the number of its waiters; parsing is charged.
    const contexts = new Map<string, Record<string, unknown>>();
    const contextOf = (e: EventRow): Record<string, unknown> => {
      let context = contexts.get(e.id);
      if (!context) {
        spent += 1 + ((e.payload.length + e.metadata.length) >> 4);
        context = eventContext(JSON.parse(e.payload), JSON.parse(e.metadata) as Record<string, string>);
        contexts.set(e.id, context);
      }
      return context;
    };
    const evaluate = (w: WaiterRow, e: EventRow): boolean => {
      if (!scopeMatches(w.scope, e.scope)) return false;
      const result = evaluateFilter(w.expression, contextOf(e));
      spent += 1 + result.cost;
      if (result.error !== undefined) sql.exec("UPDATE waiters SET error = ?, error_event = ? WHERE id = ?", result.error, e.id, w.id);
      return result.matched;
    };
    this.ctx.storage.transactionSync(() => {
      first?.();
      backfills: for (const w of sql.exec<WaiterRow & { backfill_after: string }>("SELECT * FROM waiters WHERE backfill_after IS NOT NULL ORDER BY id").toArray()) {
        const [afterAt, afterId] = cursor(w.backfill_after, w.since_at);
        const kept = sql
          .exec<EventRow>("SELECT * FROM events WHERE at >= ? AND (at > ? OR (at = ? AND id > ?)) ORDER BY at, id", w.since_at, afterAt, afterAt, afterId)
          .toArray();
        let last = w.backfill_after;
        for (const e of kept) {
          if (spent >= SCAN_ROUND_BUDGET) {
            sql.exec("UPDATE waiters SET backfill_after = ? WHERE id = ?", last, w.id);
            break backfills;
          }
          last = `${e.at}|${e.id}`;
          if (evaluate(w, e)) {
            this.queueDelivery(w, toEvent(e));
            woke++;
            continue backfills;
          }
        }
        sql.exec("UPDATE waiters SET backfill_after = NULL WHERE id = ?", w.id);
      }
      for (const scan of sql.exec<ScanRow>("SELECT * FROM scans ORDER BY id").toArray()) {
        if (spent >= SCAN_ROUND_BUDGET) break;
        const e = sql.exec<EventRow>("SELECT * FROM events WHERE id = ?", scan.event_id).toArray()[0];
        let done = true;
        if (e) {
          const waiters = sql
            .exec<WaiterRow>("SELECT * FROM waiters WHERE backfill_after IS NULL AND since_at <= ? AND id > ? ORDER BY id", e.at, scan.after_waiter)
            .toArray();
          let last = scan.after_waiter;
          for (const w of waiters) {
            if (spent >= SCAN_ROUND_BUDGET) {
              sql.exec("UPDATE scans SET after_waiter = ? WHERE id = ?", last, scan.id);
              done = false;
              break;
            }
            last = w.id;
            if (evaluate(w, e)) {
              this.queueDelivery(w, toEvent(e));
              woke++;
            }
          }
        }
        if (done) sql.exec("DELETE FROM scans WHERE id = ?", scan.id);
      }
    });
    return woke;
  }

  /** Asks the runs of waiters not checked for WAITER_CHECK_INTERVAL_MS whether they still wait. */
  private async checkWaiters(tenant: string): Promise<void> {
    const sql = this.ctx.storage.sql;
    const due = sql.exec<WaiterRow>("SELECT * FROM waiters WHERE checked_at <= ? ORDER BY run_id LIMIT 500", clock.now() - WAITER_CHECK_INTERVAL_MS).toArray();
    const byRun = new Map<string, WaiterRow[]>();
    for (const w of due) byRun.set(w.run_id, [...(byRun.get(w.run_id) ?? []), w]);
    await Promise.all(
      [...byRun].map(async ([runId, waiters]) => {
        try {
          const armed = await this.env.RUNS.getByName(runObjectName(tenant, runId)).armedConditions(waiters.map((w) => JSON.parse(w.ref) as ConditionRef));
          const now = clock.now();
          waiters.forEach((w, i) => {
            if (armed[i]) sql.exec("UPDATE waiters SET checked_at = ? WHERE id = ?", now, w.id);
            else sql.exec("DELETE FROM waiters WHERE id = ?", w.id);
          });
        } catch (err) {
          // Asked again at the next check.
          console.error(`could not check the waiters of run ${runId}`, err);
          for (const w of waiters) sql.exec("UPDATE waiters SET checked_at = ? WHERE id = ?", clock.now(), w.id);
        }
      }),
    );
  }

  async waiterCount(): Promise<number> {
    return this.ctx.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM waiters").toArray()[0]?.n ?? 0;
  }

  override async alarm(): Promise<void> {
    this.ctx.storage.sql.exec("DELETE FROM events WHERE at < ?", clock.now() - EVENT_RETENTION_MS);
    this.ctx.storage.sql.exec("DELETE FROM woken WHERE at < ?", clock.now() - EVENT_RETENTION_MS);
    this.scanRound();
    const config = this.ctx.storage.sql.exec<{ tenant: string }>("SELECT tenant FROM config WHERE id = 1").toArray()[0];
    if (config) await this.checkWaiters(config.tenant);
    await this.flush();
  }

  /** The waiting tasks each of these events woke (kept as long as the events; at most MAX_WOKEN_SHOWN each). */
  async woken(eventIds: string[]): Promise<Record<string, { runId: string; task: string }[]>> {
    const out: Record<string, { runId: string; task: string }[]> = {};
    for (const id of eventIds) {
      out[id] = this.ctx.storage.sql
        .exec<{ run_id: string; task: string }>("SELECT run_id, task FROM woken WHERE event_id = ? ORDER BY run_id, task LIMIT ?", id, MAX_WOKEN_SHOWN)
        .toArray()
        .map((r) => ({ runId: r.run_id, task: r.task }));
    }
    return out;
  }

  private queueDelivery(w: WaiterRow, event: EventRecord): void {
    const body: ConditionMet = { ...(JSON.parse(w.ref) as ConditionRef), eventId: event.id, payload: event.payload };
    this.ctx.storage.sql.exec(
      "INSERT INTO woken (event_id, run_id, task, at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
      event.id,
      w.run_id,
      body.task,
      event.at,
    );
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
    // Unfinished scans continue at once, in the next alarm: other calls get in between rounds.
    const scanning = sql.exec("SELECT 1 FROM scans UNION ALL SELECT 1 FROM waiters WHERE backfill_after IS NOT NULL LIMIT 1").toArray().length ? clock.now() : null;
    const checked = sql.exec<{ at: number | null }>("SELECT MIN(checked_at) AS at FROM waiters").toArray()[0]?.at ?? null;
    const check = checked === null ? null : checked + WAITER_CHECK_INTERVAL_MS;
    const next = [retry, prune, scanning, check].filter((x): x is number => x !== null).sort((a, b) => a - b)[0];
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

/** Where a backfill resumes: after this `at` and id (`at|id`); '' starts at the waiter's `since_at`. */
function cursor(after: string, sinceAt: number): [number, string] {
  if (after === "") return [sinceAt - 1, "~"];
  const bar = after.indexOf("|");
  return [Number(after.slice(0, bar)), after.slice(bar + 1)];
}

function toEvent(r: EventRow): EventRecord {
  return { id: r.id, scope: r.scope, payload: JSON.parse(r.payload), metadata: JSON.parse(r.metadata) as Record<string, string>, at: r.at };
}
