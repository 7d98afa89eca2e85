import { evictDurableObject, runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import type { DispatchMessage } from "../../src/scheduler/messages";
import { effects } from "../worker/workflows";
import { getRun, result, task, trigger } from "./helpers";

const runStub = (runId: string) => env.RUNS.getByName(`run:default:${runId}`);

describe("faults", () => {
  it("runs the effect of one attempt once when its dispatch is delivered twice", async () => {
    const runId = await trigger("t-echo", { dup: true });
    // The same dispatch again, racing the original: same run, task, attempt and invocation.
    const duplicate: DispatchMessage = {
      tenant: "default",
      worker: "test",
      pool: "regular",
      key: `${runId}/t-echo/1/0`,
      runId,
      task: "t-echo",
      attempt: 1,
      invocation: 0,
    };
    await env.DISPATCH.sendBatch([{ body: duplicate }, { body: duplicate }]);
    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    await env.DISPATCH.send(duplicate); // and once more after it has completed
    await new Promise((r) => setTimeout(r, 300));
    expect(effects.get(`t-echo:${runId}`)).toBe(1);
    const after = await getRun(runId);
    expect(task(after, "t-echo").attempts).toHaveLength(1);
    expect(after.finishedAt).toBe(run.finishedAt);
  });

  it("records an outcome once when the worker's answer is reported twice", async () => {
    const runId = await trigger("t-echo", { twice: true });
    const run = await result(runId);
    const stub = runStub(runId);
    const again = await stub.completeTask({ task: "t-echo", attempt: 1, invocation: 0 }, { status: "failed", error: { code: "x", name: "Error", message: "late", retryable: true }, logs: [] });
    expect(again).toEqual({ ok: true, value: { accepted: false } });
    expect((await getRun(runId)).output).toEqual(run.output);
  });

  it("loses nothing when the run's object is evicted mid-run", async () => {
    const runId = await trigger("t-diamond", { x: 5 });
    const stub = runStub(runId);
    // Evict it over and over while the DAG makes progress.
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 40));
      await evictDurableObject(stub).catch(() => undefined);
    }
    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ a: { v: 6 }, b: { v: 60 }, c: { v: 600 }, d: { sum: 660 } });
    for (const t of run.tasks) expect(t.attempts).toHaveLength(1);
  });

  it("keeps a retry's backoff timer across an eviction", async () => {
    const runId = await trigger("t-flaky", { succeedOn: 1 });
    const stub = runStub(runId);
    await vi.waitUntil(async () => (await getRun(runId)).tasks[0]!.queuedReason?.includes("backing off") === true, { timeout: 5_000 });
    await evictDurableObject(stub);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ retryCount: 1 });
    expect(effects.get(`t-flaky:${runId}`)).toBe(2);
  });

  it("keeps slots and queued tasks when a task queue is evicted", async () => {
    const queue = env.TASK_QUEUES.getByName("tq:default:test:regular");
    const runs = await Promise.all(Array.from({ length: 5 }, (_, i) => trigger("t-echo", { evict: i })));
    await evictDurableObject(queue).catch(() => undefined);
    const done = await Promise.all(runs.map((id) => result(id)));
    expect(done.map((r) => r.status)).toEqual(Array(5).fill("COMPLETED"));
    const stats = await queue.stats();
    expect(stats).toMatchObject({ ready: 0 });
    await vi.waitUntil(async () => (await queue.stats())!.inFlight === 0, { timeout: 5_000 });
  });
});
