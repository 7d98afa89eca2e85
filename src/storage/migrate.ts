/**
 * Ordered schema migrations for a Durable Object's SQLite, with a version row. Applied in the
 * object's constructor inside `blockConcurrencyWhile`; each migration runs in one transaction with
 * its version bump, so a crash mid-migration leaves the previous version intact and re-running is
 * a no-op.
 */
export interface Migration {
  version: number;
  description: string;
  sql: string[];
}

export function migrate(storage: DurableObjectStorage, migrations: readonly Migration[]): number {
  const sql = storage.sql;
  sql.exec("CREATE TABLE IF NOT EXISTS _schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)");
  const row = sql.exec<{ version: number }>("SELECT version FROM _schema WHERE id = 1").toArray()[0];
  let current = row?.version ?? 0;
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    if (m.version <= current) continue;
    storage.transactionSync(() => {
      for (const statement of m.sql) sql.exec(statement);
      sql.exec(
        "INSERT INTO _schema (id, version) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET version = excluded.version",
        m.version,
      );
    });
    current = m.version;
  }
  return current;
}

/** The version installed, without creating anything: 0 when the object has no schema yet. */
export function installedVersion(storage: DurableObjectStorage): number {
  const installed = storage.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_schema'").toArray().length > 0;
  return installed ? schemaVersion(storage) : 0;
}

export function schemaVersion(storage: DurableObjectStorage): number {
  const row = storage.sql.exec<{ version: number }>("SELECT version FROM _schema WHERE id = 1").toArray()[0];
  return row?.version ?? 0;
}

/** Parses a JSON column, keeping SQL NULL as `null`. */
export function parseJson<T>(text: string | null | undefined): T | null {
  return text === null || text === undefined ? null : (JSON.parse(text) as T);
}

export function toJson(value: unknown): string | null {
  return value === undefined ? null : JSON.stringify(value);
}
