import { describe, expect, it } from "vitest";
import type { EngineClient } from "../../worker-sdk/src/client";
import { DurableContext, Suspension } from "../../worker-sdk/src/durable-context";
import { SpindleError } from "../../worker-sdk/src/errors";
import type { Assignment, CheckpointRecord, CheckpointRequest } from "../../worker-sdk/src/protocol";

/**
 * The SDK's side of a stale invocation, with the engine's replies given by hand (the engine's side
 * runs in workerd: test/integration/durable/replay-matching.test.ts).
 */
function setup(log: CheckpointRecord[] = [], reply: (req: CheckpointRequest) => Promise<unknown> = async (req) => ({ status: "resolved", result: req.result })) {
  const requests: CheckpointRequest[] = [];
  const client = { checkpoint: async (_runId: string, req: CheckpointRequest) => (requests.push(req), reply(req)) } as unknown as EngineClient;
  const assignment = {
    runId: "run",
    workflowName: "wf",
    taskName: "t",
    taskRunId: "tr",
    attempt: 1,
    retryCount: 0,
    invocation: 2,
    input: null,
    parentOutputs: {},
    skippedParents: [],
    additionalMetadata: {},
    errors: {},
    executionTimeoutMs: 60_000,
    startedAt: 0,
    firstStartedAt: 0,
    durable: { log },
  } satisfies Assignment;
  const controller = new AbortController();
  const suspension = new Suspension();
  const ctx = new DurableContext(assignment, null, controller.signal, () => client, suspension);
  return { ctx, controller, suspension, requests };
}

describe("a stale durable invocation", () => {
  it("runs no memo body once a checkpoint reply said the invocation was superseded", async () => {
    const { ctx, suspension } = setup([], async () => {
      throw new SpindleError("task.superseded", "invocation 2 of attempt 1 of task 't' is no longer current");
    });
    let runs = 0;
    await expect(ctx.memo("first", () => ++runs)).rejects.toMatchObject({ code: "task.superseded" });
    expect(runs).toBe(1);
    expect(suspension.fatal).toMatchObject({ code: "task.superseded" });
    await expect(ctx.memo("second", () => ++runs)).rejects.toMatchObject({ code: "task.superseded" });
    await expect(ctx.now()).rejects.toMatchObject({ code: "task.superseded" });
    expect(runs).toBe(1);
  });

  it("throws at every call, replayed ones too, once its abort signal fired, and records nothing", async () => {
    const record: CheckpointRecord = { seq: 0, kind: "memo", key: "memo:a", occurrence: 0, status: "resolved", result: { value: 1 } };
    const { ctx, controller, requests } = setup([record]);
    controller.abort(new Error("the run was cancelled"));
    let runs = 0;
    await expect(ctx.memo("a", () => ++runs)).rejects.toThrow(/no longer current \(the run was cancelled\)/);
    await expect(ctx.memo("b", () => ++runs)).rejects.toMatchObject({ code: "task.superseded" });
    await expect(ctx.sleepFor("1s")).rejects.toMatchObject({ code: "task.superseded" });
    expect(runs).toBe(0);
    expect(requests).toEqual([]);
  });

  it("records nothing for a memo whose body was running when the invocation went stale", async () => {
    const { ctx, controller, requests } = setup();
    const memo = ctx.memo("slow", async () => {
      controller.abort(new Error("timed out"));
      return 1;
    });
    await expect(memo).rejects.toMatchObject({ code: "task.superseded" });
    expect(requests).toEqual([]);
  });

  it("refuses a memo without a function, naming what is wrong", async () => {
    const { ctx } = setup();
    await expect((ctx.memo as (...args: unknown[]) => Promise<unknown>)("name")).rejects.toThrow("memo: expected a function after the name 'name', got undefined");
    await expect(ctx.memo("", () => 1)).rejects.toMatchObject({ code: "config.invalid" });
  });
});
