import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { Or, SpindleError, UserEventCondition } from "@spindle/worker-sdk";
import { spindle } from "../../worker/workflows";
import { registration, taskDef, workflowDef } from "../../support/definitions";
import { push, result, runStub, task, TOKEN, trigger, until } from "../helpers";

const waiting = (run: any) => task(run, "wait").waitingFor?.length === 1;

describe("conditional DAG tasks", () => {
  it("skips the branch whose parent condition holds, and its child sees the skip", async () => {
    const tag = "go";
    const runId = await trigger("t-conditions", { n: 80, tag });
    const armed = await until(runId, waiting);
    expect(task(armed, "big").status).toBe("COMPLETED");
    expect(task(armed, "small").status).toBe("SKIPPED");
    expect(task(armed, "wait").status).toBe("PENDING");
    expect(task(armed, "wait").waitingFor![0]!.conditions!.map((c) => [c.list, c.kind])).toEqual([
      ["wait", "sleep"],
      ["wait", "event"],
      ["cancel", "event"],
    ]);
    await push("t-conditions:go", { tag: "nope" });
    await push("t-conditions:go", { tag });
    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toMatchObject({
      big: { big: 80 },
      wait: { bigSkipped: false, smallSkipped: true },
      end: { saw: { bigSkipped: false, smallSkipped: true } },
    });
    expect(run.output).not.toHaveProperty("small");
  });

  it("starts a waiting task when its sleep condition fires first", async () => {
    const runId = await trigger("t-conditions", { n: 10, tag: "never" });
    await until(runId, waiting);
    expect(await runDurableObjectAlarm(runStub(runId))).toBe(true);
    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toMatchObject({ small: { small: 10 }, wait: { bigSkipped: true, smallSkipped: false } });
  });

  it("cancels a waiting task when its cancelIf event arrives, and what depends on it", async () => {
    const runId = await trigger("t-conditions", { n: 10, tag: "never" });
    await until(runId, waiting);
    await push("t-conditions:stop", {});
    const run = await result(runId);
    expect(run.status).toBe("FAILED");
    expect(task(run, "wait")).toMatchObject({ status: "CANCELLED", error: { code: "task.condition_cancelled" } });
    expect(task(run, "end").status).toBe("CANCELLED");
    // Its other conditions no longer wait on anything.
    expect(await env.EVENTS.getByName("events:default:t-conditions:go").waiterCount()).toBe(0);
  });
});

describe("CEL expressions", () => {
  it("are refused when a wait or a DAG task is declared, with the parser's message", () => {
    expect(() => new UserEventCondition("k", "input.x ==")).not.toThrow();
    const wf = spindle.workflow({ name: "never-registered" });
    const first = wf.task({ name: "first", fn: () => 1 });
    let err: unknown;
    try {
      wf.task({ name: "second", parents: [first], waitFor: [Or({ eventKey: "k", expression: "input.x ==" })], fn: () => 2 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SpindleError);
    expect((err as SpindleError).code).toBe("condition.invalid");
    expect((err as SpindleError).message).toMatch(/second\.waitFor\[0\]\.conditions\[0\]: CEL expression "input.x ==" does not parse: .+/);
  });

  it("are refused by the engine at registration, with the parser's message", async () => {
    const reply = await env.SPINDLE.register(
      TOKEN,
      registration("bad-cel", [
        workflowDef("t-bad-cel", [taskDef("a"), taskDef("b", ["a"], { skipIf: [{ kind: "parent", parent: "a", expression: "output.n >" }] })]),
      ]),
    );
    expect(reply.ok).toBe(false);
    if (!reply.ok) {
      expect(reply.error.code).toBe("workflow.invalid");
      expect(reply.error.message).toMatch(/tasks\[1\]\.skipIf\[0\]: CEL expression "output.n >" does not parse/);
    }
  });
});
