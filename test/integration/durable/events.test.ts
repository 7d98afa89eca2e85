import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { api, getRun, push, result, runStub, task, trigger, until } from "../helpers";

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

  it("does not lose an event pushed while the wait is being armed", async () => {
    const u = user();
    const runId = await trigger("d-event", { userId: u });
    await until(runId, evicted);
    // Put the run back in the moment between recording its wait and its subscription reaching the
    // bus: withdraw the waiter, push the event, then deliver the subscription as the outbox would.
    const bus = env.EVENTS.getByName("events:default:d:update");
    const arming = await runInDurableObject(runStub(runId), (_instance, state) =>
      String(state.storage.sql.exec("SELECT arming FROM conditions WHERE task = 'd-event'").one().arming),
    );
    const waiterId = `${runId}|d-event|0|wait|0|0|${arming}`;
    await bus.unsubscribe([waiterId]);
    const reachedAt = Date.now() - 1_000;
    await push("d:update", { userId: u, when: "during" });
    expect((await getRun(runId)).status).toBe("RUNNING");
    await bus.subscribe("default", "d:update", [
      {
        id: waiterId,
        runId,
        expression: `input.userId == "${u}"`,
        scope: null,
        sinceAt: reachedAt,
        ref: { task: "d-event", seq: 0, list: "wait", group: 0, leaf: 0, arming },
      },
    ]);
    expect((await result(runId)).output).toEqual({ payload: { userId: u, when: "during" } });
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
