import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { EventBus } from "../../src/events/event-bus";
import { WorkflowRun } from "../../src/run/workflow-run";
import { push, result, runStub, task, trigger, until } from "./helpers";

/**
 * The run's outbox: a message is written in the same transaction as the change that owes it, and
 * the alarm covers it from then on (a fresh one after a grace period, a failed one at its retry
 * time), so neither an object reset mid-send nor a run of failures can lose one.
 */
describe("outbox delivery", () => {
  it("delivers a child's report to its parent even if the child's object is reset mid-send", async () => {
    const original = WorkflowRun.prototype.childEnded;
    let hold = true;
    // The parent is slow to answer (an overloaded object, a long GC pause...) while the child's
    // object is reset (a deploy, an eviction, an isolate crash): the send neither completes nor fails.
    WorkflowRun.prototype.childEnded = async function (this: WorkflowRun, report) {
      if (hold && report.parentTask === "rv-lost-parent") {
        await new Promise((r) => setTimeout(r, 10_000));
        throw new Error("parent too slow");
      }
      return original.call(this, report);
    };
    try {
      const parentId = await trigger("rv-lost-parent", {});
      const parked = await until(parentId, (r) => task(r, "rv-lost-parent").evicted === true && r.children.length === 1);
      const childId = parked.children[0]!;
      await until(childId, (r) => r.status === "COMPLETED");
      await new Promise((r) => setTimeout(r, 200)); // the child_ended send is now in flight
      const child = runStub(childId);
      // The crash: the child's object is reset while its send is in flight.
      await runInDurableObject(child, (_i, state) => state.abort("simulated reset")).catch(() => undefined);
      hold = false;
      const fresh = runStub(childId); // a stub to the object as it comes back
      // The report is still in the child's outbox, committed and unsent...
      const rows = await runInDurableObject(fresh, (_i, state) => state.storage.sql.exec("SELECT kind, tries FROM outbox WHERE kind = 'child_ended'").toArray());
      expect(rows).toEqual([{ kind: "child_ended", tries: 0 }]);
      // ...and the child's alarm covers it: the child has ended and will not write again, so the
      // alarm is what sends it.
      const alarm = await runInDurableObject(fresh, (_i, state) => state.storage.getAlarm());
      expect(alarm, "the child's alarm covers its unsent outbox row").not.toBeNull();
      expect(await runDurableObjectAlarm(fresh)).toBe(true);
      const parent = await result(parentId, { timeoutMs: 8_000 });
      expect(parent.status).toBe("COMPLETED");
    } finally {
      WorkflowRun.prototype.childEnded = original;
    }
  });

  it("keeps retrying a failed message when a later failure sets an earlier retry time", async () => {
    const originalSubscribe = EventBus.prototype.subscribe;
    const id = `id-${crypto.randomUUID()}`;
    let k1Down = true; // the bus of rv:k1 refuses subscriptions for a while
    let k2Slow = true; // the bus of rv:k2 takes 2 s to fail, once
    EventBus.prototype.subscribe = async function (this: EventBus, tenant, key, waiters) {
      if (waiters.some((w) => w.expression?.includes(id))) {
        if (key === "rv:k1" && k1Down) throw new Error("k1 bus overloaded");
        if (key === "rv:k2" && k2Slow) {
          k2Slow = false;
          await new Promise((r) => setTimeout(r, 2_000));
          throw new Error("k2 bus timed out");
        }
      }
      return originalSubscribe.call(this, tenant, key, waiters);
    };
    try {
      // rv-or-waits waits for Or(event rv:k1, event rv:k2): one checkpoint, two subscribe messages.
      // t0: k1 fails (retry at +0.5 s), fails again at +0.5 s (retry at +1.5 s) and at +1.5 s (retry
      // at +3.5 s). At +2 s k2 fails, once: retry at +2.5 s, and the one `outbox` timer row now says
      // +2.5 s instead of +3.5 s. At +2.5 s k2 is sent; k1, due at +3.5 s, has no timer any more.
      const runId = await trigger("rv-or-waits", { id });
      await new Promise((r) => setTimeout(r, 2_200));
      k1Down = false; // the k1 bus is healthy again from here on
      await new Promise((r) => setTimeout(r, 2_500));
      await push("rv:k1", { id, n: 1 });
      const run = await result(runId, { timeoutMs: 5_000 }).catch(async (err: Error) => {
        const state = await runInDurableObject(runStub(runId), async (_i, s) => ({
          outbox: s.storage.sql.exec("SELECT kind, target, tries, next_at FROM outbox").toArray(),
          timers: s.storage.sql.exec("SELECT kind, due_at FROM timers").toArray(),
          alarm: await s.storage.getAlarm(),
          now: Date.now(),
        }));
        throw new Error(`${err.message}; the run's outbox, timers and alarm: ${JSON.stringify(state)}`);
      });
      expect(run.status).toBe("COMPLETED");
      expect(run.output).toEqual({ fired: { "rv:k1": { id, n: 1 } } });
    } finally {
      EventBus.prototype.subscribe = originalSubscribe;
    }
  });

  it("leaves nothing behind once a run has ended: no outbox rows, no alarm", async () => {
    const runId = await trigger("t-echo", { tidy: true });
    await result(runId);
    await vi.waitUntil(
      async () =>
        runInDurableObject(runStub(runId), async (_i, state) => {
          const rows = state.storage.sql.exec("SELECT COUNT(*) AS n FROM outbox").one().n;
          return rows === 0 && (await state.storage.getAlarm()) === null;
        }),
      { timeout: 5_000, interval: 50 },
    );
  });
});
