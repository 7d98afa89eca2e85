import { describe, expect, it, vi } from "vitest";
import { WorkflowRun } from "../../../src/run/workflow-run";
import { opened } from "../../worker/pools";
import { api, getRun, trigger } from "../helpers";

/**
 * A durable task spawns its children before it records them in its `children` checkpoint. A cancel
 * that lands in between must still reach them: every child links itself to its parent, and a link
 * that reaches a cancelled parent cancels the child.
 */
describe("cancel during a durable fan-out", () => {
  it("cancels the children that were created just before the cancel", async () => {
    const tag = `gate-${crypto.randomUUID()}`;
    const original = WorkflowRun.prototype.checkpoint;
    let delayed = false;
    // The spawn's checkpoint is a little slow to arrive (a large fan-out, a busy object...).
    WorkflowRun.prototype.checkpoint = async function (this: WorkflowRun, req) {
      if (req.task === "rv-fan-gated" && req.kind === "children" && !delayed) {
        delayed = true;
        await new Promise((r) => setTimeout(r, 1_000));
      }
      return original.call(this, req);
    };
    try {
      const runId = await trigger("rv-fan-gated", { tag, n: 3 });
      await vi.waitUntil(() => delayed, { timeout: 5_000 });
      const cancelled = await api("POST", `/api/v1/runs/${runId}/cancel`);
      expect(cancelled.body.status).toBe("CANCELLED");
      await new Promise((r) => setTimeout(r, 1_500));
      // Find the children through the run index (the parent never learned their ids).
      const list = await api("GET", "/api/v1/runs?workflow=rv-gated&limit=500");
      const children = list.body.runs.filter((r: any) => r.parent?.runId === runId);
      expect(children).toHaveLength(3);
      const statuses = await Promise.all(children.map(async (c: any) => (await getRun(c.runId)).status));
      expect(statuses, "the children of the cancelled parent").toEqual(["CANCELLED", "CANCELLED", "CANCELLED"]);
      expect((await getRun(runId)).children, "children linked to the cancelled parent").toHaveLength(3);
    } finally {
      WorkflowRun.prototype.checkpoint = original;
      opened.add(tag);
    }
  });
});
