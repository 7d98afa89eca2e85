import { describe, expect, it } from "vitest";
import { result, task, trigger } from "./helpers";

describe("triggering a task over HTTP", () => {
  it("runs a standalone task and returns its output", async () => {
    const runId = await trigger("t-echo", { hello: "world" }, { additionalMetadata: { customer: "acme" } });
    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toMatchObject({ input: { hello: "world" }, metadata: { customer: "acme" }, runId });
    expect(task(run, "t-echo").status).toBe("COMPLETED");
  });
});
