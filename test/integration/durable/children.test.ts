import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { effects } from "../../worker/durable";
import { getRun, push, result, task, trigger, until } from "../helpers";

describe("durable children and slot pools", () => {
  it("fans out to children and sums their outputs, evicted meanwhile", async () => {
    const runId = await trigger("d-fanout", { n: 20 });
    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ sum: 190 });
    const t = task(run, "d-fanout");
    expect(t.eventLog!.map((c) => [c.kind, c.status])).toEqual([["children", "resolved"]]);
    expect(run.children).toHaveLength(20);
  });

  it("lets the task catch a failed child's error", async () => {
    const run = await result(await trigger("d-fanout", { n: 4, failAt: 2 }));
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toMatchObject({ failed: 1 });
    expect((run.output as any).caught).toContain("RangeError: leaf 2 refuses");
  });

  it("treats someTask.run() inside a durable task as a checkpointed child", async () => {
    const runId = await trigger("d-run-inside", {});
    const run = await result(runId);
    expect(run.output).toEqual({ square: 49 });
    expect(task(run, "d-run-inside").eventLog!.map((c) => c.kind)).toEqual(["child"]);
    // The child is triggered before its checkpoint is recorded: a child that has already ended by
    // then resolves the checkpoint at once and the task goes on in the same invocation; otherwise
    // it is evicted and runs a second one. Either way the code after the call runs once (below).
    // Eviction while children run is the 1,000-child test's (exactly 2 invocations).
    expect([1, 2]).toContain(task(run, "d-run-inside").invocations);
    expect(effects.get(`d-run-inside:after:${runId}`)).toBe(1);
    const child = await getRun(run.children[0]!);
    expect(child.parent).toEqual({ runId, taskName: "d-run-inside" });
  });

  it("completes a 1,000-child fan-out with one durable slot and two regular slots", async () => {
    const runId = await trigger("d-tight-parent", { n: 1000 });
    const run = await result(runId, { timeoutMs: 120_000 });
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ count: 1000, sum: (999 * 1000) / 2 });
    expect(task(run, "d-tight-parent").invocations).toBe(2);
    const regular = await env.TASK_QUEUES.getByName("tq:default:tight:regular").stats();
    expect(regular).toMatchObject({ slots: 2, ready: 0 });
  }, 180_000);

  it("holds no slot while it waits: the one durable slot runs other tasks meanwhile", async () => {
    const key = crypto.randomUUID();
    const waiter = await trigger("d-tight-waiter", { key });
    await until(waiter, (r) => task(r, "d-tight-waiter").evicted === true);
    // The pool has one slot; a waiting task holding it would starve these.
    const quick = await Promise.all([1, 2, 3].map(() => trigger("d-tight-quick", {})));
    for (const id of quick) expect((await result(id)).output).toEqual({ one: 1 });
    expect((await getRun(waiter)).status).toBe("RUNNING");
    const durable = await env.TASK_QUEUES.getByName("tq:default:tight:durable").stats();
    expect(durable).toMatchObject({ slots: 1, inFlight: 0 });
    await push("d-tight:go", { key });
    expect((await result(waiter)).output).toEqual({ got: { key } });
  });
});
