import { DurableObject } from "cloudflare:workers";
import type { RunFilter, RunParentView, RunStatus, RunSummary } from "@spindle/worker-sdk/protocol";
import { iso } from "../core/clock";
import type { Env } from "../env";
import { migrate, parseJson, type Migration } from "../storage/migrate";

/**
 * A searchable list of a tenant's runs, in `RUN_INDEX_SHARDS` shards (by run id) so no single
 * object sits on every run's path. Each run's object reports its status changes here through its
 * outbox, stamped with a version so a late, older report never overwrites a newer one.
 */
const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "runs",
    sql: [
      `CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        workflow TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('QUEUED','RUNNING','COMPLETED','FAILED','CANCELLED')),
        metadata TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        finished_at INTEGER,
        parent TEXT,
        version INTEGER NOT NULL
      )`,
      "CREATE INDEX runs_workflow ON runs (workflow, run_id)",
      "CREATE INDEX runs_status ON runs (status, run_id)",
      "CREATE INDEX runs_created ON runs (created_at)",
    ],
  },
];

export interface IndexEntry {
  runId: string;
  workflow: string;
  status: RunStatus;
  metadata: Record<string, string>;
  createdAt: number;
  finishedAt: number | null;
  parent: RunParentView | null;
  version: number;
}

interface IndexRow extends Record<string, SqlStorageValue> {
  run_id: string;
  workflow: string;
  status: string;
  metadata: string;
  created_at: number;
  finished_at: number | null;
  parent: string | null;
}

export class RunIndex extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    void ctx.blockConcurrencyWhile(async () => {
      migrate(ctx.storage, MIGRATIONS);
    });
  }

  async upsert(entry: IndexEntry): Promise<void> {
    this.ctx.storage.sql.exec(
      `INSERT INTO runs (run_id, workflow, status, metadata, created_at, finished_at, parent, version)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, finished_at = excluded.finished_at,
         version = excluded.version
       WHERE excluded.version > runs.version`,
      entry.runId,
      entry.workflow,
      entry.status,
      JSON.stringify(entry.metadata),
      entry.createdAt,
      entry.finishedAt,
      entry.parent ? JSON.stringify(entry.parent) : null,
      entry.version,
    );
  }

  /** Newest first; `cursor` is the last run id of the previous page. */
  async list(filter: RunFilter, limit: number): Promise<RunSummary[]> {
    const where: string[] = [];
    const args: SqlStorageValue[] = [];
    if (filter.workflow) {
      where.push("workflow = ?");
      args.push(filter.workflow);
    }
    if (filter.status && filter.status.length > 0) {
      where.push(`status IN (${filter.status.map(() => "?").join(",")})`);
      args.push(...filter.status);
    }
    if (filter.since) {
      where.push("created_at >= ?");
      args.push(Date.parse(filter.since));
    }
    if (filter.until) {
      where.push("created_at < ?");
      args.push(Date.parse(filter.until));
    }
    for (const [key, value] of Object.entries(filter.metadata ?? {})) {
      where.push("json_extract(metadata, ?) = ?");
      args.push(`$."${key.replace(/"/g, '""')}"`, value);
    }
    if (filter.cursor) {
      where.push("run_id < ?");
      args.push(filter.cursor);
    }
    const sql = `SELECT * FROM runs ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY run_id DESC LIMIT ?`;
    return this.ctx.storage.sql
      .exec<IndexRow>(sql, ...args, limit)
      .toArray()
      .map((r) => ({
        runId: r.run_id,
        workflow: r.workflow,
        status: r.status as RunStatus,
        additionalMetadata: JSON.parse(r.metadata) as Record<string, string>,
        createdAt: iso(r.created_at)!,
        finishedAt: iso(r.finished_at),
        parent: parseJson<RunParentView>(r.parent),
      }));
  }
}
