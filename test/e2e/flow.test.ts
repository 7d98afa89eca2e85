import { describe, expect, inject, it } from "vitest";
import { client } from "./dev-server";

const server = inject("devServer");
const api = client(server);

async function until(runId: string, check: (run: any) => boolean, what: string) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const run = (await api.call("GET", `/api/v1/runs/${runId}`)).body;
    if (check(run)) return run;
    if (Date.now() > deadline) throw new Error(`run ${runId} never ${what}: ${JSON.stringify(run.tasks)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The most intervals open at once (an end at t before a start at t). */
function overlap(intervals: { startedAt: number; endedAt: number }[]): number {
  const events = intervals.flatMap((i) => [{ at: i.startedAt, d: 1 }, { at: i.endedAt, d: -1 }]).sort((a, b) => a.at - b.at || a.d - b.d);
  let open = 0;
  let max = 0;
  for (const e of events) max = Math.max(max, (open += e.d));
  return max;
}

const running = (run: any) => run.tasks[0]?.status === "RUNNING";

describe("flow-control examples over HTTP, as `npm start` runs them", () => {
  it("concurrency-rr runs at most 2 of a group at once, and lists the group while it holds it", async () => {
    // Group a is busy for at least two turns of 1.5 s: its key is listed while the first runs go.
    const ids = await Promise.all(["a", "a", "a", "a", "b", "b"].map((g) => api.trigger("concurrency-rr", { group: `e2e-rr-${g}`, ms: 1500 })));
    await until(ids[0]!, (r) => r.status !== "QUEUED", "started");
    const listed = await api.call("GET", "/api/v1/concurrency");
    expect(listed.status).toBe(200);
    const key = listed.body.concurrency.find((k: any) => k.key === "e2e-rr-a");
    expect(key).toMatchObject({ workflow: "concurrency-rr", task: null, limitStrategy: "GROUP_ROUND_ROBIN", maxRuns: 2 });
    expect(key.running).toBeLessThanOrEqual(2);
    const runs = await Promise.all(ids.map((id) => api.result(id)));
    expect(runs.map((r: any) => r.status)).toEqual(Array(6).fill("COMPLETED"));
    const outputs = runs.map((r: any) => r.output["concurrency-rr"]);
    for (const o of outputs) expect(o).toEqual({ group: expect.any(String), startedAt: expect.any(Number), endedAt: expect.any(Number) });
    expect(overlap(outputs.filter((o: any) => o.group === "e2e-rr-a"))).toBe(2);
  });

  it("concurrency-cancel-in-progress cancels the running run for the newest, saying which key and strategy", async () => {
    const first = await api.trigger("concurrency-cancel-in-progress", { group: "e2e-cip" });
    await until(first, running, "started");
    const second = await api.trigger("concurrency-cancel-in-progress", { group: "e2e-cip" });
    const [a, b] = await Promise.all([api.result(first), api.result(second)]);
    expect(a.status).toBe("CANCELLED");
    expect(a.error.message).toContain("concurrency key 'e2e-cip' (CANCEL_IN_PROGRESS)");
    expect(b.status).toBe("COMPLETED");
    expect(b.output).toEqual({ done: true });
  });

  it("concurrency-cancel-newest cancels a run that finds its group busy", async () => {
    const first = await api.trigger("concurrency-cancel-newest", { group: "e2e-cn" });
    await until(first, running, "started");
    const second = await api.trigger("concurrency-cancel-newest", { group: "e2e-cn" });
    const b = await api.result(second);
    expect(b.status).toBe("CANCELLED");
    expect(b.error.message).toContain("concurrency key 'e2e-cn' (CANCEL_NEWEST)");
    const a = await api.result(first);
    expect(a.status).toBe("COMPLETED");
    expect(a.output).toEqual({ done: true });
  });

  it("concurrency-multiple-keys runs one per user and up to three per group", async () => {
    const inputs = [1, 2, 3, 4, 5, 6].map((i) => ({ group: "e2e-mk", user: `u${i % 2}` }));
    const ids = await Promise.all(inputs.map((input) => api.trigger("concurrency-multiple-keys", input)));
    const runs = await Promise.all(ids.map((id) => api.result(id)));
    expect(runs.every((r: any) => r.status === "COMPLETED")).toBe(true);
    const outputs = runs.map((r: any) => r.output);
    for (const user of ["u0", "u1"]) expect(overlap(outputs.filter((o: any) => o.user === user))).toBe(1);
    expect(overlap(outputs)).toBeLessThanOrEqual(3);
  });

  it("rate-limit starts no more than 4 runs of one user in any two seconds, and says why one waits", async () => {
    const ids = await Promise.all(Array.from({ length: 8 }, () => api.trigger("rate-limit", { userId: "e2e-user-42" })));
    const last = await until(ids[7]!, (r) => r.status !== "QUEUED" || /exhausted/.test(r.tasks[0].queuedReason ?? ""), "waited or ran");
    if (last.status === "QUEUED") expect(last.tasks[0].queuedReason).toMatch(/^rate limit 'e2e-user-42' exhausted \(2\/second\), next unit in \d+\.\d s$/);
    const runs = await Promise.all(ids.map((id) => api.result(id)));
    expect(runs.every((r: any) => r.status === "COMPLETED" && r.output.userId === "e2e-user-42")).toBe(true);
    const starts = runs.map((r: any) => r.output.startedAt).sort((a: number, b: number) => a - b);
    for (let i = 4; i < starts.length; i++) expect(starts[i] - starts[i - 4]).toBeGreaterThanOrEqual(2000);
  });

  it("rate-limit-static takes units of external-api, defined and listed over HTTP", async () => {
    const put = await api.call("PUT", "/api/v1/rate-limits/external-api", { limit: 2, duration: "hour" });
    expect(put.status).toBe(200);
    const ids = await Promise.all([1, 2, 3].map(() => api.trigger("rate-limit-static", {})));
    const done: string[] = [];
    const waiting = await (async () => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const views = await Promise.all(ids.map(async (id) => (await api.call("GET", `/api/v1/runs/${id}`)).body));
        const completed = views.filter((v: any) => v.status === "COMPLETED");
        const blocked = views.find((v: any) => /exhausted/.test(v.tasks[0].queuedReason ?? ""));
        if (completed.length === 2 && blocked) {
          done.push(...completed.map((v: any) => v.runId));
          return blocked;
        }
        if (Date.now() > deadline) throw new Error(`never 2 done and 1 waiting: ${JSON.stringify(views.map((v: any) => [v.status, v.tasks[0].queuedReason]))}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    expect(waiting.tasks[0].queuedReason).toMatch(/^rate limit 'external-api' exhausted \(2\/hour\), next unit in/);
    const listed = await api.call("GET", "/api/v1/rate-limits");
    expect(listed.body.rateLimits.find((r: any) => r.key === "external-api")).toMatchObject({ kind: "static", limit: 2, duration: "hour", unitsLeft: 0 });
    // A higher limit lets the waiting run start at once.
    await api.call("PUT", "/api/v1/rate-limits/external-api", { limit: 1000, duration: "hour" });
    const last = await api.result(waiting.runId);
    expect(last.status).toBe("COMPLETED");
    expect(last.output).toEqual({ startedAt: expect.any(Number) });
  });

  it("slot-cost takes two slots and completes after about 500 ms", async () => {
    const run = await api.result(await api.trigger("slot-cost", {}));
    expect(run.status).toBe("COMPLETED");
    expect(run.output.endedAt - run.output.startedAt).toBeGreaterThanOrEqual(500);
  });
});
