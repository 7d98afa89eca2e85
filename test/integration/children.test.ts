import { describe, expect, it, vi } from "vitest";
import { effects } from "../worker/workflows";
import { api, getRun, result, task, trigger } from "./helpers";

describe("child runs from a regular task", () => {
  it("runs children, waits for their outputs, and links them to the parent", async () => {
    const runId = await trigger("t-fanout", { n: 5 });
    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ sum: 0 + 1 + 4 + 9 + 16, one: 10_000 });
    await vi.waitUntil(async () => (await getRun(runId)).children.length === 6, { timeout: 5_000 });
    const linked = await getRun(runId);
    for (const childId of linked.children) {
      const child = await getRun(childId);
      expect(child.parent).toEqual({ runId, taskName: "t-fanout" });
      expect(child.status).toBe("COMPLETED");
      expect(effects.get(`t-leaf:${childId}`)).toBe(1);
    }
    const listed = await api("GET", "/api/v1/runs?workflow=t-leaf&limit=500");
    const mine = listed.body.runs.filter((r: any) => r.parent?.runId === runId);
    expect(mine).toHaveLength(6);
    expect(task(run, "t-fanout").attempts).toHaveLength(1);
  });

  it("treats someTask.run() inside a regular task as a linked child", async () => {
    const runId = await trigger("t-run-inside", {});
    const run = await result(runId);
    expect(run.output).toEqual({ square: 81 });
    await vi.waitUntil(async () => (await getRun(runId)).children.length === 1, { timeout: 5_000 });
    const child = await getRun((await getRun(runId)).children[0]!);
    expect(child).toMatchObject({ workflow: "t-leaf", parent: { runId, taskName: "t-run-inside" }, status: "COMPLETED" });
  });
});
