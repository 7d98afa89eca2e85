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

/**
 * The schema a history of migrations ends at, as the statements that create it at once, learnt by
 * this isolate from the first object it brought from nothing to the latest version (read back from
 * `sqlite_master`, so it cannot drift from the history). A new object, the common case by far for
 * run objects, then creates its tables in one short pass instead of replaying every `ALTER TABLE`.
 */
interface Snapshot {
  version: number;
  statements: string[];
}
const snapshots = new WeakMap<readonly Migration[], Snapshot>();

export function migrate(storage: DurableObjectStorage, migrations: readonly Migration[]): number {
  const sql = storage.sql;
  sql.exec("CREATE TABLE IF NOT EXISTS _schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)");
  const row = sql.exec<{ version: number }>("SELECT version FROM _schema WHERE id = 1").toArray()[0];
  let current = row?.version ?? 0;
  const snapshot = current === 0 ? snapshots.get(migrations) : undefined;
  if (snapshot) {
    storage.transactionSync(() => {
      // One call for the whole schema: a new object runs it at its creation, on the trigger's path,
      // and one multi-statement exec costs about a quarter less than a call per statement.
      sql.exec(snapshot.statements.join(";\n"));
      sql.exec("INSERT INTO _schema (id, version) VALUES (1, ?)", snapshot.version);
    });
    return snapshot.version;
  }
  const fromNothing = current === 0;
  // Tables the history did not create (the local runtime keeps an object's name in one) are not
  // part of the snapshot, and their rows do not stop it.
  const foreign = fromNothing ? new Set(objectsOf(sql).map((o) => o.table)) : new Set<string>();
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
  if (fromNothing && current > 0) learnSnapshot(sql, migrations, current, foreign);
  return current;
}

/** The schema's own objects: not SQLite's, not the runtime's (`_cf_`), not the version row. */
function objectsOf(sql: SqlStorage): { type: string; name: string; table: string; sql: string | null }[] {
  return sql
    .exec<{ type: string; name: string; table: string; sql: string | null }>(
      "SELECT type, name, tbl_name AS \"table\", sql FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' AND name <> '_schema' ORDER BY type = 'index', rowid",
    )
    .toArray();
}

/**
 * Keeps the schema just built from nothing as the snapshot for the next new object, unless the
 * history also wrote rows (a snapshot holds only the schema).
 */
function learnSnapshot(sql: SqlStorage, migrations: readonly Migration[], version: number, foreign: Set<string>): void {
  const objects = objectsOf(sql).filter((o) => !foreign.has(o.table));
  for (const o of objects) {
    if (o.type !== "table") continue;
    if (sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM "${o.name}"`).one().n > 0) return;
  }
  snapshots.set(migrations, { version, statements: objects.filter((o) => o.sql !== null).map((o) => o.sql!) });
}

/** Whether new objects of this history are created from a snapshot (an object has been built from nothing by it in this isolate). */
export function hasSnapshot(migrations: readonly Migration[]): boolean {
  return snapshots.has(migrations);
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
