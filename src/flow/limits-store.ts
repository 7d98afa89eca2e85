import type { ConcurrencyKeyView, RateLimitDuration, RateLimitView } from "@spindle/worker-sdk/protocol";
import { DURATION_MS, needId, reasons, type ConcurrencyNeed, type Need, type RateNeed } from "../core/flow";
import type { Migration } from "../storage/migrate";

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "concurrency keys, their holders and waiters; rate limits and the units taken; strategy cancels",
    sql: [
      "CREATE TABLE config (id INTEGER PRIMARY KEY CHECK (id = 1), tenant TEXT NOT NULL)",
      `CREATE TABLE keys (
        id TEXT PRIMARY KEY,
        key TEXT NOT NULL,
        workflow TEXT NOT NULL,
        task TEXT,
        strategy TEXT NOT NULL CHECK (strategy IN ('GROUP_ROUND_ROBIN','CANCEL_IN_PROGRESS','CANCEL_NEWEST','CANCEL_QUEUED_EXCEPT_NEWEST')),
        max_runs INTEGER NOT NULL CHECK (max_runs >= 1)
      )`,
      `CREATE TABLE holders (
        id TEXT NOT NULL,
        holder TEXT NOT NULL,
        run_id TEXT NOT NULL,
        acquired_at INTEGER NOT NULL,
        cancelling INTEGER NOT NULL DEFAULT 0,
        checked_at INTEGER NOT NULL,
        PRIMARY KEY (id, holder)
      )`,
      "CREATE INDEX holders_run ON holders (run_id)",
      `CREATE TABLE waiters (
        id TEXT NOT NULL,
        holder TEXT NOT NULL,
        run_id TEXT NOT NULL,
        queue TEXT NOT NULL,
        queued_at INTEGER NOT NULL,
        seen_at INTEGER NOT NULL,
        PRIMARY KEY (id, holder)
      )`,
      "CREATE INDEX waiters_run ON waiters (run_id)",
      `CREATE TABLE rate_limits (
        key TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('static','dynamic')),
        lim INTEGER NOT NULL CHECK (lim >= 1),
        duration TEXT NOT NULL
      )`,
      `CREATE TABLE rate_units (
        key TEXT NOT NULL,
        holder TEXT NOT NULL,
        units INTEGER NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (key, holder)
      )`,
      "CREATE INDEX rate_units_at ON rate_units (key, at)",
      "CREATE TABLE cancels (run_id TEXT PRIMARY KEY, message TEXT NOT NULL, next_at INTEGER NOT NULL)",
    ],
  },
  {
    version: 2,
    description: "rate units: when the task that took a unit started (its window runs from then, not from admission)",
    sql: ["ALTER TABLE rate_units ADD COLUMN started_at INTEGER"],
  },
];

/**
 * A rate unit is taken when its task is admitted and counts until `duration` after the task
 * started: the run tells the unit's object when the task starts (`started`), and the unit's window
 * runs from then. The task's own code starts one call after the run records the start, so a
 * started unit counts RATE_UNIT_MARGIN_MS longer. A unit whose start is never told (its task was
 * cancelled before it started, or the notice is still on its way) counts until
 * RATE_UNIT_PENDING_MS after `duration` from admission. So a unit counts from its admission to its
 * start's window end, and of any `limit + 1` starts within one `duration`, the last admitted would
 * have found the others' units counting and waited.
 */
export const RATE_UNIT_MARGIN_MS = 250;
export const RATE_UNIT_PENDING_MS = 60_000;

/** SQL: until when a rate unit counts (`?` is the limit's duration in ms). */
const UNTIL = `(COALESCE(started_at + ${RATE_UNIT_MARGIN_MS}, at + ${RATE_UNIT_PENDING_MS}) + ?)`;
const durationMs = (duration: RateLimitDuration): number => DURATION_MS[duration];

/** An attempt asking for what it needs from one flow object: all of it, or none. */
export interface AcquireRequest {
  runId: string;
  /** When the attempt was queued: CANCEL_QUEUED_EXCEPT_NEWEST keeps the newest. */
  queuedAt: number;
  needs: Need[];
}

export type AcquireResult =
  | {
      granted: true;
      /** Ids of the needs this request newly took (a run's key it already held is not among them). */
      taken: string[];
    }
  | {
      granted: false;
      /** The need that refused (its id): the queue is told when it frees up. */
      blockedOn: string;
      reason: string;
      /** A rate limit's next unit: when to ask again. */
      retryAt: number | null;
    };

/** A strategy decided to cancel this run. */
export interface StrategyCancel {
  runId: string;
  message: string;
}

type Verdict = { ok: true } | { ok: false; reason: string; retryAt: number | null; cancelSelf?: string };

/**
 * The state of the concurrency keys and rate limits whose ids hash to one `FlowLimits` object.
 * Every method runs inside the object's transaction.
 */
export class LimitsStore {
  constructor(private readonly sql: SqlStorage) {}

  /**
   * Checks every need of a request, then takes them all, or takes nothing and records the request
   * as a waiter of the first need that refused (its queue is told when that need frees up).
   * `cancels` collects the runs a strategy cancels.
   */
  acquire(queue: string, req: AcquireRequest, now: number, cancels: StrategyCancel[]): AcquireResult {
    for (const need of req.needs) {
      const verdict = need.kind === "concurrency" ? this.checkConcurrency(need, req, cancels) : this.checkRate(need, now);
      if (verdict.ok) continue;
      const id = needId(need);
      if (verdict.cancelSelf) {
        cancels.push({ runId: req.runId, message: verdict.cancelSelf });
        this.sql.exec("DELETE FROM waiters WHERE id = ? AND holder = ?", id, need.holder);
      } else {
        this.sql.exec(
          `INSERT INTO waiters (id, holder, run_id, queue, queued_at, seen_at) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (id, holder) DO UPDATE SET queue = excluded.queue, seen_at = excluded.seen_at`,
          id,
          need.holder,
          req.runId,
          queue,
          req.queuedAt,
          now,
        );
      }
      return { granted: false, blockedOn: id, reason: verdict.reason, retryAt: verdict.retryAt };
    }
    const taken: string[] = [];
    for (const need of req.needs) {
      if (this.holds(need, now)) continue;
      taken.push(needId(need));
      if (need.kind === "concurrency") {
        this.sql.exec(
          "INSERT INTO holders (id, holder, run_id, acquired_at, checked_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id, holder) DO NOTHING",
          need.id,
          need.holder,
          req.runId,
          now,
          now,
        );
      } else {
        this.sql.exec("INSERT INTO rate_units (key, holder, units, at) VALUES (?, ?, ?, ?) ON CONFLICT (key, holder) DO NOTHING", need.key, need.holder, need.units, now);
      }
      this.sql.exec("DELETE FROM waiters WHERE id = ? AND holder = ?", needId(need), need.holder);
    }
    return { granted: true, taken };
  }

  private holds(need: Need, now: number): boolean {
    if (need.kind === "concurrency") return this.sql.exec("SELECT 1 FROM holders WHERE id = ? AND holder = ?", need.id, need.holder).toArray().length > 0;
    const limit = this.rateLimit(need.key);
    if (!limit) return false;
    return this.sql.exec(`SELECT 1 FROM rate_units WHERE key = ? AND holder = ? AND ${UNTIL} > ?`, need.key, need.holder, durationMs(limit.duration), now).toArray().length > 0;
  }

  /** Holders not checked since `before`, oldest check first: their runs are asked whether they still hold them. */
  holdersToCheck(before: number, limit: number): { id: string; holder: string; runId: string }[] {
    return this.sql
      .exec<{ id: string; holder: string; run_id: string }>("SELECT id, holder, run_id FROM holders WHERE checked_at < ? ORDER BY checked_at LIMIT ?", before, limit)
      .toArray()
      .map((r) => ({ id: r.id, holder: r.holder, runId: r.run_id }));
  }

  checked(holders: { id: string; holder: string }[], now: number): void {
    for (const h of holders) this.sql.exec("UPDATE holders SET checked_at = ? WHERE id = ? AND holder = ?", now, h.id, h.holder);
  }

  private checkConcurrency(need: ConcurrencyNeed, req: AcquireRequest, cancels: StrategyCancel[]): Verdict {
    this.sql.exec(
      `INSERT INTO keys (id, key, workflow, task, strategy, max_runs) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET strategy = excluded.strategy, max_runs = excluded.max_runs`,
      need.id,
      need.key,
      need.workflow,
      need.task,
      need.strategy,
      need.maxRuns,
    );
    if (this.sql.exec("SELECT 1 FROM holders WHERE id = ? AND holder = ?", need.id, need.holder).toArray().length > 0) return { ok: true };
    const running = this.count("SELECT COUNT(*) AS n FROM holders WHERE id = ?", need.id);
    if (running < need.maxRuns) return { ok: true };
    const reason = reasons.concurrency(need, running);
    const cancelled = (why: string) => `cancelled by concurrency key '${need.key}' (${need.strategy}): ${why}`;
    switch (need.strategy) {
      case "CANCEL_NEWEST":
        return { ok: false, reason, retryAt: null, cancelSelf: cancelled(`it found the key at ${running}/${need.maxRuns}`) };
      case "CANCEL_IN_PROGRESS": {
        // The oldest running holders make room; this one waits for their ends (never over maxRuns).
        const active = this.sql
          .exec<{ holder: string; run_id: string }>("SELECT holder, run_id FROM holders WHERE id = ? AND cancelling = 0 ORDER BY acquired_at, holder", need.id)
          .toArray();
        for (const h of active.slice(0, Math.max(0, active.length + 1 - need.maxRuns))) {
          this.sql.exec("UPDATE holders SET cancelling = 1 WHERE id = ? AND holder = ?", need.id, h.holder);
          cancels.push({ runId: h.run_id, message: cancelled(`a newer run (${req.runId}) was admitted in its place`) });
        }
        return { ok: false, reason, retryAt: null };
      }
      case "CANCEL_QUEUED_EXCEPT_NEWEST": {
        const newer = this.count(
          "SELECT COUNT(*) AS n FROM waiters WHERE id = ? AND holder != ? AND (queued_at > ? OR (queued_at = ? AND run_id > ?))",
          need.id,
          need.holder,
          req.queuedAt,
          req.queuedAt,
          req.runId,
        );
        if (newer > 0) return { ok: false, reason, retryAt: null, cancelSelf: cancelled("a newer run is queued for the key") };
        const older = this.sql
          .exec<{ holder: string; run_id: string }>("SELECT holder, run_id FROM waiters WHERE id = ? AND holder != ?", need.id, need.holder)
          .toArray();
        for (const w of older) {
          this.sql.exec("DELETE FROM waiters WHERE id = ? AND holder = ?", need.id, w.holder);
          cancels.push({ runId: w.run_id, message: cancelled(`a newer run (${req.runId}) is queued for the key`) });
        }
        return { ok: false, reason, retryAt: null };
      }
      case "GROUP_ROUND_ROBIN":
        return { ok: false, reason, retryAt: null };
    }
  }

  private checkRate(need: RateNeed, now: number): Verdict {
    let limit = this.rateLimit(need.key);
    if (need.dynamic && limit?.kind !== "static") {
      this.sql.exec(
        `INSERT INTO rate_limits (key, kind, lim, duration) VALUES (?, 'dynamic', ?, ?)
         ON CONFLICT (key) DO UPDATE SET lim = excluded.lim, duration = excluded.duration`,
        need.key,
        need.dynamic.limit,
        need.dynamic.duration,
      );
      limit = { kind: "dynamic", lim: need.dynamic.limit, duration: need.dynamic.duration };
    }
    if (!limit) return { ok: false, reason: reasons.rateUndefined(need.key), retryAt: null };
    const d = durationMs(limit.duration);
    if (this.sql.exec(`SELECT 1 FROM rate_units WHERE key = ? AND holder = ? AND ${UNTIL} > ?`, need.key, need.holder, d, now).toArray().length > 0) {
      return { ok: true };
    }
    if (need.units > limit.lim) return { ok: false, reason: reasons.rateTooBig(need.key, need.units, limit.lim, limit.duration), retryAt: null };
    // A sliding window: no span of `duration` ever holds more than `limit` starts.
    const taken = this.sql
      .exec<{ units: number; until: number }>(`SELECT units, ${UNTIL} AS until FROM rate_units WHERE key = ? AND ${UNTIL} > ? ORDER BY until`, d, need.key, d, now)
      .toArray();
    let used = taken.reduce((sum, t) => sum + t.units, 0);
    if (used + need.units <= limit.lim) return { ok: true };
    let retryAt = now + d + RATE_UNIT_PENDING_MS;
    for (const t of taken) {
      used -= t.units;
      if (used + need.units <= limit.lim) {
        retryAt = t.until;
        break;
      }
    }
    return { ok: false, reason: reasons.rateExhausted(need.key, limit.lim, limit.duration), retryAt };
  }

  /** Holders end (an attempt or a run ended); a rate unit given back (an admission that took nothing). Returns the ids freed. */
  release(runId: string, holders: { id: string; holder: string }[] | null, refunds: { key: string; holder: string }[]): string[] {
    const freed = new Set<string>();
    if (holders === null) {
      for (const r of this.sql.exec<{ id: string }>("SELECT DISTINCT id FROM holders WHERE run_id = ?", runId)) freed.add(r.id);
      this.sql.exec("DELETE FROM holders WHERE run_id = ?", runId);
      this.sql.exec("DELETE FROM waiters WHERE run_id = ?", runId);
    } else {
      for (const h of holders) {
        if (this.sql.exec("DELETE FROM holders WHERE id = ? AND holder = ?", h.id, h.holder).rowsWritten > 0) freed.add(h.id);
      }
    }
    for (const r of refunds) {
      if (this.sql.exec("DELETE FROM rate_units WHERE key = ? AND holder = ?", r.key, r.holder).rowsWritten > 0) freed.add(`rate\u0000${r.key}`);
    }
    return [...freed];
  }

  /** The queues that have tasks waiting on these ids. */
  queuesWaitingOn(ids: string[]): { queue: string; ids: string[] }[] {
    const byQueue = new Map<string, Set<string>>();
    for (const id of ids) {
      for (const w of this.sql.exec<{ queue: string }>("SELECT DISTINCT queue FROM waiters WHERE id = ?", id)) {
        byQueue.set(w.queue, (byQueue.get(w.queue) ?? new Set()).add(id));
      }
    }
    return [...byQueue].map(([queue, set]) => ({ queue, ids: [...set] }));
  }

  /**
   * The tasks holding these units started at `at`: each unit's window runs from its first start.
   * Returns the ids of the limits whose units changed: their waiters were told to come back when a
   * unit still waiting for its start would have expired, and should ask again now.
   */
  started(units: { key: string; holder: string }[], at: number): string[] {
    const changed = new Set<string>();
    for (const u of units) {
      const stamped = this.sql.exec("UPDATE rate_units SET started_at = ? WHERE key = ? AND holder = ? AND started_at IS NULL", at, u.key, u.holder).rowsWritten;
      if (stamped > 0) changed.add(needId({ kind: "rate", key: u.key, holder: u.holder, units: 0, dynamic: null }));
    }
    return [...changed];
  }

  upsertRateLimit(key: string, limit: number, duration: RateLimitDuration): void {
    this.sql.exec(
      `INSERT INTO rate_limits (key, kind, lim, duration) VALUES (?, 'static', ?, ?)
       ON CONFLICT (key) DO UPDATE SET kind = 'static', lim = excluded.lim, duration = excluded.duration`,
      key,
      limit,
      duration,
    );
  }

  rateLimits(now: number): RateLimitView[] {
    const rows = this.sql.exec<{ key: string; kind: string; lim: number; duration: string }>("SELECT * FROM rate_limits ORDER BY key").toArray();
    return rows.map((r) => {
      const d = durationMs(r.duration as RateLimitDuration);
      const taken = this.sql
        .exec<{ used: number | null; first: number | null }>(`SELECT SUM(units) AS used, MIN(${UNTIL}) AS first FROM rate_units WHERE key = ? AND ${UNTIL} > ?`, d, r.key, d, now)
        .toArray()[0];
      return {
        key: r.key,
        kind: r.kind as RateLimitView["kind"],
        limit: r.lim,
        duration: r.duration as RateLimitDuration,
        unitsLeft: Math.max(0, r.lim - (taken?.used ?? 0)),
        nextRefillAt: taken?.first ? new Date(taken.first).toISOString() : null,
      };
    });
  }

  concurrency(): ConcurrencyKeyView[] {
    return this.sql
      .exec<{ key: string; workflow: string; task: string | null; strategy: string; max_runs: number; running: number; queued: number }>(
        `SELECT k.key, k.workflow, k.task, k.strategy, k.max_runs,
           (SELECT COUNT(*) FROM holders h WHERE h.id = k.id) AS running,
           (SELECT COUNT(*) FROM waiters w WHERE w.id = k.id) AS queued
         FROM keys k`,
      )
      .toArray()
      .filter((r) => r.running + r.queued > 0)
      .map((r) => ({
        key: r.key,
        workflow: r.workflow,
        task: r.task,
        limitStrategy: r.strategy as ConcurrencyKeyView["limitStrategy"],
        running: r.running,
        queued: r.queued,
        maxRuns: r.max_runs,
      }));
  }

  /** Forgets waiters not heard from since `staleBefore` (their queue asks again while they wait), spent units and idle keys. */
  collect(now: number, staleBefore: number): void {
    this.sql.exec("DELETE FROM waiters WHERE seen_at < ?", staleBefore);
    for (const r of this.sql.exec<{ key: string; duration: string }>("SELECT key, duration FROM rate_limits").toArray()) {
      this.sql.exec(`DELETE FROM rate_units WHERE key = ? AND ${UNTIL} <= ?`, r.key, durationMs(r.duration as RateLimitDuration), now);
    }
    this.sql.exec(
      "DELETE FROM keys WHERE NOT EXISTS (SELECT 1 FROM holders h WHERE h.id = keys.id) AND NOT EXISTS (SELECT 1 FROM waiters w WHERE w.id = keys.id)",
    );
    this.sql.exec(
      "DELETE FROM rate_limits WHERE kind = 'dynamic' AND NOT EXISTS (SELECT 1 FROM rate_units u WHERE u.key = rate_limits.key) AND NOT EXISTS (SELECT 1 FROM waiters w WHERE w.id = 'rate' || char(0) || rate_limits.key)",
    );
  }

  busy(): boolean {
    return this.count("SELECT (SELECT COUNT(*) FROM holders) + (SELECT COUNT(*) FROM waiters) + (SELECT COUNT(*) FROM rate_units) AS n") > 0;
  }

  addCancels(cancels: StrategyCancel[], nextAt: number): void {
    for (const c of cancels) {
      this.sql.exec("INSERT INTO cancels (run_id, message, next_at) VALUES (?, ?, ?) ON CONFLICT (run_id) DO NOTHING", c.runId, c.message, nextAt);
    }
  }

  dueCancels(now: number): StrategyCancel[] {
    return this.sql
      .exec<{ run_id: string; message: string }>("SELECT run_id, message FROM cancels WHERE next_at <= ?", now)
      .toArray()
      .map((r) => ({ runId: r.run_id, message: r.message }));
  }

  postponeCancel(runId: string, nextAt: number): void {
    this.sql.exec("UPDATE cancels SET next_at = ? WHERE run_id = ?", nextAt, runId);
  }

  cancelDone(runId: string): void {
    this.sql.exec("DELETE FROM cancels WHERE run_id = ?", runId);
  }

  nextCancelAt(): number | null {
    return this.sql.exec<{ t: number | null }>("SELECT MIN(next_at) AS t FROM cancels").toArray()[0]?.t ?? null;
  }

  private rateLimit(key: string): { kind: string; lim: number; duration: RateLimitDuration } | null {
    const r = this.sql.exec<{ kind: string; lim: number; duration: string }>("SELECT kind, lim, duration FROM rate_limits WHERE key = ?", key).toArray()[0];
    return r ? { kind: r.kind, lim: r.lim, duration: r.duration as RateLimitDuration } : null;
  }

  private count(query: string, ...args: SqlStorageValue[]): number {
    return this.sql.exec<{ n: number }>(query, ...args).toArray()[0]?.n ?? 0;
  }
}
