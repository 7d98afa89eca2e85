import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { advanceClock } from "../../src/core/clock";
import { effects } from "../worker/workflows";
import { getRun, result, task, trigger } from "./helpers";

describe("execution and schedule timeouts", () => {
  it("fails an attempt at its execution timeout even if the worker never answers", async () => {
    const runId = await trigger("t-raw-hang", {});
    const run = await result(runId);
    expect(run.status).toBe("FAILED");
    expect(run.error).toMatchObject({ code: "task.timeout", name: "TimeoutError" });
    expect(run.error!.message).toContain("exceeded its execution timeout of 300ms");
    const t = task(run, "t-raw-hang");
    expect(Date.parse(t.finishedAt!) - Date.parse(t.startedAt!)).toBeGreaterThanOrEqual(300);
    expect(effects.get(`t-raw-hang:${runId}:started`)).toBe(1);
  });

  it("ignores the late result of a timed-out attempt, and retries it", async () => {
    // t-raw-late: timeout 300 ms, one retry; every attempt answers "completed" after 900 ms.
    const runId = await trigger("t-raw-late", {});
    const run = await result(runId);
    expect(run.status).toBe("FAILED");
    expect(run.error).toMatchObject({ code: "task.timeout" });
    await vi.waitUntil(() => effects.get(`t-raw-late:${runId}:answered`) === 2, { timeout: 5_000 });
    await new Promise((r) => setTimeout(r, 100));
    const after = await getRun(runId);
    const t = task(after, "t-raw-late");
    expect(after.status).toBe("FAILED");
    expect(after.output).toBeNull();
    expect(t.attempts.map((a) => [a.status, a.error?.code])).toEqual([
      ["FAILED", "task.timeout"],
      ["FAILED", "task.timeout"],
    ]);
    // The late answers' logs are kept with their attempts: they tell what happened.
    expect(t.logs.map((l) => l.message)).toEqual(["late answer of attempt 1", "late answer of attempt 2"]);
  });

  it("aborts the SDK task's signal at the timeout and records a timeout error", async () => {
    const runId = await trigger("t-slow", {});
    const run = await result(runId);
    expect(run.status).toBe("FAILED");
    expect(run.error).toMatchObject({ code: "task.timeout", name: "TimeoutError" });
    expect(task(run, "t-slow").attempts).toHaveLength(2);
    expect(effects.get(`t-slow:${runId}`)).toBe(2);
  });

  it("fails a task that waits longer than its schedule timeout to start", async () => {
    // The parked worker has no slots: its tasks are queued and never start.
    const runId = await trigger("t-ghost-timeout", {});
    await vi.waitUntil(async () => (await getRun(runId)).tasks[0]!.queuedReason !== null, { timeout: 5_000 });
    expect((await getRun(runId)).tasks[0]!.queuedReason).toContain("'parked'");
    advanceClock(61_000);
    try {
      expect(await runDurableObjectAlarm(env.RUNS.getByName(`run:default:${runId}`))).toBe(true);
    } finally {
      advanceClock(-61_000);
    }
    const run = await getRun(runId);
    expect(run.status).toBe("FAILED");
    expect(run.error).toMatchObject({ code: "task.schedule_timeout" });
    expect(run.error!.message).toContain("schedule timeout of 1m");
    expect(task(run, "t-ghost-timeout").attempts).toHaveLength(1);
  });
});
