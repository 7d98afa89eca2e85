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

  it("applies each migration in order from an empty database", async () => {
    const stub = env.RUNS.getByName(`run:default:migration-scratch`);
    await runInDurableObject(stub, (_instance, state) => {
      // The constructor already migrated this object: start again from nothing.
      for (const t of ["run", "tasks", "attempts", "logs", "timers", "outbox", "children", "_schema"]) {
        state.storage.sql.exec(`DROP TABLE IF EXISTS ${t}`);
      }
      for (const m of RUN_MIGRATIONS) {
        expect(migrate(state.storage, RUN_MIGRATIONS.filter((x) => x.version <= m.version))).toBe(m.version);
      }
      const tables = state.storage.sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").toArray().map((r) => r.name);
      expect(tables).toEqual(expect.arrayContaining(["run", "tasks", "attempts", "logs", "timers", "outbox", "children"]));
    });
  });
});
