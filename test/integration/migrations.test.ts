import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { EVENT_BUS_MIGRATIONS } from "../../src/events/event-bus";
import { MIGRATIONS as FLOW_MIGRATIONS } from "../../src/flow/limits-store";
import { REGISTRY_MIGRATIONS } from "../../src/registry/registry";
import { RUN_MIGRATIONS } from "../../src/run/schema";
import { MIGRATIONS as TASK_QUEUE_MIGRATIONS } from "../../src/scheduler/task-queue";
import { hasSnapshot, migrate, schemaVersion, type Migration } from "../../src/storage/migrate";
import { result, trigger } from "./helpers";

/** Drops every table of an object (the constructor already migrated it): start from nothing. */
function wipe(state: DurableObjectState): void {
  const tables = state.storage.sql
    .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'")
    .toArray();
  for (const { name } of tables) state.storage.sql.exec(`DROP TABLE IF EXISTS ${name}`);
}

describe("schema migrations", () => {
  it("brings a new run object to the latest version, and running them again changes nothing", async () => {
    const runId = await trigger("t-echo", { m: 1 });
    await result(runId);
    const stub = env.RUNS.getByName(`run:default:${runId}`);
    await runInDurableObject(stub, (_instance, state) => {
      const latest = Math.max(...RUN_MIGRATIONS.map((m) => m.version));
      expect(schemaVersion(state.storage)).toBe(latest);
      const before = state.storage.sql.exec("SELECT COUNT(*) AS n FROM tasks").one().n;
      expect(migrate(state.storage, RUN_MIGRATIONS)).toBe(latest);
      expect(state.storage.sql.exec("SELECT COUNT(*) AS n FROM tasks").one().n).toBe(before);
    });
  });

  it("adds the dead letters (version 3) to a run and to an event bus at version 1, keeping their rows", async () => {
    const cases = [
      { stub: env.RUNS.getByName(`mig-run-${crypto.randomUUID()}`), migrations: RUN_MIGRATIONS, keep: "outbox", row: "INSERT INTO outbox (kind, target, payload, next_at) VALUES ('index', 't', '{}', 1)" },
      { stub: env.EVENTS.getByName(`mig-bus-${crypto.randomUUID()}`), migrations: EVENT_BUS_MIGRATIONS, keep: "deliveries", row: "INSERT INTO deliveries (waiter, run_id, body, next_at) VALUES ('w', 'r', '{}', 1)" },
    ];
    for (const { stub, migrations, keep, row } of cases) {
      const latest = Math.max(...migrations.map((m) => m.version));
      await runInDurableObject(stub, (_instance, state) => {
        wipe(state);
        expect(migrate(state.storage, migrations.filter((m) => m.version === 1))).toBe(1);
        state.storage.sql.exec(row);
        expect(migrate(state.storage, migrations)).toBe(latest);
        expect(state.storage.sql.exec("SELECT COUNT(*) AS n FROM dead_letters").one().n).toBe(0);
        expect(state.storage.sql.exec(`SELECT COUNT(*) AS n FROM ${keep}`).one().n).toBe(1);
        expect(migrate(state.storage, migrations)).toBe(latest);
      });
    }
  });

  it("gives a version 1 registry's workers a transport and status (version 2), each workflow claimed by its worker", async () => {
    const stub = env.REGISTRY.getByName(`mig-registry-${crypto.randomUUID()}`);
    await runInDurableObject(stub, (_instance, state) => {
      wipe(state);
      expect(migrate(state.storage, REGISTRY_MIGRATIONS.filter((m) => m.version === 1))).toBe(1);
      const reg = JSON.stringify({ name: "w", slots: 1, durableSlots: 1, workflows: [], sdkVersion: "x" });
      state.storage.sql.exec("INSERT INTO workers (name, registration, hash, blocked_reason, registered_at) VALUES ('w', ?, 'h', NULL, 1), ('ghost', ?, 'h', 'no binding', 1)", reg, reg);
      state.storage.sql.exec("INSERT INTO workflows (name, worker, definition, updated_at) VALUES ('wf', 'w', '{}', 1)");
      expect(migrate(state.storage, REGISTRY_MIGRATIONS)).toBe(2);
      expect(state.storage.sql.exec("SELECT name, transport, status, reason FROM workers ORDER BY name").toArray()).toEqual([
        { name: "ghost", transport: "binding", status: "unreachable", reason: "no binding" },
        { name: "w", transport: "binding", status: "active", reason: null },
      ]);
      expect(state.storage.sql.exec("SELECT worker, workflow, status FROM worker_workflows").toArray()).toEqual([{ worker: "w", workflow: "wf", status: "active" }]);
      expect(migrate(state.storage, REGISTRY_MIGRATIONS)).toBe(2);
    });
  });

  it("upgrades a database from each version to the next, keeping its data, and running again changes nothing", async () => {
    // The migration mechanism itself, with a history that rebuilds a table (as a primary-key change must).
    const history: Migration[] = [
      { version: 1, description: "jobs", sql: ["CREATE TABLE jobs (name TEXT PRIMARY KEY, due INTEGER NOT NULL)"] },
      {
        version: 2,
        description: "jobs keyed by name and ref",
        sql: [
          "CREATE TABLE jobs_v2 (name TEXT NOT NULL, ref TEXT NOT NULL DEFAULT '', due INTEGER NOT NULL, PRIMARY KEY (name, ref))",
          "INSERT INTO jobs_v2 (name, ref, due) SELECT name, '', due FROM jobs",
          "DROP TABLE jobs",
          "ALTER TABLE jobs_v2 RENAME TO jobs",
        ],
      },
      { version: 3, description: "an index", sql: ["CREATE INDEX jobs_due ON jobs (due)"] },
    ];
    const stub = env.RUNS.getByName(`run:default:migration-scratch`);
    await runInDurableObject(stub, (_instance, state) => {
      wipe(state);
      expect(migrate(state.storage, history.slice(0, 1))).toBe(1);
      state.storage.sql.exec("INSERT INTO jobs (name, due) VALUES ('a', 10), ('b', 20)");
      expect(migrate(state.storage, history.slice(0, 2))).toBe(2);
      expect(state.storage.sql.exec("SELECT name, ref, due FROM jobs ORDER BY name").toArray()).toEqual([
        { name: "a", ref: "", due: 10 },
        { name: "b", ref: "", due: 20 },
      ]);
      expect(migrate(state.storage, history)).toBe(3);
      expect(migrate(state.storage, history)).toBe(3);
      expect(state.storage.sql.exec("SELECT COUNT(*) AS n FROM jobs").one().n).toBe(2);
    });
  });

  it("upgrades a run object from version 1 to 2 (liveness), keeping its tasks, and running again changes nothing", async () => {
    const stub = env.RUNS.getByName(`run:default:migration-run-v2`);
    await runInDurableObject(stub, (_instance, state) => {
      wipe(state);
      expect(migrate(state.storage, RUN_MIGRATIONS.filter((m) => m.version === 1))).toBe(1);
      state.storage.sql.exec("INSERT INTO tasks (name, position, task_run_id, status, attempt) VALUES ('t', 0, 'tr', 'RUNNING', 1)");
      expect(migrate(state.storage, RUN_MIGRATIONS.filter((m) => m.version <= 2))).toBe(2);
      expect(state.storage.sql.exec("SELECT name, status, attempt, claim_message FROM tasks").toArray()).toEqual([
        { name: "t", status: "RUNNING", attempt: 1, claim_message: null },
      ]);
      state.storage.sql.exec("INSERT INTO lost_dispatches (task, attempt, invocation, at, reason) VALUES ('t', 1, 0, 5, 'why')");
      expect(migrate(state.storage, RUN_MIGRATIONS.filter((m) => m.version <= 2))).toBe(2);
      expect(state.storage.sql.exec("SELECT COUNT(*) AS n FROM lost_dispatches").one().n).toBe(1);
    });
  });

  it("upgrades a task queue from version 1 to 2, keeping its ready tasks and admitting resumed ones first", async () => {
    const stub = env.TASK_QUEUES.getByName("tq:default:migration-scratch:regular");
    await runInDurableObject(stub, (_instance, state) => {
      wipe(state);
      expect(migrate(state.storage, TASK_QUEUE_MIGRATIONS.filter((m) => m.version === 1))).toBe(1);
      const insert = "INSERT INTO ready (key, run_id, task, attempt, invocation, priority, enqueued_at, lease_ms) VALUES (?, 'r', 't', 1, ?, ?, ?, 1000)";
      state.storage.sql.exec(insert, "new-high", 0, 3, 1);
      state.storage.sql.exec(insert, "resumed-low", 2, 1, 2);
      state.storage.sql.exec(insert, "new-low", 0, 1, 0);
      expect(migrate(state.storage, TASK_QUEUE_MIGRATIONS.filter((m) => m.version <= 2))).toBe(2);
      expect(migrate(state.storage, TASK_QUEUE_MIGRATIONS.filter((m) => m.version <= 2))).toBe(2);
      const order = "SELECT key FROM ready ORDER BY (invocation > 0) DESC, priority DESC, enqueued_at, seq";
      expect(state.storage.sql.exec<{ key: string }>(order).toArray().map((r) => r.key)).toEqual(["resumed-low", "new-high", "new-low"]);
      const plan = state.storage.sql.exec<{ detail: string }>(`EXPLAIN QUERY PLAN ${order}`).toArray().map((r) => r.detail).join("; ");
      expect(plan).toContain("ready_order");
    });
  });

  it("upgrades a task queue from version 2 to 3 (flow control), keeping its ready tasks and leases, and running again changes nothing", async () => {
    const stub = env.TASK_QUEUES.getByName("tq:default:migration-scratch-3:regular");
    await runInDurableObject(stub, (_instance, state) => {
      wipe(state);
      expect(migrate(state.storage, TASK_QUEUE_MIGRATIONS.filter((m) => m.version <= 2))).toBe(2);
      const insert = "INSERT INTO ready (key, run_id, task, attempt, invocation, priority, enqueued_at, lease_ms) VALUES (?, 'r', 't', 1, 0, ?, ?, 1000)";
      state.storage.sql.exec(insert, "low", 1, 0);
      state.storage.sql.exec(insert, "high", 3, 1);
      state.storage.sql.exec(
        "INSERT INTO leases (key, run_id, task, attempt, invocation, priority, enqueued_at, lease_ms, expires_at) VALUES ('leased', 'r', 't', 1, 0, 1, 0, 1000, 5)",
      );
      expect(migrate(state.storage, TASK_QUEUE_MIGRATIONS.filter((m) => m.version <= 3))).toBe(3);
      expect(migrate(state.storage, TASK_QUEUE_MIGRATIONS.filter((m) => m.version <= 3))).toBe(3);
      // Version 4: which shard of its pool the queue is (0 for a queue that was never sharded).
      state.storage.sql.exec("INSERT INTO config (id, tenant, worker, pool) VALUES (1, 'default', 'w', 'regular')");
      expect(migrate(state.storage, TASK_QUEUE_MIGRATIONS)).toBe(4);
      expect(migrate(state.storage, TASK_QUEUE_MIGRATIONS)).toBe(4);
      expect(state.storage.sql.exec("SELECT worker, shard FROM config").toArray()).toEqual([{ worker: "w", shard: 0 }]);
      const ready = state.storage.sql.exec<{ key: string; slot_cost: number; turn: number; blocked_until: number | null }>(
        "SELECT key, slot_cost, turn, blocked_until FROM ready ORDER BY (invocation > 0) DESC, priority DESC, turn, enqueued_at, seq",
      );
      expect(ready.toArray()).toEqual([
        { key: "high", slot_cost: 1, turn: 0, blocked_until: null },
        { key: "low", slot_cost: 1, turn: 0, blocked_until: null },
      ]);
      expect(state.storage.sql.exec("SELECT key, slot_cost, state FROM leases").toArray()).toEqual([{ key: "leased", slot_cost: 1, state: "sent" }]);
    });
  });

  it("upgrades a run object from version 4 to 7 (triggers, task queue shards, live log lines and the stream), its run on one queue, and running again changes nothing", async () => {
    const stub = env.RUNS.getByName("run:default:migration-scratch-5");
    await runInDurableObject(stub, (_instance, state) => {
      wipe(state);
      expect(migrate(state.storage, RUN_MIGRATIONS.filter((m) => m.version <= 4))).toBe(4);
      state.storage.sql.exec(
        `INSERT INTO run (id, run_id, tenant, workflow, worker, definition, metadata, priority, status, created_at)
         VALUES (1, 'r', 'default', 'w', 'test', '{}', '{}', 1, 'RUNNING', 0)`,
      );
      expect(migrate(state.storage, RUN_MIGRATIONS)).toBe(7);
      expect(migrate(state.storage, RUN_MIGRATIONS)).toBe(7);
      expect(state.storage.sql.exec("SELECT run_id, status, queue_shards FROM run").toArray()).toEqual([{ run_id: "r", status: "RUNNING", queue_shards: 1 }]);
      expect(state.storage.sql.exec("SELECT COUNT(*) AS n FROM stream").one()).toEqual({ n: 0 });
      expect(state.storage.sql.exec("SELECT name FROM pragma_table_info('logs') WHERE name = 'line'").toArray()).toEqual([{ name: "line" }]);
    });
  });

  it("creates a flow object's tables (and the rate units' start column) once, and running again changes nothing", async () => {
    const stub = env.FLOW.getByName("flow:default:migration-scratch");
    await runInDurableObject(stub, (_instance, state) => {
      wipe(state);
      expect(migrate(state.storage, FLOW_MIGRATIONS)).toBe(2);
      state.storage.sql.exec("INSERT INTO rate_limits (key, kind, lim, duration) VALUES ('k', 'static', 3, 'minute')");
      expect(migrate(state.storage, FLOW_MIGRATIONS)).toBe(2);
      expect(state.storage.sql.exec("SELECT key, lim FROM rate_limits").toArray()).toEqual([{ key: "k", lim: 3 }]);
    });
  });

  it("leaves a failed migration unapplied, so the previous version stays intact", async () => {
    const stub = env.RUNS.getByName(`run:default:migration-failure`);
    await runInDurableObject(stub, (_instance, state) => {
      const good: Migration = { version: 1, description: "t", sql: ["CREATE TABLE t (x INTEGER)"] };
      const bad: Migration = { version: 2, description: "broken", sql: ["ALTER TABLE t ADD COLUMN y INTEGER", "THIS IS NOT SQL"] };
      wipe(state);
      expect(migrate(state.storage, [good])).toBe(1);
      expect(() => migrate(state.storage, [good, bad])).toThrow();
      expect(schemaVersion(state.storage)).toBe(1);
      const columns = state.storage.sql.exec<{ name: string }>("PRAGMA table_info(t)").toArray().map((c) => c.name);
      expect(columns).toEqual(["x"]);
    });
  });

  it("run schema 4 numbers each recorded call's occurrence, keeps the log, and refuses a second record of one call", async () => {
    const stub = env.RUNS.getByName(`run:default:migration-occurrence`);
    await runInDurableObject(stub, (_instance, state) => {
      wipe(state);
      const sql = state.storage.sql;
      expect(migrate(state.storage, RUN_MIGRATIONS.filter((m) => m.version < 4))).toBeLessThan(4);
      const insert = (task: string, seq: number, key: string) =>
        sql.exec("INSERT INTO checkpoints (task, seq, kind, key, status, result, invocation, created_at) VALUES (?, ?, 'memo', ?, 'resolved', '{\"value\":1}', 0, 0)", task, seq, key);
      insert("t", 0, "memo:k");
      insert("t", 1, "now");
      insert("t", 2, "memo:k");
      insert("t", 3, "memo:k");
      insert("u", 0, "memo:k");
      const latest = Math.max(...RUN_MIGRATIONS.map((m) => m.version));
      expect(migrate(state.storage, RUN_MIGRATIONS)).toBe(latest);
      const rows = () => sql.exec("SELECT task, seq, key, occurrence FROM checkpoints ORDER BY task, seq").toArray();
      expect(rows()).toEqual([
        { task: "t", seq: 0, key: "memo:k", occurrence: 0 },
        { task: "t", seq: 1, key: "now", occurrence: 0 },
        { task: "t", seq: 2, key: "memo:k", occurrence: 1 },
        { task: "t", seq: 3, key: "memo:k", occurrence: 2 },
        { task: "u", seq: 0, key: "memo:k", occurrence: 0 },
      ]);
      expect(migrate(state.storage, RUN_MIGRATIONS)).toBe(latest);
      expect(rows()).toHaveLength(5);
      expect(() =>
        sql.exec("INSERT INTO checkpoints (task, seq, kind, key, occurrence, status, invocation, created_at) VALUES ('t', 9, 'memo', 'memo:k', 1, 'pending', 0, 0)"),
      ).toThrow(/UNIQUE/);
    });
  });

  it("creates a new object from the snapshot of its history: the same tables, columns and indexes as replaying every migration", async () => {
    const schemaOf = (state: DurableObjectState) =>
      state.storage.sql
        .exec<{ type: string; name: string; sql: string | null }>(
          "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE '\\_cf\\_%' ESCAPE '\\' ORDER BY type, name",
        )
        .toArray();
    for (const [name, history] of [
      ["run", RUN_MIGRATIONS],
      ["task queue", TASK_QUEUE_MIGRATIONS],
      ["flow", FLOW_MIGRATIONS],
    ] as const) {
      // A copy: a history this isolate has not built an object from yet.
      const copy = [...history];
      const latest = Math.max(...history.map((m) => m.version));
      let replayed: unknown[] = [];
      await runInDurableObject(env.RUNS.getByName(`snap-a-${crypto.randomUUID()}`), (_i, state) => {
        wipe(state);
        state.storage.sql.exec("DROP TABLE IF EXISTS _schema");
        expect(hasSnapshot(copy)).toBe(false);
        expect(migrate(state.storage, copy)).toBe(latest);
        replayed = schemaOf(state);
      });
      expect(hasSnapshot(copy), name).toBe(true);
      await runInDurableObject(env.RUNS.getByName(`snap-b-${crypto.randomUUID()}`), (_i, state) => {
        wipe(state);
        state.storage.sql.exec("DROP TABLE IF EXISTS _schema");
        expect(migrate(state.storage, copy)).toBe(latest);
        expect(schemaOf(state), name).toEqual(replayed);
        expect(schemaVersion(state.storage)).toBe(latest);
        // Nothing is left to apply.
        expect(migrate(state.storage, history)).toBe(latest);
        expect(schemaOf(state), name).toEqual(replayed);
      });
    }
  });

  it("learns the snapshot even when the object already holds a table of its own with rows (the local runtime keeps an object's name in one), and leaves that table out", async () => {
    const copy = [...TASK_QUEUE_MIGRATIONS];
    const latest = Math.max(...copy.map((m) => m.version));
    await runInDurableObject(env.RUNS.getByName(`snap-host-${crypto.randomUUID()}`), (_i, state) => {
      wipe(state);
      state.storage.sql.exec("DROP TABLE IF EXISTS _schema");
      state.storage.sql.exec("CREATE TABLE host_name (id INTEGER PRIMARY KEY, name TEXT)");
      state.storage.sql.exec("INSERT INTO host_name (id, name) VALUES (1, 'x')");
      expect(migrate(state.storage, copy)).toBe(latest);
    });
    expect(hasSnapshot(copy)).toBe(true);
    await runInDurableObject(env.RUNS.getByName(`snap-host-b-${crypto.randomUUID()}`), (_i, state) => {
      wipe(state);
      state.storage.sql.exec("DROP TABLE IF EXISTS _schema");
      expect(migrate(state.storage, copy)).toBe(latest);
      const tables = state.storage.sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'").toArray().map((t) => t.name);
      expect(tables).not.toContain("host_name");
      expect(tables).toContain("ready");
    });
  });
});
