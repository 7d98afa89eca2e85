import { describe, expect, it } from "vitest";
import { api, result, task, trigger } from "./helpers";

describe("triggering a task over HTTP", () => {
  it("runs a standalone task and returns its output", async () => {
    const runId = await trigger("t-echo", { hello: "world" }, { additionalMetadata: { customer: "acme" } });
    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toMatchObject({ input: { hello: "world" }, metadata: { customer: "acme" }, runId });
    expect(task(run, "t-echo").status).toBe("COMPLETED");
  });

  it("waits for the output when asked to, in one request", async () => {
    const res = await api("POST", "/api/v1/workflows/t-typed/runs?wait=10", { input: { Message: "quick" } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "COMPLETED", output: { upper: "QUICK" } });
  });

  it("answers 202 with the run when the wait is over before the run", async () => {
    const res = await api("POST", "/api/v1/workflows/t-wait-abort/runs?wait=0.2", { input: {} });
    expect(res.status).toBe(202);
    expect(res.body.status).toMatch(/QUEUED|RUNNING/);
    await api("POST", `/api/v1/runs/${res.body.runId}/cancel`);
  });
});
