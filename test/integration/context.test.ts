import { describe, expect, it } from "vitest";
import { result, task, trigger } from "./helpers";

describe("the task context", () => {
  it("stores the task's log lines with their levels", async () => {
    const run = await result(await trigger("t-logs", {}));
    expect(task(run, "t-logs").logs.map((l) => [l.level, l.message, l.attempt])).toEqual([
      ["info", 'hello {"n":1}', 1],
      ["warn", "careful", 1],
      ["error", "bad thing", 1],
    ]);
  });

  it("gives the task its run id, task run id and metadata", async () => {
    const runId = await trigger("t-echo", { a: 1 }, { additionalMetadata: { who: "me" } });
    const run = await result(runId);
    expect(run.output).toMatchObject({ runId, metadata: { who: "me" }, taskRunId: task(run, "t-echo").taskRunId });
    expect(run.additionalMetadata).toEqual({ who: "me" });
  });
});
