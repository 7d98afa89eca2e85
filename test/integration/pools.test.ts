import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { inFlight, opened, order } from "../worker/pools";
import { result, trigger } from "./helpers";

describe("worker slots and priority", () => {
  it("never runs more of a worker's tasks at once than it has slots", async () => {
    inFlight.max = 0;
    const ids = await Promise.all(Array.from({ length: 8 }, () => trigger("t-slotted", { ms: 100 })));
    const runs = await Promise.all(ids.map((id) => result(id)));
    expect(runs.every((r) => r.status === "COMPLETED")).toBe(true);
    expect(inFlight.max).toBe(2); // the slotted worker has 2 slots, and 8 tasks were waiting
    const stats = await env.TASK_QUEUES.getByName("tq:default:slotted:regular").stats();
    expect(stats).toMatchObject({ slots: 2, ready: 0 });
  });

  it("starts higher-priority tasks first when slots are scarce", async () => {
    order.length = 0;
    const blocker = await trigger("t-serial", { tag: "blocker", hold: true });
    await vi.waitUntil(() => order.includes("blocker"), { timeout: 5_000 });
    // The one slot is busy: these wait in the queue.
    const low = [];
    for (const tag of ["low-1", "low-2"]) low.push(await trigger("t-serial", { tag }, { priority: 1 }));
    const mid = await trigger("t-serial", { tag: "mid" }, { priority: 2 });
    const high = await trigger("t-serial", { tag: "high" }, { priority: 3 });
    await vi.waitUntil(async () => (await env.TASK_QUEUES.getByName("tq:default:serial:regular").stats())?.ready === 4, { timeout: 5_000 });
    opened.add("blocker");
    await Promise.all([blocker, ...low, mid, high].map((id) => result(id)));
    expect(order).toEqual(["blocker", "high", "mid", "low-1", "low-2"]);
  });
});

describe("a lost dispatch", () => {
  it("is sent again when its lease expires, and the task runs once", async () => {
    order.length = 0;
    const queue = env.TASK_QUEUES.getByName("tq:default:serial:regular");
    const blocker = await trigger("t-serial", { tag: "lost-blocker", hold: true });
    await vi.waitUntil(() => order.includes("lost-blocker"), { timeout: 5_000 });
    const lost = await trigger("t-serial", { tag: "lost" });
    await vi.waitUntil(async () => (await queue.stats())?.ready === 1, { timeout: 5_000 });
    // As if the queue had admitted it and then lost the message: leased, never sent, lease run out.
    await runInDurableObject(queue, (_instance, state) => {
      const sql = state.storage.sql;
      const row = sql.exec("SELECT * FROM ready").one();
      sql.exec("DELETE FROM ready");
      sql.exec(
        "INSERT INTO leases (key, run_id, task, attempt, invocation, priority, enqueued_at, lease_ms, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        row.key, row.run_id, row.task, row.attempt, row.invocation, row.priority, row.enqueued_at, row.lease_ms, Date.now() - 1,
      );
    });
    opened.add("lost-blocker");
    await result(blocker);
    expect(order).not.toContain("lost");
    expect(await runDurableObjectAlarm(queue)).toBe(true);
    const run = await result(lost);
    expect(run.status).toBe("COMPLETED");
    expect(order.filter((t) => t === "lost")).toHaveLength(1);
  });
});
