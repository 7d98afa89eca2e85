import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { WorkflowRun } from "../../src/run/workflow-run";
import type { DispatchMessage } from "../../src/scheduler/messages";
import { TaskQueue } from "../../src/scheduler/task-queue";
import { opened, order } from "../worker/pools";
import { getRun, result, task, trigger } from "./helpers";

/**
 * Queues deliver at least once. A duplicate of a running attempt's dispatch is refused, and it must
 * not give back the slot: the lease under its key is the running attempt's.
 */
/** Every key a consumer gave back to a task queue. */
const released: string[] = [];
const originalRelease = TaskQueue.prototype.release;
beforeAll(() => {
  TaskQueue.prototype.release = function (this: TaskQueue, key: string) {
    released.push(key);
    return originalRelease.call(this, key);
  };
});
afterAll(() => {
  TaskQueue.prototype.release = originalRelease;
});

describe("a duplicate dispatch message", () => {
  it("does not free the slot of the attempt that is running", async () => {
    const a = `a-${crypto.randomUUID()}`;
    const b = `b-${crypto.randomUUID()}`;
    const queue = env.TASK_QUEUES.getByName("tq:default:serial:regular");
    const runA = await trigger("t-serial", { tag: a, hold: true });
    await vi.waitUntil(async () => task(await getRun(runA), "t-serial").status === "RUNNING", { timeout: 10_000 });
    const runB = await trigger("t-serial", { tag: b });
    // B waits for the one slot of the serial worker.
    await vi.waitUntil(async () => (await queue.stats())?.ready === 1, { timeout: 10_000 });
    expect(await queue.stats()).toMatchObject({ slots: 1, inFlight: 1, ready: 1 });
    // The queue delivers A's dispatch a second time; the run refuses it.
    const original = WorkflowRun.prototype.startTask;
    const refusals: unknown[] = [];
    WorkflowRun.prototype.startTask = async function (this: WorkflowRun, ref, ...rest) {
      const reply = await original.call(this, ref, ...rest);
      if (ref.task === "t-serial" && reply.ok && reply.value.kind === "stale") refusals.push(reply.value);
      return reply;
    };
    try {
      const duplicate: DispatchMessage = { tenant: "default", worker: "serial", pool: "regular", key: `${runA}/t-serial/1/0`, runId: runA, task: "t-serial", attempt: 1, invocation: 0 };
      await env.DISPATCH.send(duplicate);
      await vi.waitUntil(() => refusals.length === 1, { timeout: 10_000 });
    } finally {
      WorkflowRun.prototype.startTask = original;
    }
    expect(refusals[0]).toMatchObject({ release: false });
    expect(await queue.stats()).toMatchObject({ inFlight: 1, ready: 1 });
    expect(order).not.toContain(b);
    opened.add(a);
    expect((await result(runA)).status).toBe("COMPLETED");
    expect((await result(runB)).status).toBe("COMPLETED");
    expect(order.filter((t) => t === a || t === b)).toEqual([a, b]);
    // Once both have released their slots: A's lease was given back once, by A's own consumer.
    await vi.waitUntil(async () => (await queue.stats())?.inFlight === 0, { timeout: 10_000 });
    expect(await queue.stats()).toMatchObject({ inFlight: 0, ready: 0 });
    expect(released.filter((k) => k === `${runA}/t-serial/1/0`)).toHaveLength(1);
  });
});
