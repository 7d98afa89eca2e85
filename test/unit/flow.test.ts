import { describe, expect, it } from "vitest";
import type { TaskDefinition, WorkflowDefinition } from "@spindle/worker-sdk/protocol";
import { resolveFlow } from "../../src/core/flow";
import type { EngineClient } from "../../worker-sdk/src/client";
import { FlowDeclarationError } from "../../worker-sdk/src/errors";
import { ConcurrencyLimitStrategy } from "../../worker-sdk/src/flow";
import { Task, type TaskDeclaration } from "../../worker-sdk/src/task";
import { Workflow, type WorkflowDeclaration } from "../../worker-sdk/src/workflow";

// What `spindle.task` and `spindle.workflow` build, without an engine (the Spindle class needs the workerd runtime).
const client = (): EngineClient => {
  throw new Error("no engine in this test");
};
const spindle = {
  task: (d: TaskDeclaration<any, unknown>) => new Task(d, client),
  workflow: (d: WorkflowDeclaration<any>) => new Workflow(d, client),
};

describe("flow declarations in the SDK", () => {
  it("puts concurrency, rate limits and slot cost in the definition, with `concurrency: 5` as a global round-robin key", () => {
    const t = spindle.task({
      name: "flow-decl",
      concurrency: 5,
      rateLimits: [{ staticKey: "api" }, { dynamicKey: "input.user", units: "input.n", limit: 10, duration: "minute" }],
      slotCost: 2,
      fn: () => null,
    });
    expect(t.definition().tasks[0]).toMatchObject({
      concurrency: [{ expression: "'global'", maxRuns: 5, limitStrategy: "GROUP_ROUND_ROBIN" }],
      rateLimits: [{ staticKey: "api", units: 1 }, { dynamicKey: "input.user", units: "input.n", limit: 10, duration: "minute" }],
      slotCost: 2,
    });
    const wf = spindle.workflow({ name: "flow-wf", concurrency: [{ expression: "input.a", maxRuns: "input.n", limitStrategy: ConcurrencyLimitStrategy.CANCEL_NEWEST }] });
    wf.task({ name: "x", fn: () => null });
    expect(wf.definition().concurrency).toEqual([{ expression: "input.a", maxRuns: "input.n", limitStrategy: "CANCEL_NEWEST" }]);
  });

  const refused = (declare: () => unknown, path: string) => {
    let error: unknown;
    try {
      declare();
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(FlowDeclarationError);
    expect((error as FlowDeclarationError).code).toBe("flow.invalid");
    expect((error as FlowDeclarationError).fields?.[0]?.path).toBe(path);
  };

  it("refuses at declaration a CEL expression that does not parse, naming the option", () => {
    refused(() => spindle.task({ name: "bad-1", concurrency: { expression: "input.(", maxRuns: 1 }, fn: () => null }), "task 'bad-1'.concurrency.expression");
    refused(() => spindle.workflow({ name: "bad-2", concurrency: { expression: "input.a", maxRuns: "1 +" } }), "workflow 'bad-2'.concurrency.maxRuns");
    refused(() => spindle.task({ name: "bad-3", rateLimits: [{ dynamicKey: "a b", limit: 1, duration: "second" }], fn: () => null }), "task 'bad-3'.rateLimits[0].dynamicKey");
  });

  it("refuses maxRuns below 1, units above a constant limit, an unknown strategy or duration, and a bad slot cost", () => {
    refused(() => spindle.task({ name: "bad-4", concurrency: { expression: "'k'", maxRuns: 0 }, fn: () => null }), "task 'bad-4'.concurrency.maxRuns");
    refused(() => spindle.task({ name: "bad-5", rateLimits: [{ dynamicKey: "'k'", units: 3, limit: 2, duration: "second" }], fn: () => null }), "task 'bad-5'.rateLimits[0].units");
    refused(
      () => spindle.task({ name: "bad-6", concurrency: { expression: "'k'", maxRuns: 1, limitStrategy: "FIFO" as ConcurrencyLimitStrategy }, fn: () => null }),
      "task 'bad-6'.concurrency.limitStrategy",
    );
    refused(() => spindle.task({ name: "bad-7", rateLimits: [{ dynamicKey: "'k'", limit: 2, duration: "fortnight" as "week" }], fn: () => null }), "task 'bad-7'.rateLimits[0].duration");
    refused(() => spindle.task({ name: "bad-8", slotCost: 0, fn: () => null }), "task 'bad-8'.slotCost");
    const wf = spindle.workflow({ name: "bad-9" });
    refused(() => wf.task({ name: "t", concurrency: [{ expression: "'k'", maxRuns: 1.5 }], fn: () => null }), "task 't'.concurrency[0].maxRuns");
  });
});

describe("resolving what an attempt needs", () => {
  const task = (extra: Partial<TaskDefinition>): TaskDefinition => ({ name: "t", kind: "task", parents: [], retries: 0, executionTimeoutMs: 1, scheduleTimeoutMs: 1, ...extra });
  const workflow = (t: TaskDefinition, extra: Partial<WorkflowDefinition> = {}): WorkflowDefinition => ({ name: "wf", kind: "workflow", tasks: [t], ...extra });

  it("evaluates keys, per-key maxRuns and units from the input and metadata; the workflow's key is held by the run, a task's by the attempt", () => {
    const t = task({
      concurrency: [{ expression: "additional_metadata.tenant", maxRuns: 2, limitStrategy: "CANCEL_NEWEST" }],
      rateLimits: [{ dynamicKey: "'user:' + input.user", units: "input.n", limit: "input.n * 2", duration: "minute" }],
    });
    const wf = workflow(t, { concurrency: [{ expression: "input.user", maxRuns: "input.tier == 'pro' ? 10 : 1", limitStrategy: "GROUP_ROUND_ROBIN" }] });
    const flow = resolveFlow({ workflow: wf, task: t, runId: "R", attempt: 2, input: { user: "42", n: 3, tier: "pro" }, metadata: { tenant: "acme" } });
    expect(flow).toMatchObject({
      needs: [
        { kind: "concurrency", key: "42", task: null, holder: "R", maxRuns: 10, strategy: "GROUP_ROUND_ROBIN" },
        { kind: "concurrency", key: "acme", task: "t", holder: "R/t/2", maxRuns: 2, strategy: "CANCEL_NEWEST" },
        { kind: "rate", key: "user:42", holder: "R/t/2", units: 3, dynamic: { limit: 6, duration: "minute" } },
      ],
    });
    expect("group" in flow && flow.group).toContain("42");
  });

  it("says a task can never run when its dynamic units exceed its limit or an expression fails", () => {
    const t = task({ rateLimits: [{ dynamicKey: "'k'", units: "input.n", limit: 2, duration: "second" }] });
    expect(resolveFlow({ workflow: workflow(t), task: t, runId: "R", attempt: 1, input: { n: 5 }, metadata: {} })).toEqual({
      error: "task 't' rateLimits[0]: 5 units can never fit in rate limit 'k' of 2 per second",
    });
    const missing = task({ concurrency: [{ expression: "input.nope", maxRuns: 1, limitStrategy: "GROUP_ROUND_ROBIN" }] });
    expect(resolveFlow({ workflow: workflow(missing), task: missing, runId: "R", attempt: 1, input: {}, metadata: {} })).toMatchObject({
      error: expect.stringContaining("task 't' concurrency[0].expression"),
    });
  });
});
