import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { RUN_MIGRATIONS } from "../../src/run/schema";
import { migrate, schemaVersion } from "../../src/storage/migrate";
import { result, trigger } from "./helpers";

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

  it("applies each migration in order from an empty database, keeping what the previous version stored", async () => {
    const stub = env.RUNS.getByName(`run:default:migration-scratch`);
    await runInDurableObject(stub, (_instance, state) => {
      // The constructor already migrated this object: start again from nothing.
      const tables = () =>
        state.storage.sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'").toArray().map((r) => r.name);
      for (const t of tables()) state.storage.sql.exec(`DROP TABLE IF EXISTS ${t}`);

      expect(migrate(state.storage, RUN_MIGRATIONS.filter((m) => m.version <= 1))).toBe(1);
      state.storage.sql.exec("INSERT INTO tasks (name, position, task_run_id, status) VALUES ('t', 0, 'id', 'QUEUED')");
      state.storage.sql.exec("INSERT INTO timers (kind, task, attempt, due_at, data) VALUES ('retry', 't', 1, 1234, NULL)");

      expect(migrate(state.storage, RUN_MIGRATIONS)).toBe(2);
      expect(state.storage.sql.exec("SELECT name, status, evicted FROM tasks").toArray()).toEqual([{ name: "t", status: "QUEUED", evicted: 0 }]);
      expect(state.storage.sql.exec("SELECT kind, task, attempt, ref, due_at FROM timers").toArray()).toEqual([
        { kind: "retry", task: "t", attempt: 1, ref: "", due_at: 1234 },
      ]);
      expect(tables()).toEqual(expect.arrayContaining(["run", "tasks", "attempts", "logs", "timers", "outbox", "children", "checkpoints", "conditions", "alarm"]));
      // Running them all again changes nothing.
      expect(migrate(state.storage, RUN_MIGRATIONS)).toBe(2);
      expect(state.storage.sql.exec("SELECT COUNT(*) AS n FROM timers").one().n).toBe(1);
    });
  });
});
