import type { CronView } from "@spindle/worker-sdk/protocol";
import { iso } from "../core/clock";
import { parseJson, toJson } from "../storage/migrate";

export interface CronRecord {
  id: string;
  workflow: string;
  name: string;
  expression: string;
  timezone: string;
  input: unknown;
  metadata: Record<string, string>;
  source: "declared" | "api";
  worker: string | null;
  nextAt: number | null;
  lastRunAt: number | null;
  createdAt: number;
}

interface CronRow extends Record<string, SqlStorageValue> {
  id: string;
  workflow: string;
  name: string;
  expression: string;
  timezone: string;
  input: string | null;
  metadata: string;
  source: string;
  worker: string | null;
  next_at: number | null;
  last_run_at: number | null;
  created_at: number;
}

const toRecord = (r: CronRow): CronRecord => ({
  id: r.id,
  workflow: r.workflow,
  name: r.name,
  expression: r.expression,
  timezone: r.timezone,
  input: parseJson(r.input),
  metadata: JSON.parse(r.metadata) as Record<string, string>,
  source: r.source as CronRecord["source"],
  worker: r.worker,
  nextAt: r.next_at,
  lastRunAt: r.last_run_at,
  createdAt: r.created_at,
});

export const cronView = (c: CronRecord): CronView => ({
  id: c.id,
  workflow: c.workflow,
  name: c.name,
  expression: c.expression,
  timezone: c.timezone,
  input: c.input,
  additionalMetadata: c.metadata,
  source: c.source,
  nextRunAt: iso(c.nextAt),
  lastRunAt: iso(c.lastRunAt),
  createdAt: iso(c.createdAt)!,
});

/** A tenant's crons; `next_at` is the next tick each one owes (null: it never ticks again). */
export class CronStore {
  constructor(private readonly sql: SqlStorage) {}

  /** Inserts a cron; false if its workflow already has a cron of that name. */
  insert(c: CronRecord): boolean {
    return (
      this.sql.exec(
        `INSERT INTO crons (id, workflow, name, expression, timezone, input, metadata, source, worker, next_at, last_run_at, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (workflow, name) DO NOTHING`,
        c.id,
        c.workflow,
        c.name,
        c.expression,
        c.timezone,
        toJson(c.input),
        JSON.stringify(c.metadata),
        c.source,
        c.worker,
        c.nextAt,
        c.lastRunAt,
        c.createdAt,
      ).rowsWritten > 0
    );
  }

  get(id: string): CronRecord | null {
    const r = this.sql.exec<CronRow>("SELECT * FROM crons WHERE id = ?", id).toArray()[0];
    return r ? toRecord(r) : null;
  }

  byName(workflow: string, name: string): CronRecord | null {
    const r = this.sql.exec<CronRow>("SELECT * FROM crons WHERE workflow = ? AND name = ?", workflow, name).toArray()[0];
    return r ? toRecord(r) : null;
  }

  delete(id: string): boolean {
    return this.sql.exec("DELETE FROM crons WHERE id = ?", id).rowsWritten > 0;
  }

  due(now: number): CronRecord[] {
    return this.sql.exec<CronRow>("SELECT * FROM crons WHERE next_at <= ? ORDER BY next_at", now).toArray().map(toRecord);
  }

  /** Records a tick run: only if the cron still owes the tick it was read with (`dueAt`). */
  ticked(id: string, dueAt: number, ranAt: number, nextAt: number | null): void {
    this.sql.exec("UPDATE crons SET last_run_at = ?, next_at = ? WHERE id = ? AND next_at = ?", ranAt, nextAt, id, dueAt);
  }

  nextDue(): number | null {
    return this.sql.exec<{ at: number | null }>("SELECT MIN(next_at) AS at FROM crons").toArray()[0]?.at ?? null;
  }

  /** Newest first; `cursor` is the last id of the previous page. */
  list(workflow: string | undefined, limit: number, cursor: string | undefined): CronRecord[] {
    const where: string[] = [];
    const args: SqlStorageValue[] = [];
    if (workflow) where.push("workflow = ?"), args.push(workflow);
    if (cursor) where.push("id < ?"), args.push(cursor);
    return this.sql
      .exec<CronRow>(`SELECT * FROM crons ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id DESC LIMIT ?`, ...args, limit)
      .toArray()
      .map(toRecord);
  }

  declaredBy(worker: string): CronRecord[] {
    return this.sql.exec<CronRow>("SELECT * FROM crons WHERE source = 'declared' AND worker = ?", worker).toArray().map(toRecord);
  }

  /** A declared cron's input follows the code; its schedule keeps its next tick. */
  updateDeclaredInput(id: string, input: unknown): void {
    this.sql.exec("UPDATE crons SET input = ? WHERE id = ?", toJson(input), id);
  }
}
