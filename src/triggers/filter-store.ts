import type { FilterSpec, FilterView } from "@spindle/worker-sdk/protocol";
import { iso } from "../core/clock";
import type { StoredFilter } from "../core/triggers";
import { parseJson, toJson } from "../storage/migrate";

interface FilterRow extends Record<string, SqlStorageValue> {
  id: string;
  workflow: string;
  expression: string;
  scope: string | null;
  payload: string | null;
  worker: string | null;
  created_at: number;
}

const toView = (r: FilterRow): FilterView => ({
  id: r.id,
  workflow: r.workflow,
  expression: r.expression,
  scope: r.scope,
  payload: parseJson(r.payload),
  declared: r.worker !== null,
  createdAt: iso(r.created_at)!,
});

/** A tenant's event filters: created through the API, or declared with a workflow (`worker` set). */
export class FilterStore {
  constructor(private readonly sql: SqlStorage) {}

  insert(id: string, workflow: string, spec: FilterSpec, now: number, worker: string | null = null): void {
    this.sql.exec(
      "INSERT INTO filters (id, workflow, expression, scope, payload, worker, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
      id,
      workflow,
      spec.expression,
      spec.scope ?? null,
      toJson(spec.payload),
      worker,
      now,
    );
  }

  get(id: string): FilterView | null {
    const r = this.sql.exec<FilterRow>("SELECT * FROM filters WHERE id = ?", id).toArray()[0];
    return r ? toView(r) : null;
  }

  delete(id: string): boolean {
    return this.sql.exec("DELETE FROM filters WHERE id = ?", id).rowsWritten > 0;
  }

  /** The filters of these workflows, by workflow. */
  forWorkflows(workflows: string[]): Record<string, StoredFilter[]> {
    const out: Record<string, StoredFilter[]> = {};
    for (const w of workflows) {
      out[w] = this.sql
        .exec<FilterRow>("SELECT * FROM filters WHERE workflow = ? ORDER BY id", w)
        .toArray()
        .map((r) => ({ id: r.id, expression: r.expression, scope: r.scope ?? undefined, payload: parseJson(r.payload) ?? undefined }));
    }
    return out;
  }

  /** Newest first; `cursor` is the last id of the previous page. */
  list(workflow: string | undefined, limit: number, cursor: string | undefined): FilterView[] {
    const where: string[] = [];
    const args: SqlStorageValue[] = [];
    if (workflow) where.push("workflow = ?"), args.push(workflow);
    if (cursor) where.push("id < ?"), args.push(cursor);
    return this.sql
      .exec<FilterRow>(`SELECT * FROM filters ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id DESC LIMIT ?`, ...args, limit)
      .toArray()
      .map(toView);
  }

  /** Declared filters of a worker: the given ones stay (or are added), every other one goes. */
  syncDeclared(worker: string, declared: { id: string; workflow: string; spec: FilterSpec }[], now: number): void {
    const keep = new Set(declared.map((d) => d.id));
    for (const r of this.sql.exec<{ id: string }>("SELECT id FROM filters WHERE worker = ?", worker).toArray()) {
      if (!keep.has(r.id)) this.sql.exec("DELETE FROM filters WHERE id = ?", r.id);
    }
    for (const d of declared) this.insert(d.id, d.workflow, d.spec, now, worker);
  }
}
