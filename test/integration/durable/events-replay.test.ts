import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { WorkflowRun } from "../../../src/run/workflow-run";
import { api, getRun, push, result, task, trigger, until } from "../helpers";

/**
 * A replay clears a durable task's log, so its waits are armed again at the same positions. Each
 * arming has its own id: an event delivery of the previous life, still being retried by the bus,
 * must neither block the new subscription nor satisfy the new wait.
 */
describe("a delivery retried across a replay", () => {
  it("does not satisfy the replayed wait with an event from before the replay", async () => {
    const u = `u-${crypto.randomUUID()}`;
    const original = WorkflowRun.prototype.conditionMet;
    let refuse = true;
    WorkflowRun.prototype.conditionMet = async function (this: WorkflowRun, met) {
      if (refuse && (met.payload as { userId?: string } | null)?.userId === u) throw new Error("run busy");
      return original.call(this, met);
    };
    try {
      const runId = await trigger("d-event", { userId: u });
      await until(runId, (r) => task(r, "d-event").evicted === true);
      // The event is pushed; its delivery to the run fails and the bus will retry it.
      await push("d:update", { userId: u, n: "before" });
      await api("POST", `/api/v1/runs/${runId}/cancel`);
      expect((await api("POST", `/api/v1/runs/${runId}/replay`)).status).toBe(200);
      await until(runId, (r) => task(r, "d-event").evicted === true && task(r, "d-event").status === "RUNNING");
      refuse = false;
      // Let the bus retry its old delivery (it backs off 0.5 s, 1 s, ...).
      await new Promise((r) => setTimeout(r, 3_000));
      const waiting = await getRun(runId);
      expect(waiting.status, "the replayed wait was satisfied by the event pushed before the replay").toBe("RUNNING");
      expect(await env.EVENTS.getByName("events:default:d:update").waiterCount()).toBeGreaterThan(0);
      await push("d:update", { userId: u, n: "after" });
      expect((await result(runId)).output).toEqual({ payload: { userId: u, n: "after" } });
    } finally {
      WorkflowRun.prototype.conditionMet = original;
    }
  });
});
