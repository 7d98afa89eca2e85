import { describe, expect, it } from "vitest";
import { taskDef as t } from "../support/definitions";
import type { TaskStatus, WorkflowDefinition } from "@spindle/worker-sdk/protocol";
import { planRun, runOutput } from "../../src/core/run-machine";

const diamond: WorkflowDefinition = {
  name: "d",
  kind: "workflow",
  tasks: [t("a"), t("b", ["a"]), t("c", ["a"]), t("d", ["b", "c"]), t("fail", [], { role: "on_failure" }), t("ok", [], { role: "on_success" })],
};
const statuses = (s: Record<string, TaskStatus>) => new Map(Object.entries(s));

describe("planRun", () => {
  it("starts the roots of a fresh run", () => {
    expect(planRun(diamond, statuses({}))).toEqual({ ready: ["a"], doomed: [], unneeded: [], end: null });
  });
  it("waits for every parent before starting a task", () => {
    expect(planRun(diamond, statuses({ a: "COMPLETED", b: "COMPLETED", c: "RUNNING" })).ready).toEqual([]);
    expect(planRun(diamond, statuses({ a: "COMPLETED", b: "COMPLETED", c: "COMPLETED" })).ready).toEqual(["d"]);
  });
  it("treats a skipped parent as done", () => {
    expect(planRun(diamond, statuses({ a: "COMPLETED", b: "SKIPPED", c: "COMPLETED" })).ready).toEqual(["d"]);
  });
  it("dooms what depends on a failed task, then runs on-failure once all else has ended", () => {
    const afterFailure = planRun(diamond, statuses({ a: "COMPLETED", b: "FAILED", c: "RUNNING" }));
    expect(afterFailure).toEqual({ ready: [], doomed: ["d"], unneeded: [], end: null });
    const allEnded = planRun(diamond, statuses({ a: "COMPLETED", b: "FAILED", c: "COMPLETED", d: "CANCELLED" }));
    expect(allEnded).toEqual({ ready: ["fail"], doomed: [], unneeded: ["ok"], end: null });
    const handled = planRun(diamond, statuses({ a: "COMPLETED", b: "FAILED", c: "COMPLETED", d: "CANCELLED", fail: "COMPLETED", ok: "SKIPPED" }));
    expect(handled.end).toBe("FAILED");
  });
  it("runs on-success after everything completed, and fails the run if it fails", () => {
    const done = { a: "COMPLETED", b: "COMPLETED", c: "COMPLETED", d: "COMPLETED" } as const;
    expect(planRun(diamond, statuses(done))).toEqual({ ready: ["ok"], doomed: [], unneeded: ["fail"], end: null });
    expect(planRun(diamond, statuses({ ...done, fail: "SKIPPED", ok: "COMPLETED" })).end).toBe("COMPLETED");
    expect(planRun(diamond, statuses({ ...done, fail: "SKIPPED", ok: "FAILED" })).end).toBe("FAILED");
  });
  it("ends a workflow without hooks when its tasks end", () => {
    const plain: WorkflowDefinition = { name: "p", kind: "workflow", tasks: [t("a"), t("b", ["a"])] };
    expect(planRun(plain, statuses({ a: "COMPLETED", b: "COMPLETED" })).end).toBe("COMPLETED");
    expect(planRun(plain, statuses({ a: "FAILED", b: "CANCELLED" })).end).toBe("FAILED");
  });
});

describe("runOutput", () => {
  it("is the task's output for a standalone task and a map for a DAG", () => {
    const single: WorkflowDefinition = { name: "s", kind: "task", tasks: [t("s")] };
    expect(runOutput(single, [{ name: "s", status: "COMPLETED", output: { x: 1 } }])).toEqual({ x: 1 });
    expect(
      runOutput(diamond, [
        { name: "a", status: "COMPLETED", output: 1 },
        { name: "b", status: "SKIPPED", output: null },
        { name: "c", status: "COMPLETED", output: 3 },
      ]),
    ).toEqual({ a: 1, c: 3 });
  });
});
