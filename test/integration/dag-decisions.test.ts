import { describe, expect, it } from "vitest";
import { effects } from "../worker/workflows";
import { result, task, trigger } from "./helpers";

/**
 * A conditional task decided the moment it is ready (here skipped by a parent condition) plans the
 * run again from inside a plan; its plain sibling must still be queued once.
 */
describe("a conditional task decided at once next to a plain sibling", () => {
  it("queues the sibling once", async () => {
    const runId = await trigger("rv-siblings", {});
    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    expect(task(run, "cond").status).toBe("SKIPPED");
    expect(effects.get(`rv-siblings:plain:${runId}`)).toBe(1);
    const plain = task(run, "plain");
    // One attempt, not a phantom first attempt left QUEUED forever next to the one that ran.
    expect(plain.attempts.map((a) => a.status)).toEqual(["COMPLETED"]);
    expect(plain.attempt).toBe(1);
  });
});

/**
 * A parent condition is decided once (a parent's output is final): a `waitFor` that needs one that
 * is false can never hold, and the task ends instead of leaving its run RUNNING forever.
 */
describe("a waitFor that can never hold", () => {
  it("ends the run instead of leaving it RUNNING forever", async () => {
    const runId = await trigger("rv-parent-wait", {});
    const run = await result(runId, { timeoutMs: 5_000 });
    expect(run.status).not.toBe("RUNNING");
  });
});
