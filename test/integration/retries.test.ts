import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { effects } from "../worker/workflows";
import { getRun, result, task, trigger } from "./helpers";

const runStub = (runId: string) => env.RUNS.getByName(`run:default:${runId}`);

describe("retries", () => {
  it("retries a failing task with the configured exponential backoff, capped at maxSeconds", async () => {
    // t-flaky: retries 3, backoff factor 2, maxSeconds 3; fails until retryCount reaches 2.
    const runId = await trigger("t-flaky", { succeedOn: 2 });
    const stub = runStub(runId);

    const backoffAfterFailure = async (failures: number) => {
      await vi.waitUntil(async () => (await getRun(runId)).tasks[0]!.attempts.filter((a) => a.status === "FAILED").length === failures, {
        timeout: 10_000,
        interval: 20,
      });
      const run = await getRun(runId);
      const failedAt = Date.parse(run.tasks[0]!.attempts[failures - 1]!.finishedAt!);
      const alarm = await runInDurableObject(stub, (_i, state) => state.storage.getAlarm());
      return { run, delay: alarm! - failedAt };
    };

    const first = await backoffAfterFailure(1);
    expect(first.delay).toBeGreaterThanOrEqual(2_000); // 2^1 s
    expect(first.delay).toBeLessThan(2_100);
    expect(first.run.tasks[0]!.status).toBe("QUEUED");
    expect(first.run.tasks[0]!.queuedReason).toMatch(/retry 1 of 3, backing off 2s/);
    expect(await runDurableObjectAlarm(stub)).toBe(true);

    const second = await backoffAfterFailure(2);
    expect(second.delay).toBeGreaterThanOrEqual(3_000); // 2^2 = 4 s, capped at 3 s
    expect(second.delay).toBeLessThan(3_100);
    expect(await runDurableObjectAlarm(stub)).toBe(true);

    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ retryCount: 2 });
    const t = task(run, "t-flaky");
    expect(t.retryCount).toBe(2);
    expect(t.attempts.map((a) => [a.retryCount, a.status])).toEqual([
      [0, "FAILED"],
      [1, "FAILED"],
      [2, "COMPLETED"],
    ]);
    expect(t.attempts[0]!.error).toMatchObject({ name: "TypeError", message: "boom 0" });
    expect(effects.get(`t-flaky:${runId}`)).toBe(3);
    expect(t.logs.map((l) => [l.attempt, l.message])).toEqual([
      [1, "attempt with retryCount 0"],
      [2, "attempt with retryCount 1"],
      [3, "attempt with retryCount 2"],
    ]);
  });

  it("fails for good when the retries run out, keeping the error's type name and message", async () => {
    const runId = await trigger("t-flaky", { succeedOn: 99 });
    const stub = runStub(runId);
    for (let fired = 0; fired < 3; ) {
      const run = await getRun(runId);
      if (run.status === "FAILED") break;
      if (run.tasks[0]!.status === "QUEUED" && run.tasks[0]!.queuedReason?.includes("backing off")) {
        if (await runDurableObjectAlarm(stub)) fired++;
      } else await new Promise((r) => setTimeout(r, 20));
    }
    const run = await result(runId);
    expect(run.status).toBe("FAILED");
    expect(run.error).toMatchObject({ code: "task.failed", name: "TypeError", message: "boom 3", task: "t-flaky" });
    expect(task(run, "t-flaky").attempts).toHaveLength(4);
    expect(effects.get(`t-flaky:${runId}`)).toBe(4);
  });

  it("fails at once on a NonRetryableError, with retries left", async () => {
    const runId = await trigger("t-non-retryable", {});
    const run = await result(runId);
    expect(run.status).toBe("FAILED");
    expect(run.error).toMatchObject({ name: "NonRetryableError", message: "stop now", retryable: false });
    expect(task(run, "t-non-retryable").attempts).toHaveLength(1);
    expect(effects.get(`t-non-retryable:${runId}`)).toBe(1);
  });
});
