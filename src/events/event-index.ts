import { DurableObject } from "cloudflare:workers";
import type { EventFilter, EventView } from "@spindle/worker-sdk/protocol";
import { clock, iso } from "../core/clock";
import type { Env } from "../env";
import { EngineService } from "../api/service";
import { migrate, parseJson, toJson, type Migration } from "../storage/migrate";

/**
 * A tenant's pushed events, in `EVENT_INDEX_SHARDS` shards (by event id), with the runs each one
 * started (or why it did not start a matching workflow). A push records the event and the runs it
 * plans in one write before creating any of them; the runs' ids derive from the event, so a run
 * created twice is created once. A plan whose runs were not confirmed within START_GRACE_MS (the
 * pushing request died half-way) is finished by the alarm.
 */
const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "events and the runs they started",
    sql: [
      `CREATE TABLE events (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        key TEXT NOT NULL,
        scope TEXT,
        payload TEXT NOT NULL,
        metadata TEXT NOT NULL,
        at INTEGER NOT NULL
      )`,
      "CREATE INDEX events_key ON events (key, id)",
      "CREATE INDEX events_at ON events (at)",
      `CREATE TABLE event_runs (
        event_id TEXT NOT NULL,
        workflow TEXT NOT NULL,
        run_id TEXT,
        status TEXT NOT NULL CHECK (status IN ('planned', 'started', 'refused')),
        filter_id TEXT,
        filter_payload TEXT,
        error TEXT,
        planned_at INTEGER NOT NULL,
        PRIMARY KEY (event_id, workflow)
      )`,
      "CREATE INDEX event_runs_planned ON event_runs (status, planned_at)",
    ],
  },
];

export { EVENT_INDEX_SHARDS } from "../core/names";
/** Events are listed for this long after their push. */
export const EVENT_INDEX_RETENTION_MS = 7 * 24 * 3_600_000;
/** What one shard's page of events may carry (payloads up to 1 MiB each): 4 shards stay well under an RPC's 32 MiB. */
export const EVENT_PAGE_BYTES = 4 * 1024 * 1024;
/** A planned run not confirmed started within this is created by the alarm. */
export const START_GRACE_MS = 30_000;

export interface RecordedEvent {
  id: string;
  key: string;
  scope: string | null;
  payload: unknown;
  metadata: Record<string, string>;
  at: number;
}

/** One matching workflow of an event: a run to start (with the filter that let it through), or a refusal. */
export type PlannedRun =
  | { workflow: string; runId: string; filterId?: string; filterPayload?: unknown }
  | { workflow: string; error: { code: string; message: string; fields?: { path: string; message: string }[] } };

interface EventRow extends Record<string, SqlStorageValue> {
  id: string;
  tenant: string;
  key: string;
  scope: string | null;
  payload: string;
  metadata: string;
  at: number;
}

interface EventRunRow extends Record<string, SqlStorageValue> {
  event_id: string;
  workflow: string;
  run_id: string | null;
  status: string;
  filter_id: string | null;
  filter_payload: string | null;
  error: string | null;
}

export class EventIndex extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    void ctx.blockConcurrencyWhile(async () => {
      migrate(ctx.storage, MIGRATIONS);
    });
  }

  /**
   * Records an event and its plan, once: an event already recorded (a retried push) keeps its
   * first plan, which is returned so the retry starts exactly the runs the first push planned.
   */
  async record(tenant: string, event: RecordedEvent, plan: PlannedRun[]): Promise<PlannedRun[]> {
    const sql = this.ctx.storage.sql;
    const now = clock.now();
    this.ctx.storage.transactionSync(() => {
      const inserted = sql.exec(
        "INSERT INTO events (id, tenant, key, scope, payload, metadata, at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        event.id,
        tenant,
        event.key,
        event.scope,
        JSON.stringify(event.payload ?? null),
        JSON.stringify(event.metadata),
        event.at,
      ).rowsWritten;
      if (!inserted) return;
      for (const p of plan) {
        if ("error" in p) {
          sql.exec("INSERT INTO event_runs (event_id, workflow, status, error, planned_at) VALUES (?, ?, 'refused', ?, ?)", event.id, p.workflow, JSON.stringify(p.error), now);
        } else {
          sql.exec(
            "INSERT INTO event_runs (event_id, workflow, run_id, status, filter_id, filter_payload, planned_at) VALUES (?, ?, ?, 'planned', ?, ?, ?)",
            event.id,
            p.workflow,
            p.runId,
            p.filterId ?? null,
            toJson(p.filterPayload),
            now,
          );
        }
      }
    });
    await this.arm();
    return this.planOf(event.id);
  }

  /** The runs of an event now exist. */
  async started(eventId: string, workflows: string[]): Promise<void> {
    for (const w of workflows) this.ctx.storage.sql.exec("UPDATE event_runs SET status = 'started' WHERE event_id = ? AND workflow = ? AND status = 'planned'", eventId, w);
  }

  async get(eventId: string): Promise<Omit<EventView, "woke"> | null> {
    const r = this.ctx.storage.sql.exec<EventRow>("SELECT * FROM events WHERE id = ?", eventId).toArray()[0];
    return r ? this.view(r) : null;
  }

  /**
   * Newest first; `cursor` is the last event id of the previous page. At most EVENT_PAGE_BYTES of
   * payloads (and at least one event): `truncated` says the shard stopped early, so the merged page
   * must not go past its last event.
   */
  async list(filter: EventFilter, limit: number): Promise<{ events: Omit<EventView, "woke">[]; truncated: boolean }> {
    const where: string[] = [];
    const args: SqlStorageValue[] = [];
    if (filter.key) where.push("key = ?"), args.push(filter.key);
    if (filter.since) where.push("at >= ?"), args.push(Date.parse(filter.since));
    if (filter.until) where.push("at < ?"), args.push(Date.parse(filter.until));
    if (filter.cursor) where.push("id < ?"), args.push(filter.cursor);
    const events: Omit<EventView, "woke">[] = [];
    let bytes = 0;
    for (const r of this.ctx.storage.sql.exec<EventRow>(`SELECT * FROM events ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id DESC LIMIT ?`, ...args, limit)) {
      bytes += r.payload.length + r.metadata.length;
      if (events.length > 0 && bytes > EVENT_PAGE_BYTES) return { events, truncated: true };
      events.push(this.view(r));
    }
    return { events, truncated: false };
  }

  /** Finishes plans whose pushing request did not confirm them; prunes old events. */
  override async alarm(): Promise<void> {
    const sql = this.ctx.storage.sql;
    const now = clock.now();
    const old = sql.exec<{ id: string }>("SELECT id FROM events WHERE at < ?", now - EVENT_INDEX_RETENTION_MS).toArray();
    for (const { id } of old) {
      sql.exec("DELETE FROM event_runs WHERE event_id = ?", id);
      sql.exec("DELETE FROM events WHERE id = ?", id);
    }
    const stale = sql
      .exec<EventRunRow & { tenant: string; key: string; payload: string; metadata: string; at: number }>(
        `SELECT r.*, e.tenant, e.key, e.payload, e.metadata, e.at FROM event_runs r JOIN events e ON e.id = r.event_id
         WHERE r.status = 'planned' AND r.planned_at <= ? LIMIT 100`,
        now - START_GRACE_MS,
      )
      .toArray();
    await Promise.all(
      stale.map(async (r) => {
        try {
          await new EngineService(this.env, r.tenant).startEventRun(
            { id: r.event_id, key: r.key, payload: JSON.parse(r.payload), metadata: JSON.parse(r.metadata) as Record<string, string>, scope: null, at: r.at },
            { workflow: r.workflow, runId: r.run_id!, filterId: r.filter_id ?? undefined, filterPayload: parseJson(r.filter_payload) ?? undefined },
          );
          sql.exec("UPDATE event_runs SET status = 'started' WHERE event_id = ? AND workflow = ?", r.event_id, r.workflow);
        } catch (err) {
          console.error(`event ${r.event_id} could not start its run of ${r.workflow}`, err);
          sql.exec("UPDATE event_runs SET planned_at = ? WHERE event_id = ? AND workflow = ?", clock.now(), r.event_id, r.workflow);
        }
      }),
    );
    await this.arm();
  }

  private planOf(eventId: string): PlannedRun[] {
    return this.ctx.storage.sql
      .exec<EventRunRow>("SELECT * FROM event_runs WHERE event_id = ? ORDER BY workflow", eventId)
      .toArray()
      .map((r) =>
        r.status === "refused"
          ? { workflow: r.workflow, error: JSON.parse(r.error!) as { code: string; message: string } }
          : { workflow: r.workflow, runId: r.run_id!, filterId: r.filter_id ?? undefined, filterPayload: parseJson(r.filter_payload) ?? undefined },
      );
  }

  private view(r: EventRow): Omit<EventView, "woke"> {
    const plan = this.planOf(r.id);
    return {
      eventId: r.id,
      key: r.key,
      payload: JSON.parse(r.payload),
      additionalMetadata: JSON.parse(r.metadata) as Record<string, string>,
      scope: r.scope,
      createdAt: iso(r.at)!,
      runs: plan.flatMap((p) => ("runId" in p ? [{ workflow: p.workflow, runId: p.runId }] : [])),
      refused: plan.flatMap((p) => ("error" in p ? [{ workflow: p.workflow, error: p.error }] : [])),
    };
  }

  private async arm(): Promise<void> {
    const sql = this.ctx.storage.sql;
    const planned = sql.exec<{ at: number | null }>("SELECT MIN(planned_at) AS at FROM event_runs WHERE status = 'planned'").toArray()[0]?.at ?? null;
    const oldest = sql.exec<{ at: number | null }>("SELECT MIN(at) AS at FROM events").toArray()[0]?.at ?? null;
    const next = [planned === null ? null : planned + START_GRACE_MS, oldest === null ? null : oldest + EVENT_INDEX_RETENTION_MS].filter((x): x is number => x !== null);
    if (next.length === 0) return;
    const at = Math.min(...next);
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }
}
