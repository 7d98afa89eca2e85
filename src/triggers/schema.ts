import type { Migration } from "../storage/migrate";

/** The `Triggers` object's schema: filters, crons, one-time schedules and webhook receivers of a tenant. */
export const TRIGGER_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "filters, crons, schedules, webhooks",
    sql: [
      "CREATE TABLE config (id INTEGER PRIMARY KEY CHECK (id = 1), tenant TEXT NOT NULL)",
      `CREATE TABLE filters (
        id TEXT PRIMARY KEY,
        workflow TEXT NOT NULL,
        expression TEXT NOT NULL,
        scope TEXT,
        payload TEXT,
        worker TEXT,
        created_at INTEGER NOT NULL
      )`,
      "CREATE INDEX filters_workflow ON filters (workflow, id)",
      `CREATE TABLE crons (
        id TEXT PRIMARY KEY,
        workflow TEXT NOT NULL,
        name TEXT NOT NULL,
        expression TEXT NOT NULL,
        timezone TEXT NOT NULL,
        input TEXT,
        metadata TEXT NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('declared', 'api')),
        worker TEXT,
        next_at INTEGER,
        last_run_at INTEGER,
        created_at INTEGER NOT NULL,
        UNIQUE (workflow, name)
      )`,
      "CREATE INDEX crons_next ON crons (next_at)",
      `CREATE TABLE schedules (
        id TEXT PRIMARY KEY,
        workflow TEXT NOT NULL,
        at INTEGER NOT NULL,
        input TEXT,
        metadata TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('SCHEDULED', 'FIRED', 'FAILED')),
        run_id TEXT NOT NULL UNIQUE,
        error TEXT,
        retry_at INTEGER,
        created_at INTEGER NOT NULL,
        fired_at INTEGER
      )`,
      "CREATE INDEX schedules_due ON schedules (status, at)",
      `CREATE TABLE webhooks (
        name TEXT PRIMARY KEY,
        event_key TEXT NOT NULL,
        secret TEXT NOT NULL,
        signature TEXT NOT NULL,
        updated_at INTEGER NOT NULL
      )`,
    ],
  },
];
