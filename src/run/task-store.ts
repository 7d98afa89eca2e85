import type { ErrorData, LogLine, TaskStatus } from "@spindle/worker-sdk/protocol";
import { parseJson, toJson } from "../storage/migrate";

/** The tasks of a run, their attempts and their logs. */
export interface TaskRecord {
  name: string;
  position: number;
  taskRunId: string;
  status: TaskStatus;
  attempt: number;
  retryCount: number;
  invocation: number;
  output: unknown;
  error: ErrorData | null;
  queuedAt: number | null;
  startedAt: number | null;
  finishedAt: number | null;
  queuedReason: string | null;
  /** Durable: waiting with no invocation running. */
  evicted: boolean;
  firstStartedAt: number | null;
  /** The dispatch message that started the running claim (its id), to tell its redelivery from a duplicate. */
  claimMessage: string | null;
}

interface TaskRow extends Record<string, SqlStorageValue> {
  name: string;
  position: number;
  task_run_id: string;
  status: string;
  attempt: number;
  retry_count: number;
  invocation: number;
  output: string | null;
  error: string | null;
  queued_at: number | null;
  started_at: number | null;
  finished_at: number | null;
  queued_reason: string | null;
  evicted: number;
  first_started_at: number | null;
  claim_message: string | null;
}

const toTask = (r: TaskRow): TaskRecord => ({
  name: r.name,
  position: r.position,
  taskRunId: r.task_run_id,
  status: r.status as TaskStatus,
  attempt: r.attempt,
  retryCount: r.retry_count,
  invocation: r.invocation,
  output: parseJson(r.output),
  error: parseJson<ErrorData>(r.error),
  queuedAt: r.queued_at,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  queuedReason: r.queued_reason,
  evicted: r.evicted === 1,
  firstStartedAt: r.first_started_at,
  claimMessage: r.claim_message,
});

export interface AttemptRecord {
  task: string;
  attempt: number;
  retryCount: number;
  status: TaskStatus;
  queuedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  error: ErrorData | null;
}

interface AttemptRow extends Record<string, SqlStorageValue> {
  task: string;
  attempt: number;
  retry_count: number;
  status: string;
  queued_at: number;
  started_at: number | null;
  finished_at: number | null;
  error: string | null;
}

/** A dispatch whose runner stopped showing signs of life: declared lost and dispatched again. */
export interface LostDispatch {
  attempt: number;
  invocation: number;
  at: number;
  reason: string;
}

interface LogRow extends Record<string, SqlStorageValue> {
  task: string;
  attempt: number;
  at: number;
  level: string;
  message: string;
}

/** Most log lines kept per attempt; a chatty task cannot grow a run without bound. */
export const MAX_LOG_LINES_PER_ATTEMPT = 1000;
export const MAX_LOG_LINE_CHARS = 4000;

export class TaskStore {
  constructor(private readonly sql: SqlStorage) {}

  insert(name: string, position: number, taskRunId: string): void {
    this.sql.exec(
      "INSERT INTO tasks (name, position, task_run_id, status) VALUES (?, ?, ?, 'PENDING')",
      name,
      position,
      taskRunId,
    );
  }

  get(name: string): TaskRecord | null {
    const row = this.sql.exec<TaskRow>("SELECT * FROM tasks WHERE name = ?", name).toArray()[0];
    return row ? toTask(row) : null;
  }

  all(): TaskRecord[] {
    return this.sql.exec<TaskRow>("SELECT * FROM tasks ORDER BY position").toArray().map(toTask);
  }

  statuses(): Map<string, TaskStatus> {
    const rows = this.sql.exec<{ name: string; status: string }>("SELECT name, status FROM tasks").toArray();
    return new Map(rows.map((r) => [r.name, r.status as TaskStatus]));
  }

  /** Queues a new attempt of a task; returns the attempt number. */
  queue(name: string, now: number, retryCount: number): number {
    const row = this.sql
      .exec<{ attempt: number }>(
        `UPDATE tasks SET status = 'QUEUED', attempt = attempt + 1, retry_count = ?, invocation = 0,
           queued_at = ?, started_at = NULL, finished_at = NULL, error = NULL, output = NULL, queued_reason = NULL
         WHERE name = ? RETURNING attempt`,
        retryCount,
        now,
        name,
      )
      .toArray()[0];
    if (!row) throw new Error(`no task '${name}'`);
    this.sql.exec(
      "INSERT INTO attempts (task, attempt, retry_count, status, queued_at) VALUES (?, ?, ?, 'QUEUED', ?)",
      name,
      row.attempt,
      retryCount,
      now,
    );
    return row.attempt;
  }

  /** Queues the next invocation of a durable task's current attempt (after a wait is satisfied). */
  requeueInvocation(name: string, now: number): number {
    const row = this.sql
      .exec<{ invocation: number }>(
        "UPDATE tasks SET status = 'QUEUED', evicted = 0, invocation = invocation + 1, queued_at = ? WHERE name = ? RETURNING invocation",
        now,
        name,
      )
      .toArray()[0];
    if (!row) throw new Error(`no task '${name}'`);
    return row.invocation;
  }

  start(name: string, attempt: number, now: number, claimMessage: string | null): void {
    this.sql.exec(
      `UPDATE tasks SET status = 'RUNNING', evicted = 0, started_at = COALESCE(started_at, ?),
         first_started_at = COALESCE(first_started_at, ?), queued_reason = NULL, claim_message = ? WHERE name = ?`,
      now,
      now,
      claimMessage,
      name,
    );
    this.sql.exec(
      "UPDATE attempts SET status = 'RUNNING', started_at = COALESCE(started_at, ?) WHERE task = ? AND attempt = ?",
      now,
      name,
      attempt,
    );
  }

  finish(
    name: string,
    attempt: number,
    status: "COMPLETED" | "FAILED" | "CANCELLED",
    now: number,
    result: { output?: unknown; error?: ErrorData | null },
  ): void {
    this.sql.exec(
      "UPDATE tasks SET status = ?, output = ?, error = ?, finished_at = ?, queued_reason = NULL, evicted = 0 WHERE name = ?",
      status,
      toJson(result.output),
      toJson(result.error ?? null),
      now,
      name,
    );
    this.closeAttempt(name, attempt, status, now, result.error ?? null);
  }

  /** Ends the record of one attempt; the task itself may go on (a retry). */
  closeAttempt(name: string, attempt: number, status: "COMPLETED" | "FAILED" | "CANCELLED", now: number, error: ErrorData | null): void {
    this.sql.exec(
      "UPDATE attempts SET status = ?, finished_at = ?, error = ? WHERE task = ? AND attempt = ? AND finished_at IS NULL",
      status,
      now,
      toJson(error),
      name,
      attempt,
    );
  }

  /** A durable task's invocation ended at a wait: it stays RUNNING, holding no slot. */
  evict(name: string): void {
    this.sql.exec("UPDATE tasks SET evicted = 1 WHERE name = ?", name);
  }

  /** The stored size of these tasks' outputs, in bytes. */
  outputBytes(names: readonly string[]): number {
    const wanted = new Set(names);
    return this.sql
      .exec<{ name: string; n: number | null }>("SELECT name, LENGTH(CAST(output AS BLOB)) AS n FROM tasks WHERE output IS NOT NULL")
      .toArray()
      .reduce((sum, r) => sum + (wanted.has(r.name) ? (r.n ?? 0) : 0), 0);
  }

  /** Marks a task that never ran (cancelled upstream, skipped, or not needed). */
  settle(name: string, status: "CANCELLED" | "SKIPPED", now: number, error: ErrorData | null = null): void {
    this.sql.exec(
      "UPDATE tasks SET status = ?, finished_at = ?, error = ?, queued_reason = NULL, evicted = 0 WHERE name = ?",
      status,
      now,
      toJson(error),
      name,
    );
  }

  /** Back to PENDING for a replay; the attempt counter keeps counting so keys stay unique. */
  reset(name: string): void {
    this.sql.exec(
      `UPDATE tasks SET status = 'PENDING', retry_count = 0, output = NULL, error = NULL, evicted = 0,
         queued_at = NULL, started_at = NULL, first_started_at = NULL, finished_at = NULL, queued_reason = NULL WHERE name = ?`,
      name,
    );
  }

  setQueuedReason(name: string, attempt: number, reason: string | null): boolean {
    const changed = this.sql.exec(
      "UPDATE tasks SET queued_reason = ? WHERE name = ? AND attempt = ? AND status = 'QUEUED'",
      reason,
      name,
      attempt,
    ).rowsWritten;
    return changed > 0;
  }

  /** Records that a running claim was lost (a second report of the same claim changes nothing). */
  recordLost(name: string, attempt: number, invocation: number, now: number, reason: string): void {
    this.sql.exec(
      "INSERT INTO lost_dispatches (task, attempt, invocation, at, reason) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
      name,
      attempt,
      invocation,
      now,
      reason,
    );
  }

  lostCount(name: string, attempt: number): number {
    return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM lost_dispatches WHERE task = ? AND attempt = ?", name, attempt).toArray()[0]?.n ?? 0;
  }

  lostDispatches(name: string): LostDispatch[] {
    return this.sql
      .exec<{ attempt: number; invocation: number; at: number; reason: string }>(
        "SELECT attempt, invocation, at, reason FROM lost_dispatches WHERE task = ? ORDER BY attempt, invocation",
        name,
      )
      .toArray()
      .map((r) => ({ attempt: r.attempt, invocation: r.invocation, at: r.at, reason: r.reason }));
  }

  attempts(name: string): AttemptRecord[] {
    return this.sql
      .exec<AttemptRow>("SELECT * FROM attempts WHERE task = ? ORDER BY attempt", name)
      .toArray()
      .map((r) => ({
        task: r.task,
        attempt: r.attempt,
        retryCount: r.retry_count,
        status: r.status as TaskStatus,
        queuedAt: r.queued_at,
        startedAt: r.started_at,
        finishedAt: r.finished_at,
        error: parseJson<ErrorData>(r.error),
      }));
  }

  /**
   * Stores log lines of one dispatch: `first` is the place of `lines[0]` among the lines the
   * dispatch logged. Lines arrive live while the task runs and again with its outcome (and a
   * delivery may repeat): each place is stored once.
   */
  appendLogs(task: string, attempt: number, invocation: number, lines: LogLine[], first = 0): void {
    if (lines.length === 0) return;
    const known = this.sql
      .exec("SELECT 1 FROM attempts WHERE task = ? AND attempt = ?", task, attempt)
      .toArray().length;
    if (!known) return;
    let have =
      this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM logs WHERE task = ? AND attempt = ?", task, attempt).toArray()[0]?.n ?? 0;
    for (const [i, line] of lines.entries()) {
      if (have >= MAX_LOG_LINES_PER_ATTEMPT) return;
      const written = this.sql.exec(
        `INSERT INTO logs (task, attempt, invocation, line, at, level, message) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (task, attempt, invocation, line) DO NOTHING`,
        task,
        attempt,
        invocation,
        first + i,
        line.at,
        line.level,
        String(line.message).slice(0, MAX_LOG_LINE_CHARS),
      ).rowsWritten;
      if (written > 0) have++;
    }
  }

  logs(task: string): (LogLine & { attempt: number })[] {
    return this.sql
      .exec<LogRow>("SELECT task, attempt, at, level, message FROM logs WHERE task = ? ORDER BY attempt, invocation, line, id", task)
      .toArray()
      .map((r) => ({ attempt: r.attempt, at: r.at, level: r.level as LogLine["level"], message: r.message }));
  }
}
