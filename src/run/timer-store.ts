/**
 * Every timer of a run (retry backoff, execution and schedule timeouts, liveness checks, sleeps and
 * other conditions) lives in one table; the outbox adds when its messages are due. `plan()`, called at the end of every write, is the one function that decides
 * where the object's alarm points: the earliest due time.
 */
export type TimerKind = "retry" | "exec_timeout" | "schedule_timeout" | "liveness" | "condition";

export interface Timer {
  kind: TimerKind;
  task: string;
  /** The attempt (or, for a condition, the checkpoint's sequence number) the timer belongs to. */
  attempt: number;
  /** Tells apart several timers of one kind on one task and attempt (a condition's leaf). */
  ref: string;
  dueAt: number;
  /** Kind-specific detail, e.g. the invocation an execution timeout belongs to. */
  data: string | null;
}

interface TimerRow extends Record<string, SqlStorageValue> {
  kind: string;
  task: string;
  attempt: number;
  ref: string;
  due_at: number;
  data: string | null;
}

const toTimer = (r: TimerRow): Timer => ({
  kind: r.kind as TimerKind,
  task: r.task,
  attempt: r.attempt,
  ref: r.ref,
  dueAt: r.due_at,
  data: r.data,
});

/** How much earlier than its next due time an alarm may stay set (see `plan`). */
export const ALARM_SLACK_MS = 1_000;

/**
 * An alarm this long past its time when a write comes has not run to its end: the runtime is
 * retrying it after failures (backing off), or has given up on it after its last retry. The write
 * sets it again (see `plan`).
 */
export const ALARM_OVERDUE_MS = 60_000;

/** An alarm set for `armed` will do for a timer due at `due`: it is at most ALARM_SLACK_MS earlier. */
const doesFor = (armed: number | null, due: number): armed is number => armed !== null && armed <= due && due - armed < ALARM_SLACK_MS;

export class TimerStore {
  /** The `alarm` row, read once per object instance and kept in step with every write of it. */
  private armed: number | null | undefined;

  constructor(private readonly storage: DurableObjectStorage) {}

  set(kind: TimerKind, task: string, attempt: number, dueAt: number, data: string | null = null, ref = ""): void {
    this.storage.sql.exec(
      `INSERT INTO timers (kind, task, attempt, ref, due_at, data) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (kind, task, attempt, ref) DO UPDATE SET due_at = excluded.due_at, data = excluded.data`,
      kind,
      task,
      attempt,
      ref,
      dueAt,
      data,
    );
  }

  clear(kind: TimerKind, task: string, attempt: number, ref = ""): void {
    this.storage.sql.exec("DELETE FROM timers WHERE kind = ? AND task = ? AND attempt = ? AND ref = ?", kind, task, attempt, ref);
  }

  /** Clears every timer of one kind for a task and attempt (all leaves of a wait). */
  clearAll(kind: TimerKind, task: string, attempt: number): void {
    this.storage.sql.exec("DELETE FROM timers WHERE kind = ? AND task = ? AND attempt = ?", kind, task, attempt);
  }

  clearTask(task: string): void {
    this.storage.sql.exec("DELETE FROM timers WHERE task = ?", task);
  }

  forTask(task: string): Timer[] {
    return this.storage.sql.exec<TimerRow>("SELECT * FROM timers WHERE task = ? ORDER BY due_at", task).toArray().map(toTimer);
  }

  due(now: number): Timer[] {
    return this.storage.sql.exec<TimerRow>("SELECT * FROM timers WHERE due_at <= ? ORDER BY due_at", now).toArray().map(toTimer);
  }

  /**
   * Inside a write: where the alarm must point now (the earliest timer), recorded in the `alarm`
   * row in the same transaction. Returns the new time (null: no alarm), or undefined when it does
   * not change. The caller applies it to the runtime's alarm in the same turn, so the two commit
   * together.
   *
   * An alarm already set for a little earlier (less than ALARM_SLACK_MS) is left where it is: it
   * would fire early, find nothing due, and point itself at what is. Moving an alarm costs a write
   * of the runtime's alarm store besides the commit, and a short run would otherwise move it by a
   * few milliseconds at each step (the outbox's grace at its creation, the liveness check at its
   * task's start, the grace again at its end) only to delete it.
   */
  plan(also: number | null, now: number): number | null | undefined {
    const timer = this.storage.sql.exec<{ next: number | null }>("SELECT MIN(due_at) AS next FROM timers").toArray()[0]?.next ?? null;
    const next = timer === null ? also : also === null ? timer : Math.min(timer, also);
    const armed = this.armedAt();
    // An alarm long overdue may be one the runtime gave up on: set it again, or what it covers
    // would wait for the object's next start.
    const overdue = armed !== null && now - armed > ALARM_OVERDUE_MS;
    if (!overdue && (next === armed || (next !== null && doesFor(armed, next)))) return undefined;
    this.storage.sql.exec("INSERT INTO alarm (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at", next);
    this.armed = next;
    return next;
  }

  /**
   * `due`, or the armed alarm's time when that is less than ALARM_SLACK_MS earlier: for a timer
   * that may fire that much early (a liveness check), so that it shares the alarm already set
   * instead of costing an alarm run of its own a moment after it.
   */
  sharing(due: number): number {
    const armed = this.armedAt();
    return doesFor(armed, due) ? armed : due;
  }

  /**
   * The alarm fired: the timers due are those due by now or by the time the alarm was set for,
   * whichever is later (the runtime fires an alarm at or after its time; a test may fire it early).
   */
  alarmFired(now: number): number {
    const horizon = Math.max(now, this.armedAt() ?? now);
    this.storage.sql.exec("INSERT INTO alarm (id, at) VALUES (1, NULL) ON CONFLICT (id) DO UPDATE SET at = NULL");
    this.armed = null;
    return horizon;
  }

  /** A write rolled back: the `alarm` row is what it was before; read it again. */
  rolledBack(): void {
    this.armed = undefined;
  }

  private armedAt(): number | null {
    if (this.armed === undefined) {
      this.armed = this.storage.sql.exec<{ at: number | null }>("SELECT at FROM alarm WHERE id = 1").toArray()[0]?.at ?? null;
    }
    return this.armed;
  }
}
