import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import type { DispatchMessage } from "../../src/scheduler/messages";
import { opened, order } from "../worker/pools";
import { getRun, result, task, trigger } from "./helpers";

/**
 * Queues deliver at least once. A duplicate of a running attempt's dispatch is refused, and it must
 * not give back the slot: the lease under its key is the running attempt's.
 */
describe("a duplicate dispatch message", () => {
  it("does not free the slot of the attempt that is running", async () => {
    const a = `a-${crypto.randomUUID()}`;
    const b = `b-${crypto.randomUUID()}`;
    const runA = await trigger("t-serial", { tag: a, hold: true });
    await vi.waitUntil(async () => task(await getRun(runA), "t-serial").status === "RUNNING", { timeout: 5_000 });
    const runB = await trigger("t-serial", { tag: b });
    // B waits for the one slot of the serial worker.
    await new Promise((r) => setTimeout(r, 300));
    expect(order).not.toContain(b);
    // The queue delivers A's dispatch a second time.
    const duplicate: DispatchMessage = { tenant: "default", worker: "serial", pool: "regular", key: `${runA}/t-serial/1/0`, runId: runA, task: "t-serial", attempt: 1, invocation: 0 };
    await env.DISPATCH.send(duplicate);
    await new Promise((r) => setTimeout(r, 500));
    const startedWhileAHeld = order.includes(b);
    const stats = await env.TASK_QUEUES.getByName("tq:default:serial:regular").stats();
    opened.add(a);
    await result(runA);
    await result(runB);
    expect(startedWhileAHeld, `B started while A held the only slot (queue stats then: ${JSON.stringify(stats)})`).toBe(false);
  });
});
