import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

/** The workerd suite runs under Cloudflare's 2 MB SQLite value limit (see setup.ts). */
describe("the 2 MB SQLite guard", () => {
  it("refuses a 2.1 MB value in any Durable Object, and accepts a 1.9 MB one", async () => {
    for (const stub of [env.RUNS.getByName(`guard-${crypto.randomUUID()}`), env.EVENTS.getByName(`guard-${crypto.randomUUID()}`)]) {
      await runInDurableObject(stub, (_i, state) => {
        const sql = state.storage.sql;
        sql.exec("CREATE TABLE IF NOT EXISTS guard_probe (v)");
        sql.exec("INSERT INTO guard_probe (v) VALUES (?)", "x".repeat(1_900_000));
        expect(() => sql.exec("INSERT INTO guard_probe (v) VALUES (?)", "x".repeat(2_100_000))).toThrow(/SQLITE_TOOBIG/);
        expect(() => sql.exec("INSERT INTO guard_probe (v) VALUES (?)", new Uint8Array(2_100_000))).toThrow(/SQLITE_TOOBIG/);
        expect(() => sql.exec("INSERT INTO guard_probe (v) VALUES (?)", "é".repeat(1_050_000))).toThrow(/SQLITE_TOOBIG/);
        sql.exec("CREATE TABLE IF NOT EXISTS guard_pairs (a, b)");
        expect(() => sql.exec("INSERT INTO guard_pairs (a, b) VALUES (?, ?)", "a".repeat(1_100_000), "b".repeat(1_000_000))).toThrow(/row too big/);
        expect(sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM guard_probe").one().n).toBe(1);
      });
    }
  });
});
