import type { ScheduleStatus, ScheduleView } from "@spindle/worker-sdk/protocol";
import { iso } from "../core/clock";
import { parseJson, toJson } from "../storage/migrate";

export interface ScheduleRecord {
  id: string;
  workflow: string;
  at: number;
  input: unknown;
  metadata: Record<string, string>;
  status: ScheduleStatus;
  /** Chosen when the schedule is created: firing again finds the same run. */
  runId: string;
  error: string | null;
  retryAt: number | null;
  createdAt: number;
  firedAt: number | null;
}

interface ScheduleRow extends Record<string, SqlStorageValue> {
  id: string;
  workflow: string;
  at: number;
  input: string | null;
  metadata: string;
  status: string;
  run_id: string;
  error: string | null;
  retry_at: number | null;
  created_at: number;
  fired_at: number | null;
}

const toRecord = (r: ScheduleRow): ScheduleRecord => ({
  id: r.id,
  workflow: r.workflow,
  at: r.at,
  input: parseJson(r.input),
  metadata: JSON.parse(r.metadata) as Record<string, string>,
  status: r.status as ScheduleStatus,
  runId: r.run_id,
  error: r.error,
  retryAt: r.retry_at,
  createdAt: r.created_at,
  firedAt: r.fired_at,
});

export const scheduleView = (s: ScheduleRecord): ScheduleView => ({
  scheduleId: s.id,
  workflow: s.workflow,
  at: iso(s.at)!,
  input: s.input,
  additionalMetadata: s.metadata,
  status: s.status,
  runId: s.status === "FIRED" ? s.runId : null,
  error: s.error,
  createdAt: iso(s.createdAt)!,
  firedAt: iso(s.firedAt),
});

/** A tenant's one-time schedules. A schedule fires once: SCHEDULED, then FIRED (or FAILED). */
export class ScheduleStore {
  constructor(private readonly sql: SqlStorage) {}

  insert(s: ScheduleRecord): void {
    this.sql.exec(
      `INSERT INTO schedules (id, workflow, at, input, metadata, status, run_id, error, retry_at, created_at, fired_at)
       VALUES (?, ?, ?, ?, ?, 'SCHEDULED', ?, NULL, NULL, ?, NULL) ON CONFLICT (id) DO NOTHING`,
      s.id,
      s.workflow,
      s.at,
      toJson(s.input),
      JSON.stringify(s.metadata),
      s.runId,
      s.createdAt,
    );
  }

  get(id: string): ScheduleRecord | null {
    const r = this.sql.exec<ScheduleRow>("SELECT * FROM schedules WHERE id = ?", id).toArray()[0];
    return r ? toRecord(r) : null;
  }

  /** Deletes a schedule that has not fired; false otherwise. */
  deleteScheduled(id: string): boolean {
    return this.sql.exec("DELETE FROM schedules WHERE id = ? AND status = 'SCHEDULED'", id).rowsWritten > 0;
  }

  due(now: number): ScheduleRecord[] {
    return this.sql
      .exec<ScheduleRow>("SELECT * FROM schedules WHERE status = 'SCHEDULED' AND COALESCE(retry_at, at) <= ? ORDER BY at LIMIT 100", now)
      .toArray()
      .map(toRecord);
  }

  fired(id: string, now: number): void {
    this.sql.exec("UPDATE schedules SET status = 'FIRED', fired_at = ?, retry_at = NULL WHERE id = ? AND status = 'SCHEDULED'", now, id);
  }

  failed(id: string, error: string, now: number): void {
    this.sql.exec("UPDATE schedules SET status = 'FAILED', error = ?, fired_at = ?, retry_at = NULL WHERE id = ? AND status = 'SCHEDULED'", error, now, id);
  }

  retryLater(id: string, error: string, at: number): void {
    this.sql.exec("UPDATE schedules SET error = ?, retry_at = ? WHERE id = ? AND status = 'SCHEDULED'", error, at, id);
  }

  nextDue(): number | null {
    return this.sql.exec<{ at: number | null }>("SELECT MIN(COALESCE(retry_at, at)) AS at FROM schedules WHERE status = 'SCHEDULED'").toArray()[0]?.at ?? null;
  }

  /** Newest first; `cursor` is the last id of the previous page. */
  list(filter: { workflow?: string; status?: ScheduleStatus }, limit: number, cursor: string | undefined): ScheduleRecord[] {
    const where: string[] = [];
    const args: SqlStorageValue[] = [];
    if (filter.workflow) where.push("workflow = ?"), args.push(filter.workflow);
    if (filter.status) where.push("status = ?"), args.push(filter.status);
    if (cursor) where.push("id < ?"), args.push(cursor);
    return this.sql
      .exec<ScheduleRow>(`SELECT * FROM schedules ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id DESC LIMIT ?`, ...args, limit)
      .toArray()
      .map(toRecord);
  }
}
