import type { ErrorData, ParentLink, RunStatus, RunTrigger, WorkflowDefinition } from "@spindle/worker-sdk/protocol";
import { parseJson, toJson } from "../storage/migrate";

/** The one row that describes a run. */
export interface RunRecord {
  runId: string;
  tenant: string;
  workflow: string;
  worker: string;
  definition: WorkflowDefinition;
  input: unknown;
  metadata: Record<string, string>;
  priority: number;
  status: RunStatus;
  version: number;
  error: ErrorData | null;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  parent: ParentLink | null;
  trigger: RunTrigger | null;
  /** How many task queues share each pool of its worker (fixed when the run is created). */
  queueShards: number;
}

interface RunRow extends Record<string, SqlStorageValue> {
  run_id: string;
  tenant: string;
  workflow: string;
  worker: string;
  definition: string;
  input: string | null;
  metadata: string;
  priority: number;
  status: string;
  version: number;
  output: string | null;
  error: string | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  parent: string | null;
  trigger: string | null;
  queue_shards: number;
}

export type NewRun = Omit<RunRecord, "status" | "version" | "error" | "startedAt" | "finishedAt">;

export class RunStore {
  /** The definition is immutable once written; parse it once per object instance. */
  private definition: WorkflowDefinition | null = null;

  constructor(private readonly sql: SqlStorage) {}

  insert(run: NewRun): void {
    this.sql.exec(
      `INSERT INTO run (id, run_id, tenant, workflow, worker, definition, input, metadata, priority, status, created_at, parent, trigger, queue_shards)
       VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, 'QUEUED', ?, ?, ?, ?)`,
      run.runId,
      run.tenant,
      run.workflow,
      run.worker,
      JSON.stringify(run.definition),
      toJson(run.input),
      JSON.stringify(run.metadata),
      run.priority,
      run.createdAt,
      toJson(run.parent),
      toJson(run.trigger ?? undefined),
      run.queueShards,
    );
  }

  exists(): boolean {
    return this.sql.exec("SELECT 1 FROM run WHERE id = 1").toArray().length > 0;
  }

  get(): RunRecord | null {
    const r = this.sql.exec<RunRow>("SELECT * FROM run WHERE id = 1").toArray()[0];
    if (!r) return null;
    this.definition ??= JSON.parse(r.definition) as WorkflowDefinition;
    return {
      runId: r.run_id,
      tenant: r.tenant,
      workflow: r.workflow,
      worker: r.worker,
      definition: this.definition,
      input: parseJson(r.input),
      metadata: JSON.parse(r.metadata) as Record<string, string>,
      priority: r.priority,
      status: r.status as RunStatus,
      version: r.version,
      error: parseJson<ErrorData>(r.error),
      createdAt: r.created_at,
      startedAt: r.started_at,
      finishedAt: r.finished_at,
      parent: parseJson<ParentLink>(r.parent),
      trigger: parseJson<RunTrigger>(r.trigger),
      queueShards: r.queue_shards,
    };
  }

  status(): RunStatus | null {
    return (this.sql.exec<{ status: string }>("SELECT status FROM run WHERE id = 1").toArray()[0]?.status as RunStatus) ?? null;
  }

  markStarted(now: number): boolean {
    return (
      this.sql.exec(
        "UPDATE run SET status = 'RUNNING', started_at = COALESCE(started_at, ?), version = version + 1 WHERE id = 1 AND status = 'QUEUED'",
        now,
      ).rowsWritten > 0
    );
  }

  /**
   * The run's output is not stored here: a DAG's is every task's output, which would make one value
   * grow with the number of tasks. The view assembles it from the task rows (`runOutput`).
   */
  end(status: "COMPLETED" | "FAILED" | "CANCELLED", now: number, error: ErrorData | null): void {
    this.sql.exec(
      "UPDATE run SET status = ?, output = NULL, error = ?, finished_at = ?, version = version + 1 WHERE id = 1",
      status,
      toJson(error),
      now,
    );
  }

  reopen(): void {
    this.sql.exec(
      `UPDATE run SET status = CASE WHEN started_at IS NULL THEN 'QUEUED' ELSE 'RUNNING' END,
         output = NULL, error = NULL, finished_at = NULL, version = version + 1 WHERE id = 1`,
    );
  }

  /** A child run linked itself to this run. Keeps any outcome already reported. */
  addChild(runId: string, task: string, position: number): void {
    this.sql.exec(
      "INSERT INTO children (run_id, task, position) VALUES (?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET task = excluded.task, position = excluded.position",
      runId,
      task,
      position,
    );
  }

  /** A durable task's checkpoint `seq` waits on these children (in this order). */
  addWaitedChildren(task: string, seq: number, runIds: readonly string[]): void {
    runIds.forEach((runId, position) =>
      this.sql.exec(
        `INSERT INTO children (run_id, task, position, seq) VALUES (?, ?, ?, ?)
         ON CONFLICT (run_id) DO UPDATE SET task = excluded.task, position = excluded.position, seq = excluded.seq`,
        runId,
        task,
        position,
        seq,
      ),
    );
  }

  /** A replayed task starts afresh: its old children no longer belong to any checkpoint of it. */
  detachChildren(task: string): void {
    this.sql.exec("UPDATE children SET seq = NULL WHERE task = ?", task);
  }

  /** The checkpoint a child is waited on by, if any. */
  waitOf(childRunId: string): { task: string; seq: number } | null {
    const row = this.sql
      .exec<{ task: string; seq: number | null }>("SELECT task, seq FROM children WHERE run_id = ?", childRunId)
      .toArray()[0];
    return row && row.seq !== null ? { task: row.task, seq: row.seq } : null;
  }

  /** How many children of a checkpoint have not ended yet. */
  unfinishedChildren(task: string, seq: number): number {
    return (
      this.sql
        .exec<{ n: number }>("SELECT COUNT(*) AS n FROM children WHERE task = ? AND seq = ? AND status IS NULL", task, seq)
        .toArray()[0]?.n ?? 0
    );
  }

  /** The outcomes of a checkpoint's children, in spawn order. */
  waitedOutcomes(task: string, seq: number): { runId: string; status: string; output: unknown; error: ErrorData | null }[] {
    return this.sql
      .exec<{ run_id: string; status: string; output: string | null; error: string | null }>(
        "SELECT run_id, status, output, error FROM children WHERE task = ? AND seq = ? ORDER BY position",
        task,
        seq,
      )
      .toArray()
      .map((r) => ({ runId: r.run_id, status: r.status, output: parseJson(r.output), error: parseJson<ErrorData>(r.error) }));
  }

  /** The stored size of the outputs of the children a task's checkpoints wait on, in bytes. */
  waitedOutputBytes(task: string): number {
    return (
      this.sql
        .exec<{ n: number | null }>("SELECT SUM(LENGTH(CAST(output AS BLOB))) AS n FROM children WHERE task = ? AND seq IS NOT NULL", task)
        .toArray()[0]?.n ?? 0
    );
  }

  /** A child run ended (its report may arrive before its link). */
  childEnded(runId: string, task: string, status: string, output: unknown, error: ErrorData | null): void {
    this.sql.exec(
      `INSERT INTO children (run_id, task, position, status, output, error) VALUES (?, ?, -1, ?, ?, ?)
       ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, output = excluded.output, error = excluded.error`,
      runId,
      task,
      status,
      toJson(output),
      toJson(error),
    );
  }

  children(): string[] {
    return this.sql.exec<{ run_id: string }>("SELECT run_id FROM children ORDER BY run_id").toArray().map((r) => r.run_id);
  }
}
