import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import type { ConcurrencyKeyView, RateLimitView } from "@spindle/worker-sdk/protocol";
import { flowLog, flowOpened } from "../worker/flow";
import { queueShardOf } from "../../src/core/names";
import { maxOverlap } from "../support/overlap";
import { api, getRun, result, trigger, until } from "./helpers";

const started = (workflow: string, runId: string) => flowLog.find((e) => e.workflow === workflow && e.runId === runId);
const of = (workflow: string) => flowLog.filter((e) => e.workflow === workflow);

describe("concurrency keys", () => {
  it("GROUP_ROUND_ROBIN never runs more than maxRuns of a key at once, and the others' keys are not held up", async () => {
    const groups = ["rr-a", "rr-a", "rr-a", "rr-a", "rr-b", "rr-b", "rr-b", "rr-c"];
    const ids = await Promise.all(groups.map((group) => trigger("f-rr", { group, ms: 150 })));
    const runs = await Promise.all(ids.map((id) => result(id)));
    expect(runs.map((r) => r.status)).toEqual(groups.map(() => "COMPLETED"));
    const overlap = maxOverlap(of("f-rr").filter((e) => ids.includes(e.runId)));
    expect(overlap.get("rr-a")).toBe(2);
    expect(overlap.get("rr-b")).toBe(2);
    expect(overlap.get("rr-c")).toBe(1);
  });

  it("takes turns between keys: AAAAABBBBBCCCCC queued behind one slot start ABCABC…", async () => {
    const first = await trigger("f-rr-serial", { group: "t-x", tag: "turns-first" });
    await vi.waitUntil(() => started("f-rr-serial", first), { timeout: 10_000 });
    const ids: string[] = [];
    for (const group of "AAAAABBBBBCCCCC") ids.push(await trigger("f-rr-serial", { group: `t-${group}` }));
    await vi.waitUntil(async () => (await env.TASK_QUEUES.getByName("tq:default:flowserial:regular").stats())?.ready === 15, { timeout: 10_000 });
    flowOpened.add("turns-first");
    await Promise.all([first, ...ids].map((id) => result(id)));
    const order = of("f-rr-serial")
      .filter((e) => ids.includes(e.runId))
      .sort((a, b) => a.startedAt - b.startedAt)
      .map((e) => e.keys[0]!.slice(2));
    expect(order.join("")).toBe("ABCABCABCABCABC");
  });

  it("CANCEL_IN_PROGRESS admits the newest and cancels the running one, through its abort signal", async () => {
    const old = await trigger("f-cancel-in-progress", { group: "cip-1", ms: 20_000 });
    await vi.waitUntil(() => started("f-cancel-in-progress", old), { timeout: 10_000 });
    const newer = await trigger("f-cancel-in-progress", { group: "cip-1", ms: 100 });
    const [oldRun, newRun] = await Promise.all([result(old), result(newer)]);
    expect(oldRun.status).toBe("CANCELLED");
    expect(oldRun.error?.message).toContain("concurrency key 'cip-1' (CANCEL_IN_PROGRESS)");
    expect(started("f-cancel-in-progress", old)?.aborted).toBe(true);
    expect(newRun.status).toBe("COMPLETED");
    expect(newRun.output).toEqual({ work: { done: true } });
    // Never both at once: the newer started only after the older had ended.
    expect(started("f-cancel-in-progress", newer)!.startedAt).toBeGreaterThanOrEqual(started("f-cancel-in-progress", old)!.endedAt!);
  });

  it("CANCEL_NEWEST cancels at once a run that finds its key full", async () => {
    const first = await trigger("f-cancel-newest", { group: "cn-1", tag: "cn-first" });
    await vi.waitUntil(() => started("f-cancel-newest", first), { timeout: 10_000 });
    const second = await trigger("f-cancel-newest", { group: "cn-1" });
    const cancelled = await result(second);
    expect(cancelled.status).toBe("CANCELLED");
    expect(cancelled.error?.message).toContain("concurrency key 'cn-1' (CANCEL_NEWEST)");
    expect(started("f-cancel-newest", second)).toBeUndefined();
    flowOpened.add("cn-first");
    expect((await result(first)).status).toBe("COMPLETED");
  });

  it("CANCEL_QUEUED_EXCEPT_NEWEST keeps only the newest queued run of a key (a debounce)", async () => {
    const first = await trigger("f-debounce", { group: "db-1", tag: "db-first" });
    await vi.waitUntil(() => started("f-debounce", first), { timeout: 10_000 });
    const queued: string[] = [];
    for (let i = 0; i < 3; i++) {
      queued.push(await trigger("f-debounce", { group: "db-1", ms: 50 }));
      await until(queued[i]!, (r) => r.tasks[0]!.queuedReason !== null || r.status === "CANCELLED");
    }
    const [a, b] = await Promise.all([result(queued[0]!), result(queued[1]!)]);
    expect([a.status, b.status]).toEqual(["CANCELLED", "CANCELLED"]);
    expect(a.error?.message).toContain("(CANCEL_QUEUED_EXCEPT_NEWEST)");
    flowOpened.add("db-first");
    expect((await result(first)).status).toBe("COMPLETED");
    expect((await result(queued[2]!)).status).toBe("COMPLETED");
  });

  it("a task under several keys starts only when every key admits it", async () => {
    const inputs = Array.from({ length: 12 }, (_, i) => ({ group: `mk-g${i % 2}`, user: `mk-u${i % 3}`, ms: 80 }));
    const ids = await Promise.all(inputs.map((input) => trigger("f-multi", input)));
    const runs = await Promise.all(ids.map((id) => result(id)));
    expect(runs.every((r) => r.status === "COMPLETED")).toBe(true);
    const overlap = maxOverlap(of("f-multi").filter((e) => ids.includes(e.runId)));
    for (const g of ["g:mk-g0", "g:mk-g1"]) expect(overlap.get(g)).toBeLessThanOrEqual(3);
    for (const u of ["u:mk-u0", "u:mk-u1", "u:mk-u2"]) expect(overlap.get(u)).toBe(1);
  });

  it("takes maxRuns from the input: a dynamic limit per key", async () => {
    const pro = await Promise.all(Array.from({ length: 6 }, () => trigger("f-dynamic-max", { group: "dm-pro", tier: "pro", ms: 150 })));
    const free = await Promise.all(Array.from({ length: 4 }, () => trigger("f-dynamic-max", { group: "dm-free", tier: "free", ms: 150 })));
    await Promise.all([...pro, ...free].map((id) => result(id)));
    const overlap = maxOverlap(of("f-dynamic-max").filter((e) => [...pro, ...free].includes(e.runId)));
    expect(overlap.get("dm-pro")).toBe(3);
    expect(overlap.get("dm-free")).toBe(1);
  });

  it("says why a task waits for its key, and lists the key with its running and queued runs", async () => {
    const first = await trigger("f-rr", { group: "why-1", tag: "why-1" });
    const second = await trigger("f-rr", { group: "why-1", tag: "why-2" });
    await vi.waitUntil(() => started("f-rr", first) && started("f-rr", second), { timeout: 10_000 });
    const third = await trigger("f-rr", { group: "why-1", ms: 10 });
    const waiting = await until(third, (r) => r.tasks[0]!.queuedReason !== null);
    expect(waiting.tasks[0]!.queuedReason).toBe("concurrency key 'why-1' at 2/2 (GROUP_ROUND_ROBIN)");
    const listed = await api<{ concurrency: ConcurrencyKeyView[] }>("GET", "/api/v1/concurrency");
    expect(listed.status).toBe(200);
    expect(listed.body.concurrency.find((k) => k.key === "why-1")).toEqual({
      key: "why-1",
      workflow: "f-rr",
      task: null,
      limitStrategy: "GROUP_ROUND_ROBIN",
      running: 2,
      queued: 1,
      maxRuns: 2,
    });
    flowOpened.add("why-1");
    flowOpened.add("why-2");
    await Promise.all([first, second, third].map((id) => result(id)));
    await vi.waitUntil(async () => !(await api<{ concurrency: ConcurrencyKeyView[] }>("GET", "/api/v1/concurrency")).body.concurrency.some((k) => k.key === "why-1"), {
      timeout: 10_000,
    });
  });
});

describe("rate limits", () => {
  it("a dynamic key admits at most its limit per window, and says when the next unit comes", async () => {
    const ids = await Promise.all(Array.from({ length: 9 }, () => trigger("f-rate", { userId: "rl-user-1" })));
    const waiting = await until(ids[ids.length - 1]!, (r) => r.status !== "QUEUED" || /exhausted/.test(r.tasks[0]!.queuedReason ?? ""), 10_000);
    if (waiting.status === "QUEUED") expect(waiting.tasks[0]!.queuedReason).toMatch(/^rate limit 'rl-user-1' exhausted \(2\/second\), next unit in \d+\.\d s$/);
    const runs = await Promise.all(ids.map((id) => result(id)));
    expect(runs.every((r) => r.status === "COMPLETED")).toBe(true);
    const starts = runs.map((r) => (r.output as { startedAt: number }).startedAt).sort((a, b) => a - b);
    // Units are taken at admission; a start comes a dispatch later, so the check is the issue's:
    // no two-second window holds more than 4 starts (2 per second).
    for (let i = 4; i < starts.length; i++) expect(starts[i]! - starts[i - 4]!).toBeGreaterThanOrEqual(2000);
  });

  it("a static key waits, saying so, until it is defined; PUT and GET show it", async () => {
    const id = await trigger("f-rate-undefined", {});
    const waiting = await until(id, (r) => r.tasks[0]!.queuedReason !== null);
    expect(waiting.tasks[0]!.queuedReason).toBe("rate limit 'f-never-defined' is not defined (PUT /api/v1/rate-limits/f-never-defined)");
    await api("POST", `/api/v1/runs/${id}/cancel`);

    const put = await api<RateLimitView>("PUT", "/api/v1/rate-limits/f-static-api", { limit: 3, duration: "minute" });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ key: "f-static-api", kind: "static", limit: 3, duration: "minute", unitsLeft: 3, nextRefillAt: null });
    const ids = await Promise.all(Array.from({ length: 4 }, () => trigger("f-rate-static", {})));
    await vi.waitUntil(() => ids.filter((r) => started("f-rate-static", r)).length === 3, { timeout: 10_000 });
    const fourth = ids.find((r) => !started("f-rate-static", r))!;
    const blocked = await until(fourth, (r) => /exhausted/.test(r.tasks[0]!.queuedReason ?? ""));
    expect(blocked.tasks[0]!.queuedReason).toMatch(/^rate limit 'f-static-api' exhausted \(3\/minute\), next unit in \d+\.\d s$/);
    const listed = await api<{ rateLimits: RateLimitView[] }>("GET", "/api/v1/rate-limits");
    const limit = listed.body.rateLimits.find((r) => r.key === "f-static-api")!;
    expect(limit).toMatchObject({ limit: 3, duration: "minute", unitsLeft: 0 });
    expect(Date.parse(limit.nextRefillAt!)).toBeGreaterThan(Date.now());
    // Raising the limit admits the waiting task at once.
    await api("PUT", "/api/v1/rate-limits/f-static-api", { limit: 10, duration: "minute" });
    expect((await result(fourth)).status).toBe("COMPLETED");
  });

  it("refuses a bad definition with the field named, changing nothing", async () => {
    const bad = await api("PUT", "/api/v1/rate-limits/f-bad", { limit: 0, duration: "fortnight" });
    expect(bad.status).toBe(400);
    expect(bad.body.error.fields.map((f: { path: string }) => f.path).sort()).toEqual(["body.duration", "body.limit"]);
    const listed = await api<{ rateLimits: RateLimitView[] }>("GET", "/api/v1/rate-limits");
    expect(listed.body.rateLimits.some((r) => r.key === "f-bad")).toBe(false);
  });

  it("fails at once, without retries, a task whose dynamic units can never fit its limit", async () => {
    const run = await result(await trigger("f-units-too-big", { units: 5 }));
    expect(run.status).toBe("FAILED");
    expect(run.error).toMatchObject({ code: "flow.invalid", retryable: false });
    expect(run.error?.message).toContain("5 units can never fit in rate limit 'f-too-big' of 2 per minute");
    expect(run.tasks[0]!.attempts).toHaveLength(1);
  });
});

describe("slot cost", () => {
  it("takes slotCost slots of the pool per attempt, and says when none is free", async () => {
    const heavy = await Promise.all(Array.from({ length: 3 }, () => trigger("f-slot-cost", { ms: 300 })));
    await vi.waitUntil(() => heavy.some((r) => started("f-slot-cost", r)), { timeout: 10_000 });
    const light = await trigger("f-slot-one", { ms: 300 });
    const waiting = heavy.find((r) => !started("f-slot-cost", r))!;
    const view = await getRun(waiting);
    if (view.status === "QUEUED") expect(view.tasks[0]!.queuedReason).toBe("no free slot on worker 'flowslots'");
    await Promise.all([...heavy, light].map((id) => result(id)));
    const entries = flowLog.filter((e) => [...heavy, light].includes(e.runId));
    // 3 slots: two heavy tasks (2 + 2) never overlap; a heavy one and a light one may.
    expect(maxOverlap(entries.filter((e) => e.workflow === "f-slot-cost")).get("slots")).toBe(1);
  });
});

describe("a sharded task queue", () => {
  it("divides the pool's slots among its queues: never more in flight than the pool has, every run completes", async () => {
    const ids = await Promise.all(Array.from({ length: 16 }, () => trigger("f-sharded", { ms: 150 })));
    const runs = await Promise.all(ids.map((id) => result(id)));
    expect(runs.every((r) => r.status === "COMPLETED")).toBe(true);
    const entries = flowLog.filter((e) => e.workflow === "f-sharded" && ids.includes(e.runId));
    expect(maxOverlap(entries).get("pool")).toBeLessThanOrEqual(3);
    const shard0 = await env.TASK_QUEUES.getByName("tq:default:flowsharded:regular").stats();
    const shard1 = await env.TASK_QUEUES.getByName("tq:default:flowsharded:regular:1").stats();
    expect([shard0?.slots, shard1?.slots]).toEqual([2, 1]);
    // Both queues carried some of the runs (a run's tasks go to the queue its id hashes to).
    expect(new Set(ids.map((id) => queueShardOf(id, 2)))).toEqual(new Set([0, 1]));
    expect(shard0?.ready).toBe(0);
    expect(shard1?.ready).toBe(0);
  });
});
