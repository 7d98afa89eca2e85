import { describe, expect, it, vi } from "vitest";
import { opened } from "../../worker/pools";
import { allowed } from "../../worker/workflows";
import { api, getRun, result, task, trigger, until } from "../helpers";

/**
 * Replaying a run clears a durable task's log, so the task spawns new children at the same
 * position. Its old children stay listed but no longer count for that position.
 */
describe("replaying a durable task that spawned children", () => {
  it("gives the replayed spawnChildren only its own children's results", async () => {
    const runId = await trigger("rv-fan-then-fail", {});
    const failed = await result(runId);
    expect(failed.status).toBe("FAILED");
    allowed.add(runId);
    const res = await api("POST", `/api/v1/runs/${runId}/replay`);
    expect(res.status).toBe(200);
    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ squares: [1, 4] });
  });

  it("completes a replayed cancelled fan-out once its new children complete", async () => {
    const tag = `gate-${crypto.randomUUID()}`;
    const runId = await trigger("rv-fan-gated", { tag, n: 2 });
    await until(runId, (r) => task(r, "rv-fan-gated").evicted === true && r.children.length === 2);
    // Let the children start, so the cancel reaches them and they end CANCELLED.
    await new Promise((r) => setTimeout(r, 300));
    await api("POST", `/api/v1/runs/${runId}/cancel`);
    const first = await getRun(runId);
    await vi.waitUntil(async () => (await Promise.all(first.children.map((c) => getRun(c)))).every((c) => c.status === "CANCELLED"), { timeout: 10_000 });
    // Give the children's child_ended reports time to reach the (cancelled) parent.
    await new Promise((r) => setTimeout(r, 300));
    opened.add(tag);
    const res = await api("POST", `/api/v1/runs/${runId}/replay`);
    expect(res.status).toBe(200);
    const run = await result(runId);
    expect(run.error).toBeNull();
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ n: 2 });
  });
});
