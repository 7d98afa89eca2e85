import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { advanceClock, resetClock } from "../../src/core/clock";
import { EVENT_BUS_MIGRATIONS, EventBus, WAITER_CHECK_INTERVAL_MS } from "../../src/events/event-bus";
import { migrate } from "../../src/storage/migrate";
import { registration, taskDef, workflowDef } from "../support/definitions";
import { api, getRun, push, result, task, TOKEN, trigger, until } from "./helpers";

/**
 * Filters are user code run inside the event bus's write: they run under a cost budget, `matches`
 * on RE2, and whatever they do, a push answers and the rest of the engine goes on. An expression
 * that fails does not match and says why on the waiting task.
 */
const bus = (key: string) => env.EVENTS.getByName(`events:default:${key}`);
const newKey = () => `filters:${crypto.randomUUID()}`;
const evicted = (run: any) => task(run, "d-filter").evicted === true;

async function waiting(key: string, expression: string, extra: { sleep?: string } = {}): Promise<string> {
  const runId = await trigger("d-filter", { key, expression, ...extra });
  await until(runId, evicted);
  await vi.waitUntil(async () => (await bus(key).waiterCount()) === 1, { timeout: 10_000, interval: 50 });
  return runId;
}

const conditionOf = (run: any): any => task(run, "d-filter").waitingFor?.[0]?.conditions?.[0];

describe("event filters under a budget", () => {
  it("answers a push at once when matches() would backtrack exponentially, and the waiter still waits", async () => {
    const key = newKey();
    const runId = await waiting(key, "input.s.matches('^(a+)+$')");
    // A backtracking RegExp tries 2^36 ways on this (30 a's took 11 s here, so this takes hours); RE2 is linear.
    await push(key, { s: `${"a".repeat(36)}b` });
    const run = await getRun(runId);
    expect(run.status).toBe("RUNNING");
    expect(conditionOf(run)).toMatchObject({ satisfied: false });
    expect(await bus(key).waiterCount()).toBe(1);
    await push(key, { s: "aaaa" });
    expect((await result(runId)).output).toEqual({ payload: { s: "aaaa" } });
  });

  it("stops a huge comprehension at its budget: the push answers, an unrelated request is not held, the error is shown", async () => {
    const key = newKey();
    const expression = "input.l.map(a, input.l.map(b, input.l.map(c, input.l.map(d, a + b + c + d)))).size() > 0";
    const runId = await waiting(key, expression);
    const list = Array.from({ length: 600 }, (_, i) => i);
    const pushing = push(key, { l: list });
    // An unrelated request made while the push is evaluating answers (600^4 steps would take hours).
    const [unrelated] = await Promise.all([api("GET", "/api/v1/workflows"), pushing]);
    expect(unrelated.status).toBe(200);
    const run = await getRun(runId);
    expect(run.status).toBe("RUNNING");
    expect(conditionOf(run).error).toMatch(/cost budget/);
    await push(key, { l: [1] });
    expect((await result(runId)).status).toBe("COMPLETED");
  });

  it("shows an expression that fails to evaluate on the waiting task, and mixes ints and doubles", async () => {
    const key = newKey();
    const runId = await waiting(key, "input.a + 1 == 3");
    await push(key, { a: "2" });
    await vi.waitUntil(async () => conditionOf(await getRun(runId))?.error !== undefined, { timeout: 10_000, interval: 50 });
    const run = await getRun(runId);
    expect(run.status).toBe("RUNNING");
    expect(conditionOf(run).error).toMatch(/no such overload/);
    // JSON numbers are doubles and `1` an int: the arithmetic still works.
    await push(key, { a: 2 });
    expect((await result(runId)).output).toEqual({ payload: { a: 2 } });
  });

  it("shows a DAG task's failing conditions: a parent condition counted as false, an event condition while it waits", async () => {
    const runId = await trigger("rv-cond-errors", {});
    const decided = await until(runId, (r) => task(r, "checked").status === "COMPLETED");
    // `output.n > 1` on a string: not skipped, and the task says why its skipIf did not hold.
    expect(task(decided, "checked").conditionErrors).toEqual([expect.stringMatching(/^skipIf\[0\]: output\.n > 1: no such overload/)]);
    await vi.waitUntil(async () => (await bus("rv-cond-errors:go").waiterCount()) === 1, { timeout: 10_000, interval: 50 });
    await push("rv-cond-errors:go", { key: "k1", v: 1 });
    const gated = (r: any): any => task(r, "gated").waitingFor?.[0]?.conditions?.[0];
    await vi.waitUntil(async () => gated(await getRun(runId))?.error !== undefined, { timeout: 10_000, interval: 50 });
    const run = await getRun(runId);
    expect(task(run, "gated").status).toBe("PENDING");
    expect(gated(run).error).toMatch(/no such overload: string \+ /);
    await push("rv-cond-errors:go", { key: "k1", v: "1" });
    expect((await result(runId)).status).toBe("COMPLETED");
  });

  it("bounds one push's evaluation: many expensive waiters are finished by the alarm, each woken", async () => {
    const key = newKey();
    // Each waiter burns most of its budget and then matches: more of them than one round allows.
    const expression = "input.l.map(a, input.l.map(b, a + b)).size() > 0 && input.go";
    const runs: string[] = [];
    for (let i = 0; i < 12; i++) runs.push(await trigger("d-filter", { key, expression }));
    for (const r of runs) await until(r, evicted, 20_000);
    await vi.waitUntil(async () => (await bus(key).waiterCount()) === 12, { timeout: 20_000, interval: 50 });
    await push(key, { l: Array.from({ length: 400 }, (_, i) => i), go: true });
    for (const r of runs) expect((await result(r, { timeoutMs: 60_000 })).status).toBe("COMPLETED");
  });

  it("drops a waiter whose unsubscribe was lost once its run no longer waits", async () => {
    const key = newKey();
    const original = EventBus.prototype.unsubscribe;
    let dropped = 0;
    EventBus.prototype.unsubscribe = async function () {
      dropped++; // the message is lost on the way
    };
    try {
      const runId = await waiting(key, "input.never == true", { sleep: "1s" });
      // The sleep wins; the run disarms the event leaf, and its unsubscribe never arrives.
      expect((await result(runId)).output).toEqual({ fired: { sleep: { durationMs: 1_000 } } });
      await vi.waitUntil(() => dropped > 0, { timeout: 10_000, interval: 50 });
      expect(await bus(key).waiterCount()).toBe(1);
      advanceClock(WAITER_CHECK_INTERVAL_MS + 1_000);
      expect(await runDurableObjectAlarm(bus(key))).toBe(true);
      expect(await bus(key).waiterCount()).toBe(0);
    } finally {
      resetClock();
      EventBus.prototype.unsubscribe = original;
    }
  });

  it("keeps a waiter whose run still waits when the check comes", async () => {
    const key = newKey();
    const runId = await waiting(key, `input.id == "${key}"`);
    try {
      advanceClock(WAITER_CHECK_INTERVAL_MS + 1_000);
      expect(await runDurableObjectAlarm(bus(key))).toBe(true);
      expect(await bus(key).waiterCount()).toBe(1);
    } finally {
      resetClock();
    }
    await push(key, { id: key });
    expect((await result(runId)).status).toBe("COMPLETED");
  });

  it("upgrades a bus from version 1 keeping its waiters, checked at its next alarm, and running again changes nothing", async () => {
    await runInDurableObject(bus(newKey()), (_i, state) => {
      const sql = state.storage.sql;
      for (const { name } of sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'").toArray()) {
        sql.exec(`DROP TABLE IF EXISTS ${name}`);
      }
      expect(migrate(state.storage, EVENT_BUS_MIGRATIONS.filter((m) => m.version === 1))).toBe(1);
      sql.exec("INSERT INTO waiters (id, run_id, expression, scope, since_at, ref) VALUES ('w', 'r', 'true', NULL, 1, '{}')");
      const latest = Math.max(...EVENT_BUS_MIGRATIONS.map((m) => m.version));
      expect(migrate(state.storage, EVENT_BUS_MIGRATIONS)).toBe(latest);
      expect(migrate(state.storage, EVENT_BUS_MIGRATIONS)).toBe(latest);
      expect(sql.exec("SELECT id, backfill_after, error, checked_at FROM waiters").toArray()).toEqual([{ id: "w", backfill_after: null, error: null, checked_at: 0 }]);
      expect(sql.exec("SELECT COUNT(*) AS n FROM scans").one().n).toBe(0);
    });
  });

  it("refuses at registration a DAG condition whose matches() pattern RE2 cannot run, naming it", async () => {
    const suffix = crypto.randomUUID().slice(0, 8);
    const def = (expression: string) =>
      workflowDef(`wf-${suffix}`, [
        taskDef("a"),
        taskDef("b", ["a"], { skipIf: [{ kind: "parent", parent: "a", expression }] }),
      ]);
    const ok = await env.SPINDLE.register(TOKEN, registration(`re2-${suffix}`, [def("output.s.matches('^a+$')")]));
    expect(ok).toMatchObject({ ok: true });
    const refused = await env.SPINDLE.register(TOKEN, registration(`re2-${suffix}`, [def("output.s.matches('(?=a)b')")]));
    expect(refused).toMatchObject({
      ok: false,
      error: { code: "workflow.invalid", message: expect.stringMatching(/tasks\[1\]\.skipIf\[0\]: .*not valid RE2 syntax/) },
    });
  });
});
