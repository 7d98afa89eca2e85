import { DurableObject } from "cloudflare:workers";
import { clock } from "../core/clock";
import { IDEMPOTENCY_TTL_MS, type IdempotencyClaim, type IdempotencyScope, type ReserveReply } from "../core/idempotency";
import type { Env } from "../env";
import { migrate, type Migration } from "../storage/migrate";

export const IDEMPOTENCY_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "idempotency keys",
    sql: [
      `CREATE TABLE keys (
        scope TEXT NOT NULL CHECK (scope IN ('run', 'event')),
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        id TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (scope, key)
      ) WITHOUT ROWID`,
      "CREATE INDEX keys_expiry ON keys (expires_at)",
    ],
  },
];

interface KeyRow extends Record<string, SqlStorageValue> {
  fingerprint: string;
  id: string;
}

/**
 * One shard of a tenant's idempotency keys (`idem:<tenant>:<shard>`). A key is reserved for an id
 * chosen before anything is created; the caller then creates the run or event under that id, which
 * is idempotent per id. So a request that died after the reservation is finished by its retry, and
 * two requests racing with one key get the same id: this object answers one call at a time, and a
 * reservation is one synchronous transaction. Keys expire IDEMPOTENCY_TTL_MS after their first use;
 * the alarm deletes them.
 */
export class IdempotencyKeys extends DurableObject<Env> {
  /** The alarm as last set, so a reservation does not read it back each time. */
  private alarmAt: number | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    void ctx.blockConcurrencyWhile(async () => {
      migrate(ctx.storage, IDEMPOTENCY_MIGRATIONS);
      this.alarmAt = await ctx.storage.getAlarm();
    });
  }

  /** Binds every claim's key to its id, unless one is bound to a different request: then none. */
  async reserve(claims: IdempotencyClaim[]): Promise<ReserveReply> {
    const now = clock.now();
    const sql = this.ctx.storage.sql;
    const ids: { id: string; existing: boolean }[] = [];
    const conflicts: number[] = [];
    try {
      this.ctx.storage.transactionSync(() => {
        for (const [i, c] of claims.entries()) {
          const row = sql
            .exec<KeyRow>("SELECT fingerprint, id FROM keys WHERE scope = ? AND key = ? AND expires_at > ?", c.scope, c.key, now)
            .toArray()[0];
          if (row) {
            if (row.fingerprint === c.fingerprint) ids.push({ id: row.id, existing: true });
            else conflicts.push(i);
            continue;
          }
          // An expired row the alarm has not deleted yet is replaced.
          sql.exec(
            `INSERT INTO keys (scope, key, fingerprint, id, expires_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (scope, key) DO UPDATE SET fingerprint = excluded.fingerprint, id = excluded.id, expires_at = excluded.expires_at`,
            c.scope,
            c.key,
            c.fingerprint,
            c.id,
            now + IDEMPOTENCY_TTL_MS,
          );
          ids.push({ id: c.id, existing: false });
        }
        // Roll back what this call reserved: all or nothing.
        if (conflicts.length) throw new ConflictRollback();
      });
    } catch (err) {
      if (err instanceof ConflictRollback) return { ok: false, conflicts };
      throw err;
    }
    if (ids.some((x) => !x.existing)) this.arm();
    return { ok: true, ids };
  }

  /** Forgets keys this request reserved but could not use (another shard refused the batch). */
  async release(keys: { scope: IdempotencyScope; key: string; id: string }[]): Promise<void> {
    this.ctx.storage.transactionSync(() => {
      for (const k of keys) this.ctx.storage.sql.exec("DELETE FROM keys WHERE scope = ? AND key = ? AND id = ?", k.scope, k.key, k.id);
    });
  }

  override async alarm(): Promise<void> {
    this.ctx.storage.sql.exec("DELETE FROM keys WHERE expires_at <= ?", clock.now());
    this.alarmAt = null;
    this.arm();
  }

  /** Points the alarm at the next expiry; set in the caller's turn, so it commits with its write. */
  private arm(): void {
    const next = this.ctx.storage.sql.exec<{ next: number | null }>("SELECT MIN(expires_at) AS next FROM keys").toArray()[0]?.next ?? null;
    if (next === null || (this.alarmAt !== null && this.alarmAt <= next)) return;
    this.alarmAt = next;
    this.ctx.storage.setAlarm(next).catch((err: unknown) => console.error("could not set the idempotency keys' alarm", err));
  }
}

class ConflictRollback extends Error {}
