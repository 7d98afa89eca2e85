import type { Migration } from "../storage/migrate";

/**
 * The `WorkflowRun` object's schema: one migration per change, never edited once shipped. (Nothing
 * has shipped yet, so this is one migration: a new run object, the common case by far, creates its
 * tables in one short transaction instead of replaying a history.)
 */
export const RUN_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "run, tasks, attempts, logs, timers, alarm, outbox, children, durable event log, conditions",
    sql: [
      `CREATE TABLE run (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        run_id TEXT NOT NULL,
        tenant TEXT NOT NULL,
        workflow TEXT NOT NULL,
        worker TEXT NOT NULL,
        definition TEXT NOT NULL,
        input TEXT,
        metadata TEXT NOT NULL,
        priority INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('QUEUED','RUNNING','COMPLETED','FAILED','CANCELLED')),
        version INTEGER NOT NULL DEFAULT 0,
        output TEXT,
        error TEXT,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        finished_at INTEGER,
        parent TEXT
      )`,
      `CREATE TABLE tasks (
        name TEXT PRIMARY KEY,
        position INTEGER NOT NULL,
        task_run_id TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('PENDING','QUEUED','RUNNING','COMPLETED','FAILED','CANCELLED','SKIPPED')),
        attempt INTEGER NOT NULL DEFAULT 0,
        retry_count INTEGER NOT NULL DEFAULT 0,
        invocation INTEGER NOT NULL DEFAULT 0,
        evicted INTEGER NOT NULL DEFAULT 0,
        output TEXT,
        error TEXT,
        queued_at INTEGER,
        started_at INTEGER,
        first_started_at INTEGER,
        finished_at INTEGER,
        queued_reason TEXT
      )`,
      `CREATE TABLE attempts (
        task TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        retry_count INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('QUEUED','RUNNING','COMPLETED','FAILED','CANCELLED')),
        queued_at INTEGER NOT NULL,
        started_at INTEGER,
        finished_at INTEGER,
        error TEXT,
        PRIMARY KEY (task, attempt)
      )`,
      `CREATE TABLE logs (
        id INTEGER PRIMARY KEY,
        task TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        invocation INTEGER NOT NULL DEFAULT 0,
        at INTEGER NOT NULL,
        level TEXT NOT NULL CHECK (level IN ('info','warn','error')),
        message TEXT NOT NULL
      )`,
      "CREATE INDEX logs_by_dispatch ON logs (task, attempt, invocation)",
      `CREATE TABLE timers (
        kind TEXT NOT NULL,
        task TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        ref TEXT NOT NULL DEFAULT '',
        due_at INTEGER NOT NULL,
        data TEXT,
        PRIMARY KEY (kind, task, attempt, ref)
      )`,
      "CREATE INDEX timers_due ON timers (due_at)",
      "CREATE TABLE alarm (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER)",
      `CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        payload TEXT NOT NULL,
        tries INTEGER NOT NULL DEFAULT 0,
        next_at INTEGER NOT NULL
      )`,
      `CREATE TABLE children (
        run_id TEXT PRIMARY KEY,
        task TEXT NOT NULL,
        position INTEGER NOT NULL,
        seq INTEGER,
        status TEXT,
        output TEXT,
        error TEXT
      )`,
      "CREATE INDEX children_by_wait ON children (task, seq, status)",
      `CREATE TABLE checkpoints (
        task TEXT NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('sleep','wait','memo','child','children','spawn')),
        key TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending','resolved')),
        result TEXT,
        data TEXT,
        invocation INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        resolved_at INTEGER,
        resolved_order INTEGER,
        PRIMARY KEY (task, seq)
      )`,
      `CREATE TABLE conditions (
        task TEXT NOT NULL,
        seq INTEGER NOT NULL,
        list TEXT NOT NULL CHECK (list IN ('wait','skip','cancel')),
        grp INTEGER NOT NULL,
        leaf INTEGER NOT NULL,
        spec TEXT NOT NULL,
        armed_at INTEGER NOT NULL,
        satisfied_at INTEGER,
        result TEXT,
        decided INTEGER NOT NULL DEFAULT 0,
        arming TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (task, seq, list, grp, leaf)
      )`,
    ],
  },
  {
    version: 2,
    description: "liveness: the message that started a claim, and the dispatches declared lost",
    sql: [
      "ALTER TABLE tasks ADD COLUMN claim_message TEXT",
      `CREATE TABLE lost_dispatches (
        task TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        invocation INTEGER NOT NULL,
        at INTEGER NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (task, attempt, invocation)
      )`,
    ],
  },
  {
    version: 3,
    description: "dead letters: outbox messages that could not be delivered within their tries",
    sql: [
      `CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        payload TEXT NOT NULL,
        tries INTEGER NOT NULL,
        error TEXT NOT NULL,
        at INTEGER NOT NULL
      )`,
    ],
  },
  {
    version: 4,
    description: "checkpoints: each call's occurrence (the n-th call with its kind and key), unique per task",
    sql: [
      "ALTER TABLE checkpoints ADD COLUMN occurrence INTEGER NOT NULL DEFAULT 0",
      // Calls recorded before: the n-th one with a kind and key, in log order.
      `UPDATE checkpoints SET occurrence = (
        SELECT COUNT(*) FROM checkpoints AS earlier
        WHERE earlier.task = checkpoints.task AND earlier.kind = checkpoints.kind AND earlier.key = checkpoints.key AND earlier.seq < checkpoints.seq
      )`,
      "CREATE UNIQUE INDEX checkpoints_by_identity ON checkpoints (task, kind, key, occurrence)",
    ],
  },
  {
    version: 5,
    description: "triggers: what started the run (an event, a cron tick, a schedule), as JSON",
    sql: ["ALTER TABLE run ADD COLUMN trigger TEXT"],
  },
  {
    version: 6,
    description: "run: how many task queues share each pool of its worker",
    sql: ["ALTER TABLE run ADD COLUMN queue_shards INTEGER NOT NULL DEFAULT 1"],
  },
  {
    version: 7,
    description: "live logs (each line's place in its dispatch, so a line sent live and again with the outcome is stored once) and the run's stream",
    sql: [
      "ALTER TABLE logs ADD COLUMN line INTEGER",
      "CREATE UNIQUE INDEX logs_by_line ON logs (task, attempt, invocation, line)",
      `CREATE TABLE stream (
        position INTEGER PRIMARY KEY,
        task TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        chunk INTEGER NOT NULL,
        data TEXT NOT NULL,
        at INTEGER NOT NULL,
        UNIQUE (task, attempt, chunk)
      )`,
    ],
  },
];
