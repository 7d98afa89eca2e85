import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { EVENT_BUS_MIGRATIONS } from "../../../src/events/event-bus";
import { RUN_MIGRATIONS } from "../../../src/run/schema";
import { TRIGGER_MIGRATIONS } from "../../../src/triggers/schema";
import { migrate, schemaVersion } from "../../../src/storage/migrate";
import { api, getRun, result, trigger } from "../helpers";

function wipe(state: DurableObjectState): void {
  const tables = state.storage.sql
    .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'")
    .toArray();
  for (const { name } of tables) state.storage.sql.exec(`DROP TABLE IF EXISTS ${name}`);
}

describe("trigger migrations", () => {
  it("adds a run's trigger (version 5) to a run at version 4, keeping it readable, and running again changes nothing", async () => {
    const runId = await trigger("t-echo", { m: "v4" });
    await result(runId);
    await runInDurableObject(env.RUNS.getByName(`run:default:${runId}`), (_i, state) => {
      // Back to version 4: the columns of 5 and 6 go, the run stays.
      state.storage.sql.exec("ALTER TABLE run DROP COLUMN trigger");
      state.storage.sql.exec("ALTER TABLE run DROP COLUMN queue_shards");
      state.storage.sql.exec("UPDATE _schema SET version = 4 WHERE id = 1");
      const toTriggers = RUN_MIGRATIONS.filter((m) => m.version <= 5);
      expect(migrate(state.storage, toTriggers)).toBe(5);
      expect(state.storage.sql.exec("SELECT trigger FROM run").one().trigger).toBeNull();
      expect(migrate(state.storage, toTriggers)).toBe(5);
    });
    const run = await getRun(runId);
    expect(run.input).toEqual({ m: "v4" });
    expect(run.trigger).toBeUndefined();
  });

  it("adds the wakes (version 5) to an event bus at version 4, keeping its waiters", async () => {
    await runInDurableObject(env.EVENTS.getByName(`mig-bus-${crypto.randomUUID()}`), (_i, state) => {
      wipe(state);
      expect(migrate(state.storage, EVENT_BUS_MIGRATIONS.filter((m) => m.version <= 4))).toBe(4);
      state.storage.sql.exec("INSERT INTO waiters (id, run_id, since_at, ref) VALUES ('w', 'r', 1, '{}')");
      expect(migrate(state.storage, EVENT_BUS_MIGRATIONS)).toBe(5);
      expect(state.storage.sql.exec("SELECT COUNT(*) AS n FROM waiters").one().n).toBe(1);
      expect(state.storage.sql.exec("SELECT COUNT(*) AS n FROM woken").one().n).toBe(0);
      expect(migrate(state.storage, EVENT_BUS_MIGRATIONS)).toBe(5);
    });
  });

  it("creates the Triggers schema once, and running it again keeps the crons", async () => {
    const name = `mig-${crypto.randomUUID()}`;
    const created = await api("POST", "/api/v1/workflows/t-echo/crons", { name, expression: "@daily" });
    expect(created.status).toBe(201);
    await runInDurableObject(env.TRIGGERS.getByName("triggers:default"), (_i, state) => {
      expect(schemaVersion(state.storage)).toBe(1);
      expect(migrate(state.storage, TRIGGER_MIGRATIONS)).toBe(1);
    });
    expect((await api("GET", `/api/v1/crons/${created.body.id}`)).body.name).toBe(name);
    await api("DELETE", `/api/v1/crons/${created.body.id}`);
  });
});
