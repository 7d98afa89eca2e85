import { describe, expect, it } from "vitest";
import { allowed, effects } from "../worker/workflows";
import { api, result, task, trigger, until } from "./helpers";

describe("replay", () => {
  it("re-runs the failed task and what depends on it, not what already completed", async () => {
    const runId = await trigger("t-replay", {});
    const failed = await result(runId);
    expect(failed.status).toBe("FAILED");
    expect(task(failed, "y").error).toMatchObject({ message: "not yet" });

    allowed.add(runId);
    const res = await api("POST", `/api/v1/runs/${runId}/replay`);
    expect(res.status).toBe(200);
    expect(["QUEUED", "RUNNING"]).toContain(res.body.status);

    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ x: { x: 1 }, y: { y: 2 } });
    expect(run.error).toBeNull();
    expect(effects.get(`t-replay:x:${runId}`)).toBe(1);
    expect(effects.get(`t-replay:y:${runId}`)).toBe(2);
    const y = task(run, "y");
    expect(y.retryCount).toBe(0);
    expect(y.attempts.map((a) => a.status)).toEqual(["FAILED", "COMPLETED"]);
  });

  it("refuses to replay a run that is still going or has nothing to replay", async () => {
    const done = await result(await trigger("t-echo", {}));
    const nothing = await api("POST", `/api/v1/runs/${done.runId}/replay`);
    expect(nothing.status).toBe(409);
    expect(nothing.body.error.code).toBe("run.conflict");

    const going = await trigger("t-wait-abort", {});
    const busy = await api("POST", `/api/v1/runs/${going}/replay`);
    expect(busy.status).toBe(409);
    expect(busy.body.error.message).toMatch(/QUEUED|RUNNING/);
    await api("POST", `/api/v1/runs/${going}/cancel`);
  });

  it("replays a cancelled run to completion, running again only what did not complete", async () => {
    const runId = await trigger("t-two-step", {});
    await until(runId, (r) => task(r, "first").status === "RUNNING");
    await api("POST", `/api/v1/runs/${runId}/cancel`);
    const cancelled = await result(runId);
    expect(cancelled.status).toBe("CANCELLED");
    expect(task(cancelled, "second").status).toBe("CANCELLED");
    allowed.add(runId);
    const res = await api("POST", `/api/v1/runs/${runId}/replay`);
    expect(res.status).toBe(200);
    expect(task(res.body, "first").status).toMatch(/QUEUED|RUNNING/);
    const run = await result(runId);
    expect(run.status, JSON.stringify(run.error)).toBe("COMPLETED");
    expect(run.output).toEqual({ first: { done: true }, second: { ran: true } });
    expect(effects.get(`t-two-step:first:${runId}`)).toBe(2);
    expect(effects.get(`t-two-step:second:${runId}`)).toBe(1);
    expect(task(run, "first").attempts.map((a) => a.status)).toEqual(["CANCELLED", "COMPLETED"]);
  });
});
