import { describe, expect, it, vi } from "vitest";
import { RunCancelledError, RunFailedError, SpindleError } from "@spindle/worker-sdk";
import { allowed, diamond, echo, effects, noRetry, replayable, spindle, typed, waiter } from "../worker/workflows";

describe("the SDK over the service binding", () => {
  it("runs a task and returns its output", async () => {
    const out = await typed.run({ Message: "hi" });
    expect(out).toEqual({ upper: "HI" });
  });

  it("starts a run without waiting and gets its result later", async () => {
    const ref = await diamond.runNoWait({ x: 2 }, { additionalMetadata: { via: "sdk" }, priority: 2 });
    expect(ref.runId).toMatch(/^[0-9A-Z]{26}$/);
    expect(await ref.result()).toEqual({ a: { v: 3 }, b: { v: 30 }, c: { v: 300 }, d: { sum: 330 } });
    const run = await spindle.runs.get(ref.runId);
    expect(run).toMatchObject({ status: "COMPLETED", additionalMetadata: { via: "sdk" }, priority: 2 });
  });

  it("runs many and returns their outputs in order", async () => {
    const outs = await echo.runMany([{ n: 1 }, { n: 2 }, { n: 3 }]);
    expect(outs.map((o: any) => o.input.n)).toEqual([1, 2, 3]);
  });

  it("throws a typed error naming the field before sending bad input", async () => {
    const err = await typed.run({ Message: 5 as unknown as string }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpindleError);
    expect((err as SpindleError).code).toBe("input.invalid");
    expect((err as SpindleError).fields?.[0]?.path).toBe("input.Message");
  });

  it("throws RunFailedError with the task's error type and message", async () => {
    const err = await noRetry.run({}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunFailedError);
    expect((err as RunFailedError).error).toMatchObject({ name: "NonRetryableError", message: "stop now", task: "t-non-retryable" });
  });

  it("cancels a run and lists runs", async () => {
    const ref = await waiter.runNoWait({});
    await vi.waitUntil(() => effects.get(`t-wait-abort:${ref.runId}`) === 1, { timeout: 5_000 });
    const cancelled = await ref.cancel();
    expect(cancelled.status).toBe("CANCELLED");
    await expect(ref.result()).rejects.toBeInstanceOf(RunCancelledError);
    await vi.waitUntil(async () => (await spindle.runs.list({ workflow: "t-wait-abort", status: ["CANCELLED"] })).runs.some((r) => r.runId === ref.runId), {
      timeout: 5_000,
    });
  });

  it("refuses an unknown run with a typed error", async () => {
    const err = await spindle.runs.get("01JH8X7Q2K3M4N5P6Q7R8S9T0V").catch((e: unknown) => e);
    expect((err as SpindleError).code).toBe("run.not_found");
  });

  it("replays a failed run through the SDK", async () => {
    const ref = await replayable.runNoWait({});
    await expect(ref.result()).rejects.toBeInstanceOf(RunFailedError);
    allowed.add(ref.runId);
    const replayed = await spindle.runs.replay(ref.runId);
    expect(["QUEUED", "RUNNING"]).toContain(replayed.status);
    expect(await ref.result()).toEqual({ x: { x: 1 }, y: { y: 2 } });
  });
});
