import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { WorkflowRun } from "../../src/run/workflow-run";
import { effects } from "../worker/workflows";
import { api, getRun, result, task, trigger } from "./helpers";

const regularQueue = () => env.TASK_QUEUES.getByName("tq:default:test:regular");

/** `${runId}/${task}` of the attempts the SDK watches, and the run's answers to their outcomes. */
const watching = new Set<string>();
const answers = new Map<string, unknown>();
const runIdOf = (run: WorkflowRun) => (run as unknown as { runs: { get(): { runId: string } | null } }).runs.get()?.runId;
const originalWatch = WorkflowRun.prototype.watchTask;
const originalComplete = WorkflowRun.prototype.completeTask;
beforeAll(() => {
  WorkflowRun.prototype.watchTask = function (this: WorkflowRun, ref) {
    watching.add(`${runIdOf(this)}/${ref.task}`);
    return originalWatch.call(this, ref);
  };
  WorkflowRun.prototype.completeTask = async function (this: WorkflowRun, ref, outcome) {
    const reply = await originalComplete.call(this, ref, outcome);
    answers.set(`${runIdOf(this)}/${ref.task}`, reply);
    return reply;
  };
});
afterAll(() => {
  WorkflowRun.prototype.watchTask = originalWatch;
  WorkflowRun.prototype.completeTask = originalComplete;
});

describe("cancellation", () => {
  it("aborts a running task and never starts what depends on it", async () => {
    const runId = await trigger("t-two-step", {});
    // The SDK is watching the first task's attempt: a cancel reaches it through that watch.
    await vi.waitUntil(() => watching.has(`${runId}/first`), { timeout: 10_000 });
    const cancelledAt = Date.now();
    const res = await api("POST", `/api/v1/runs/${runId}/cancel`);
    expect(res.status).toBe(200);
    expect(res.body.status).toBe("CANCELLED");
    const run = await result(runId);
    expect(run.status).toBe("CANCELLED");
    expect(task(run, "first")).toMatchObject({ status: "CANCELLED", error: { code: "run.cancelled" } });
    expect(task(run, "second").status).toBe("CANCELLED");
    expect(Date.parse(run.finishedAt!) - cancelledAt).toBeLessThan(2_000);
    // The aborted attempt answers, is refused, and gives its slot back; nothing else was queued.
    await vi.waitUntil(() => answers.has(`${runId}/first`), { timeout: 10_000 });
    expect(answers.get(`${runId}/first`)).toEqual({ ok: true, value: { accepted: false } });
    await vi.waitUntil(async () => (await regularQueue().stats())?.inFlight === 0, { timeout: 10_000 });
    expect(await regularQueue().stats()).toMatchObject({ inFlight: 0, ready: 0 });
    expect(effects.get(`t-two-step:second:${runId}`)).toBeUndefined();
  });

  it("fires the task's abortSignal when its run is cancelled", async () => {
    const runId = await trigger("t-wait-abort", {});
    await vi.waitUntil(() => effects.get(`t-wait-abort:${runId}`) === 1 && watching.has(`${runId}/t-wait-abort`), { timeout: 10_000 });
    await api("POST", `/api/v1/runs/${runId}/cancel`);
    // The function saw its signal fire and returned well before its 30 s wait.
    await vi.waitUntil(() => effects.get(`t-wait-abort:after:${runId}`) === 1, { timeout: 3_000 });
    const run = await getRun(runId);
    expect(run.status).toBe("CANCELLED");
    expect(run.output).toBeNull();
  });

  it("takes a queued task out of its worker's queue", async () => {
    const runId = await trigger("t-ghost-cancel", {});
    const queue = env.TASK_QUEUES.getByName("tq:default:parked:regular");
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
