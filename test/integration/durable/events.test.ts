import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { EventBus } from "../../../src/events/event-bus";
import { api, getRun, push, result, task, trigger, until } from "../helpers";

const evicted = (run: any) => task(run, "d-event").evicted === true;
const user = () => `u-${crypto.randomUUID()}`;

describe("events and waiters", () => {
  it("does not match an event pushed before the wait, without lookback", async () => {
    const u = user();
    await push("d:update", { userId: u, when: "before" });
    const runId = await trigger("d-event", { userId: u });
    await until(runId, evicted);
    await new Promise((r) => setTimeout(r, 150));
    expect((await getRun(runId)).status).toBe("RUNNING");
    await push("d:update", { userId: u, when: "after" });
    expect((await result(runId)).output).toEqual({ payload: { userId: u, when: "after" } });
  });

  it("matches an event pushed before the wait when the lookback covers it", async () => {
    const u = user();
    await push("d:update", { userId: u, when: "before" });
    const runId = await trigger("d-event", { userId: u, lookback: "1m" });
    expect((await result(runId)).output).toEqual({ payload: { userId: u, when: "before" } });
  });

  it("does not lose an event pushed while the wait's subscription is on its way to the bus", async () => {
    const u = user();
    const bus = env.EVENTS.getByName("events:default:d:update");
    // Hold the run's own subscription at the bus's door, as a slow network would.
    const original = EventBus.prototype.subscribe;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const held: string[] = [];
    EventBus.prototype.subscribe = async function (this: EventBus, tenant, key, waiters) {
      if (waiters.some((w) => w.expression?.includes(u))) {
        held.push(...waiters.map((w) => w.id));
        await gate;
      }
      return original.call(this, tenant, key, waiters);
    };
    try {
      const runId = await trigger("d-event", { userId: u });
      await vi.waitUntil(() => held.length > 0, { timeout: 10_000, interval: 20 });
      expect(held).toHaveLength(1);
      const waiting = await runInDurableObject(bus, (_i, state) => state.storage.sql.exec("SELECT COUNT(*) AS n FROM waiters WHERE id = ?", held[0]!).one().n);
      expect(waiting, "the bus does not know the waiter yet").toBe(0);
      // The event arrives in that window: no waiter matches it at the bus.
      await push("d:update", { userId: u, when: "during" });
      expect((await getRun(runId)).status).toBe("RUNNING");
      release();
      expect((await result(runId)).output).toEqual({ payload: { userId: u, when: "during" } });
      expect(held).toHaveLength(1);
    } finally {
      release();
      EventBus.prototype.subscribe = original;
    }
  });

  it("wakes two waiters on one key only by their own expressions, each once", async () => {
    const [u1, u2] = [user(), user()];
    const r1 = await trigger("d-event", { userId: u1 });
    const r2 = await trigger("d-event", { userId: u2 });
    await until(r1, evicted);
    await until(r2, evicted);
    await push("d:update", { userId: u2, n: 2 });
    expect((await result(r2)).output).toEqual({ payload: { userId: u2, n: 2 } });
    expect((await getRun(r1)).status).toBe("RUNNING");
    await push("d:update", { userId: u1, n: 1 });
    expect((await result(r1)).output).toEqual({ payload: { userId: u1, n: 1 } });
    // Both waiters were consumed: nothing is left waiting on the key.
    expect(await env.EVENTS.getByName("events:default:d:update").waiterCount()).toBe(0);
  });

  it("matches only events of its scope when it has one", async () => {
    const u = user();
    const runId = await trigger("d-event", { userId: u, scope: "tenant-a" });
    await until(runId, evicted);
    await push("d:update", { userId: u, from: "b" }, { scope: "tenant-b" });
    await push("d:update", { userId: u, from: "none" });
    await new Promise((r) => setTimeout(r, 150));
    expect((await getRun(runId)).status).toBe("RUNNING");
    await push("d:update", { userId: u, from: "a" }, { scope: "tenant-a" });
    expect((await result(runId)).output).toEqual({ payload: { userId: u, from: "a" } });
  });

  it("refuses a bad event naming the field", async () => {
    const noKey = await api("POST", "/api/v1/events", { payload: {} });
    expect(noKey.status).toBe(400);
    expect(noKey.body.error.fields[0].path).toBe("body.key");
    const malformed = await api("POST", "/api/v1/events", undefined, { rawBody: "{" });
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.code).toBe("request.invalid_json");
  });
});
