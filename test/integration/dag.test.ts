import { describe, expect, it } from "vitest";
import { timeline } from "../worker/workflows";
import { result, task, trigger } from "./helpers";

describe("DAG workflows", () => {
  it("starts a task only after all its parents complete, and gives it their outputs", async () => {
    const runId = await trigger("t-diamond", { x: 1 });
    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    // a → (b, c) → d: a gives 2; b gives 20, c gives 200; d sums what its parents produced.
    expect(run.output).toEqual({ a: { v: 2 }, b: { v: 20 }, c: { v: 200 }, d: { sum: 220 } });

    const at = (key: string) => timeline.get(`${runId}:${key}`)![0]!;
    expect(at("b:start")).toBeGreaterThanOrEqual(at("a:end"));
    expect(at("c:start")).toBeGreaterThanOrEqual(at("a:end"));
    // d waits for the slower parent, not just the first one to finish.
    expect(at("d:start")).toBeGreaterThanOrEqual(at("b:end"));
    expect(at("d:start")).toBeGreaterThanOrEqual(at("c:end"));

    const started = (name: string) => Date.parse(task(run, name).startedAt!);
    const finished = (name: string) => Date.parse(task(run, name).finishedAt!);
    expect(started("d")).toBeGreaterThanOrEqual(Math.max(finished("b"), finished("c")));
    for (const name of ["a", "b", "c", "d"]) {
      expect(task(run, name)).toMatchObject({ status: "COMPLETED", attempt: 1, retryCount: 0 });
      expect(task(run, name).durationMs).toBeGreaterThanOrEqual(0);
    }
  });

  it("runs the on-success task after every task has completed", async () => {
    const run = await result(await trigger("t-hooks", { fail: false }));
    expect(run.status).toBe("COMPLETED");
    expect(task(run, "celebrate")).toMatchObject({ status: "COMPLETED", output: { saw: { ok: true } }, role: "on_success" });
    expect(task(run, "cleanup").status).toBe("SKIPPED");
    expect(Date.parse(task(run, "celebrate").startedAt!)).toBeGreaterThanOrEqual(Date.parse(task(run, "after").finishedAt!));
  });

  it("cancels what depends on a failed task and runs the on-failure task with the errors", async () => {
    const run = await result(await trigger("t-hooks", { fail: true }));
    expect(run.status).toBe("FAILED");
    expect(run.error).toMatchObject({ name: "RangeError", message: "step failed on purpose", task: "step" });
    expect(task(run, "step")).toMatchObject({ status: "FAILED", error: { name: "RangeError", message: "step failed on purpose" } });
    expect(task(run, "after")).toMatchObject({ status: "CANCELLED", error: { code: "task.upstream_failed" } });
    expect(task(run, "cleanup")).toMatchObject({
      status: "COMPLETED",
      role: "on_failure",
      output: { errors: { step: "step failed on purpose" } },
    });
    expect(task(run, "celebrate").status).toBe("SKIPPED");
  });
});
