import { beforeAll, describe, expect, it, vi } from "vitest";
import { exports } from "cloudflare:workers";
import { conformanceInFlight } from "../worker/conformance";
import { count, effects } from "../worker/workflows";
import { api, getRun, result, TOKEN, trigger } from "./helpers";

/**
 * One suite, both transports: the same scenarios run on a worker the engine reaches through a
 * service binding and on its twin served with `spindle.serve()` and registered by URL.
 */
beforeAll(async () => {
  const res = await api("POST", "/api/v1/workers", { url: "https://conf-https.test/" });
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({ name: "conf-https", transport: "https", status: "active", url: "https://conf-https.test/" });
});

describe.each([
  { transport: "binding", p: "cb", worker: "conf-binding" },
  { transport: "https", p: "ch", worker: "conf-https" },
])("over the $transport transport", ({ transport, p, worker }) => {
  it("lists the worker as active on its transport", async () => {
    const res = await api("GET", "/api/v1/workers");
    expect(res.body.workers.find((w: any) => w.name === worker)).toMatchObject({ transport, status: "active", reason: null, slots: 2 });
  });

  it("runs no more tasks at once than the worker's slots", async () => {
    const ids = await Promise.all(Array.from({ length: 6 }, () => trigger(`${p}-slots`, { ms: 300 })));
    for (const id of ids) expect((await result(id)).status).toBe("COMPLETED");
    expect(conformanceInFlight.get(p)!.max).toBe(2);
  });

  it("aborts the task at its execution timeout and fails it with task.timeout", async () => {
    const run = await result(await trigger(`${p}-timeout`, {}));
    expect(run.status).toBe("FAILED");
    expect(run.error).toMatchObject({ code: "task.timeout" });
    await vi.waitUntil(() => effects.get(`${p}-timeout:aborted`) === 1, { timeout: 5_000 });
  });

  it("keeps a task that outlives the heartbeat interval on its first attempt", async () => {
    const run = await result(await trigger(`${p}-heartbeat`, { ms: 6_500 }), { timeoutMs: 40_000 });
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ slept: 6_500 });
    expect(run.tasks[0]!.attempts).toHaveLength(1);
    expect(run.tasks[0]!.lostDispatches).toEqual([]);
  });

  it("aborts a running task's signal when its run is cancelled", async () => {
    const tag = crypto.randomUUID();
    const runId = await trigger(`${p}-cancel`, { tag });
    await vi.waitUntil(() => effects.get(`${p}-cancel:${tag}:start`) === 1, { timeout: 10_000 });
    expect((await api("POST", `/api/v1/runs/${runId}/cancel`)).body.status).toBe("CANCELLED");
    await vi.waitUntil(() => effects.get(`${p}-cancel:${tag}:aborted`) === 1, { timeout: 10_000 });
    expect((await getRun(runId)).status).toBe("CANCELLED");
  });

  it("replays a durable task after its sleep without running its memo again", async () => {
    const tag = crypto.randomUUID();
    const run = await result(await trigger(`${p}-durable`, { tag }), { timeoutMs: 30_000 });
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ first: 1 });
    // Evicted at the sleep and replayed: the body ran twice, the memo once.
    expect(effects.get(`${p}-durable:${tag}:invocation`)).toBe(2);
    expect(effects.get(`${p}-durable:${tag}:memo`)).toBe(1);
    expect(run.tasks[0]!.invocations).toBe(2);
    expect(run.tasks[0]!.logs.map((l) => l.message)).toContain(`${p} woke`);
  });

  it("puts stream chunks and log lines live, while the task runs", async () => {
    const tag = crypto.randomUUID();
    const runId = await trigger(`${p}-stream`, { tag });
    // Seen before the task ends: it is waiting for the gate this test opens.
    await vi.waitUntil(
      async () => {
        const run = await getRun(runId);
        return run.tasks[0]?.logs.some((l) => l.message === `${p} live line`) ? run : false;
      },
      { timeout: 15_000, interval: 50 },
    );
    expect((await getRun(runId)).status).toBe("RUNNING");
    count(`${p}-stream:${tag}:go`);
    expect((await result(runId)).output).toEqual({ chunks: 4 });
    const res = await exports.default.fetch(`http://spindle.test/api/v1/runs/${runId}/stream`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const text = await res.text();
    const chunks = [...text.matchAll(/^id: (\d+)\ndata: (.*)$/gm)].map((m) => [Number(m[1]), m[2]]);
    expect(chunks).toEqual([
      [0, "a"],
      [1, "b"],
      [2, "c"],
      [3, "d"],
    ]);
    expect(text).toContain("event: end");
    // The line sent live and again with the outcome is stored once.
    expect((await getRun(runId)).tasks[0]!.logs.filter((l) => l.message === `${p} live line`)).toHaveLength(1);
  });
});
