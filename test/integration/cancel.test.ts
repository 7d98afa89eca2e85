import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { effects } from "../worker/workflows";
import { registration, taskDef, workflowDef } from "../support/definitions";
import { api, getRun, result, task, TOKEN, trigger } from "./helpers";

describe("cancellation", () => {
  it("aborts a running task and never starts what depends on it", async () => {
    const runId = await trigger("t-two-step", {});
    await vi.waitUntil(async () => task(await getRun(runId), "first").status === "RUNNING", { timeout: 5_000 });
    // Let the task settle into its wait so the SDK is watching its attempt.
    await new Promise((r) => setTimeout(r, 400));
    const cancelledAt = Date.now();
    const res = await api("POST", `/api/v1/runs/${runId}/cancel`);
    expect(res.status).toBe(200);
    expect(res.body.status).toBe("CANCELLED");
    const run = await result(runId);
    expect(run.status).toBe("CANCELLED");
    expect(task(run, "first")).toMatchObject({ status: "CANCELLED", error: { code: "run.cancelled" } });
    expect(task(run, "second").status).toBe("CANCELLED");
    expect(Date.parse(run.finishedAt!) - cancelledAt).toBeLessThan(2_000);
    await new Promise((r) => setTimeout(r, 200));
    expect(effects.get(`t-two-step:second:${runId}`)).toBeUndefined();
  });

  it("fires the task's abortSignal when its run is cancelled", async () => {
    const runId = await trigger("t-wait-abort", {});
    await vi.waitUntil(() => effects.get(`t-wait-abort:${runId}`) === 1, { timeout: 5_000 });
    await new Promise((r) => setTimeout(r, 400));
    await api("POST", `/api/v1/runs/${runId}/cancel`);
    // The function saw its signal fire and returned well before its 30 s wait.
    await vi.waitUntil(() => effects.get(`t-wait-abort:after:${runId}`) === 1, { timeout: 3_000 });
    const run = await getRun(runId);
    expect(run.status).toBe("CANCELLED");
    expect(run.output).toBeNull();
  });

  it("takes a queued task out of its worker's queue", async () => {
    await env.SPINDLE.register(TOKEN, registration("ghost2", [workflowDef("t-ghost-cancel", [taskDef("t-ghost-cancel", [], { scheduleTimeoutMs: 60_000 })], "task")], 5));
    const runId = await trigger("t-ghost-cancel", {});
    const queue = env.TASK_QUEUES.getByName("tq:default:ghost2:regular");
    await vi.waitUntil(async () => (await queue.stats())?.ready === 1, { timeout: 5_000 });
    const res = await api("POST", `/api/v1/runs/${runId}/cancel`);
    expect(res.body.status).toBe("CANCELLED");
    await vi.waitUntil(async () => (await queue.stats())?.ready === 0, { timeout: 5_000 });
    // Cancelling again is harmless and changes nothing.
    const again = await api("POST", `/api/v1/runs/${runId}/cancel`);
    expect(again.status).toBe(200);
    expect(again.body.finishedAt).toBe(res.body.finishedAt);
  });
});
