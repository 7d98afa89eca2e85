import { DurableObject } from "cloudflare:workers";
import type { RunFilter, RunParentView, RunStatus, RunSummary } from "@spindle/worker-sdk/protocol";
import { iso } from "../core/clock";
import type { Env } from "../env";
import { isUpgrade, LiveSockets } from "../live/live-sockets";
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
  /** The runs pages watching this shard (hibernatable WebSockets). */
  private readonly live: LiveSockets;
  /** Changed runs not yet told to the watchers. */
  private changed = new Map<string, RunSummary>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.live = new LiveSockets(ctx);
    void ctx.blockConcurrencyWhile(async () => {
      migrate(ctx.storage, MIGRATIONS);
    });
  }

  async upsert(entry: IndexEntry): Promise<void> {
    const written = this.ctx.storage.sql.exec(
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
    ).rowsWritten;
    if (written > 0 && this.live.watched) {
      this.changed.set(entry.runId, this.summary(entry.runId)!);
      this.live.changed(() => {
        const runs = [...this.changed.values()];
        this.changed = new Map();
        return { type: "runs", runs };
      });
    }
  }

  /**
   * A runs page watches this shard: it hears of every run that is created or changes status here,
   * as `{ type: "runs", runs: RunSummary[] }`, after a `hello` (on which it reloads what it shows).
   */
  override async fetch(request: Request): Promise<Response> {
    if (!isUpgrade(request)) return new Response("expected a WebSocket", { status: 426 });
    return this.live.accept({ type: "hello" });
  }

  override async webSocketMessage(): Promise<void> {
    // Watchers only listen; their pings are answered by the runtime's auto-response.
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    LiveSockets.closed(ws, code, reason);
  }

  /** How many runs match the filter (its status, cursor and limit aside), per status. */
  async counts(filter: RunFilter): Promise<Partial<Record<RunStatus, number>>> {
    const { where, args } = conditions({ ...filter, status: [], cursor: undefined });
    const rows = this.ctx.storage.sql
      .exec<{ status: string; n: number }>(`SELECT status, COUNT(*) AS n FROM runs ${where} GROUP BY status`, ...args)
      .toArray();
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  private summary(runId: string): RunSummary | null {
    const row = this.ctx.storage.sql.exec<IndexRow>("SELECT * FROM runs WHERE run_id = ?", runId).toArray()[0];
    return row ? toSummary(row) : null;
  }

  /** Newest first; `cursor` is the last run id of the previous page. */
  async list(filter: RunFilter, limit: number): Promise<RunSummary[]> {
    const { where, args } = conditions(filter);
    const sql = `SELECT * FROM runs ${where} ORDER BY run_id DESC LIMIT ?`;
    return this.ctx.storage.sql.exec<IndexRow>(sql, ...args, limit).toArray().map(toSummary);
  }
}

function toSummary(r: IndexRow): RunSummary {
  return {
    runId: r.run_id,
    workflow: r.workflow,
    status: r.status as RunStatus,
    additionalMetadata: JSON.parse(r.metadata) as Record<string, string>,
    createdAt: iso(r.created_at)!,
    finishedAt: iso(r.finished_at),
    parent: parseJson<RunParentView>(r.parent),
  };
}

/** The WHERE clause of a filter (the list's, the counts', the bulk actions'). */
function conditions(filter: RunFilter): { where: string; args: SqlStorageValue[] } {
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
  return { where: where.length ? `WHERE ${where.join(" AND ")}` : "", args };
}
