import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { EventBus } from "../../src/events/event-bus";
import { advanceClock, clock } from "../../src/core/clock";
import { Outbox, OUTBOX_GRACE_MS } from "../../src/run/outbox";
import { WorkflowRun } from "../../src/run/workflow-run";
import { push, result, runStub, task, trigger, until } from "./helpers";

/**
 * Holds each report a child of `rv-lost-parent` sends its parent on the wire, neither answered nor
 * failed, until `release()`; then it fails (a send cut off) or goes through. (The parent polls: a
 * promise settled from the test's context could not wake the parent's.)
 */
function holdChildReports(then: "fail" | "deliver") {
  const original = WorkflowRun.prototype.childEnded;
  let hold = true;
  const reports = {
    inFlight: 0,
    delivered: 0,
    release: () => {
      hold = false;
    },
    restore: () => {
      hold = false;
      WorkflowRun.prototype.childEnded = original;
    },
  };
  WorkflowRun.prototype.childEnded = async function (this: WorkflowRun, report) {
    if (report.parentTask !== "rv-lost-parent") return original.call(this, report);
    if (hold) {
      reports.inFlight++;
      while (hold) await new Promise((r) => setTimeout(r, 10));
      if (then === "fail") throw new Error("parent too slow");
    }
    reports.delivered++;
    return original.call(this, report);
  };
  return reports;
}

/**
 * The bus of `rv:k1`, for one `rv-or-waits` run's waiter (`id`): refuses its subscription while
 * `down`, counting the failures, and counts what it takes once it is back.
 */
function k1Bus(id: string) {
  const original = EventBus.prototype.subscribe;
  const bus = {
    down: true,
    failures: 0,
    sent: 0,
    restore: () => {
      EventBus.prototype.subscribe = original;
    },
  };
  EventBus.prototype.subscribe = async function (this: EventBus, tenant, key, waiters) {
    if (key === "rv:k1" && waiters.some((w) => w.expression?.includes(id))) {
      if (bus.down) {
        bus.failures++;
        throw new Error("k1 bus overloaded");
      }
      bus.sent++;
    }
    return original.call(this, tenant, key, waiters);
  };
  return bus;
}

/** Runs the run's alarm (rather than waiting out a backoff) until `done()`, at most `times` times. */
async function alarmUntil(runId: string, done: () => boolean, times = 10): Promise<void> {
  for (let i = 0; i < times && !done(); i++) {
    await runDurableObjectAlarm(runStub(runId)).catch(() => undefined);
    await vi.waitUntil(done, { timeout: 1_000, interval: 10 }).catch(() => undefined);
  }
}

/**
 * The bus comes back: a retry (or the alarm, run here rather than waiting out the backoff) sends
 * the subscription, once, and an event on `rv:k1` wakes the run.
 */
async function expectSentWhenBack(bus: ReturnType<typeof k1Bus>, runId: string, id: string): Promise<void> {
  bus.down = false;
  await alarmUntil(runId, () => bus.sent > 0);
  expect(bus.sent).toBe(1);
  await push("rv:k1", { id, n: 1 });
  const run = await result(runId, { timeoutMs: 10_000 });
  expect(run.status).toBe("COMPLETED");
  expect(run.output).toEqual({ fired: { "rv:k1": { id, n: 1 } } });
}

/**
 * The run's outbox: a message is written in the same transaction as the change that owes it, and
 * the alarm covers it from then on (a fresh one after a grace period, a failed one at its retry
 * time), so neither an object reset mid-send nor a run of failures can lose one.
 */
describe("outbox delivery", () => {
  it("delivers a child's report to its parent even if the child's object is reset mid-send", async () => {
    // The parent is slow to answer (an overloaded object, a long GC pause...) while the child's
    // object is reset (a deploy, an eviction, an isolate crash).
    const reports = holdChildReports("fail");
    try {
      const parentId = await trigger("rv-lost-parent", {});
      const parked = await until(parentId, (r) => task(r, "rv-lost-parent").evicted === true && r.children.length === 1);
      const childId = parked.children[0]!;
      // The window that matters: the child has ended and its report is on the wire, unanswered.
      await vi.waitUntil(() => reports.inFlight === 1, { timeout: 10_000, interval: 10 });
      const child = runStub(childId);
      // The crash: the child's object is reset while its send is in flight.
      await runInDurableObject(child, (_i, state) => state.abort("simulated reset")).catch(() => undefined);
      reports.release();
      const fresh = runStub(childId); // a stub to the object as it comes back
      // The report is still in the child's outbox, committed and unsent (no try was counted)...
      const rows = await runInDurableObject(fresh, (_i, state) => state.storage.sql.exec("SELECT kind, tries FROM outbox WHERE kind = 'child_ended'").toArray());
      expect(rows).toEqual([{ kind: "child_ended", tries: 0 }]);
      expect(reports.delivered).toBe(0);
      // ...and the child's alarm covers it: the child has ended and will not write again, so the
      // alarm is what sends it.
      const alarm = await runInDurableObject(fresh, (_i, state) => state.storage.getAlarm());
      expect(alarm, "the child's alarm covers its unsent outbox row").not.toBeNull();
      expect(await runDurableObjectAlarm(fresh)).toBe(true);
      expect(reports.delivered).toBe(1);
      const parent = await result(parentId, { timeoutMs: 8_000 });
      expect(parent.status).toBe("COMPLETED");
      expect(reports.inFlight).toBe(1);
    } finally {
      reports.restore();
    }
  });

  it("looks again a grace period later at a send that hangs, instead of firing again and again", async () => {
    const reports = holdChildReports("deliver");
    const skew = OUTBOX_GRACE_MS + 5_000;
    let skewed = false;
    try {
      const parentId = await trigger("rv-lost-parent", {});
      const parked = await until(parentId, (r) => task(r, "rv-lost-parent").evicted === true && r.children.length === 1);
      const child = runStub(parked.children[0]!);
      await vi.waitUntil(() => reports.inFlight === 1, { timeout: 10_000, interval: 10 });
      // The child's report has now been on the wire past its grace period, and its alarm fires.
      advanceClock(skew);
      skewed = true;
      expect(await runDurableObjectAlarm(child)).toBe(true);
      const alarm = await runInDurableObject(child, (_i, state) => state.storage.getAlarm());
      expect(alarm, "the alarm still covers the report on its way").not.toBeNull();
      // Not at the grace time already passed (the runtime would fire it at once, again and again).
      expect(alarm!).toBeGreaterThan(clock.now() + OUTBOX_GRACE_MS - 1_000);
      reports.release();
      const parent = await result(parentId, { timeoutMs: 8_000 });
      expect(parent.status).toBe("COMPLETED");
      expect(reports.inFlight).toBe(1);
    } finally {
      if (skewed) advanceClock(-skew);
      reports.restore();
    }
  });

  it("keeps retrying a failed message when a later failure sets an earlier retry time", async () => {
    const originalSubscribe = EventBus.prototype.subscribe;
    const id = `id-${crypto.randomUUID()}`;
    let k1Down = true; // the bus of rv:k1 refuses subscriptions until the test says otherwise
    let k1Failures = 0;
    let k1Sent = 0;
    let k2Calls = 0; // the bus of rv:k2 fails its first call, late, and holds its second one
    let k2Fail = false;
    let k2Answer = false;
    let k2Sent = 0;
    EventBus.prototype.subscribe = async function (this: EventBus, tenant, key, waiters) {
      if (waiters.some((w) => w.expression?.includes(id))) {
        if (key === "rv:k1") {
          if (k1Down) {
            k1Failures++;
            throw new Error("k1 bus overloaded");
          }
          k1Sent++;
        }
        if (key === "rv:k2") {
          const call = ++k2Calls;
          if (call === 1) {
            while (!k2Fail) await new Promise((r) => setTimeout(r, 10));
            throw new Error("k2 bus timed out");
          }
          while (!k2Answer) await new Promise((r) => setTimeout(r, 10));
          k2Sent++;
        }
      }
      return originalSubscribe.call(this, tenant, key, waiters);
    };
    const outbox = (runId: string) =>
      runInDurableObject(runStub(runId), (_i, s) =>
        s.storage.sql.exec<{ target: string; tries: number; next_at: number }>("SELECT target, tries, next_at FROM outbox WHERE kind = 'subscribe'").toArray(),
      );
    try {
      // rv-or-waits waits for Or(event rv:k1, event rv:k2): one checkpoint, two subscribe messages.
      const runId = await trigger("rv-or-waits", { id });
      await vi.waitUntil(() => k1Failures >= 1 && k2Calls === 1, { timeout: 10_000, interval: 10 });
      // k1 fails again and again while k2's first send hangs; each run of the alarm is one more
      // k1 try (the alarm takes what is due by the time it was set for), so its backoff grows.
      while (k1Failures < 4) await runDurableObjectAlarm(runStub(runId));
      // Now k2 fails, once: its retry is due in 0.5 s, long before k1's (8 s of backoff).
      k2Fail = true;
      await vi.waitUntil(() => k2Calls === 2, { timeout: 10_000, interval: 10 });
      // The interleaving happened: k2's retry (on the wire now) was due before k1's.
      const rows = await outbox(runId);
      const k1 = rows.find((r) => r.target.endsWith(":rv:k1"))!;
      const k2 = rows.find((r) => r.target.endsWith(":rv:k2"))!;
      expect(k1.tries).toBeGreaterThanOrEqual(4);
      expect(k2.tries).toBe(1);
      expect(k1.next_at).toBeGreaterThan(k2.next_at);
      k2Answer = true;
      await vi.waitUntil(() => k2Sent === 1, { timeout: 10_000, interval: 10 });
      // k1's bus is healthy again: k1's retry must still come, though the alarm was re-pointed at k2's.
      k1Down = false;
      await vi.waitUntil(() => k1Sent === 1, { timeout: 30_000, interval: 20 });
      await push("rv:k1", { id, n: 1 });
      const run = await result(runId, { timeoutMs: 10_000 });
      expect(run.status).toBe("COMPLETED");
      expect(run.output).toEqual({ fired: { "rv:k1": { id, n: 1 } } });
    } finally {
      EventBus.prototype.subscribe = originalSubscribe;
    }
  });

  it("tries a failed message again even when recording its failure throws", async () => {
    const id = `id-${crypto.randomUUID()}`;
    const bus = k1Bus(id);
    const originalFailed = Outbox.prototype.failed;
    let recordingThrew = 0;
    // The fault: the write that records the failed send throws (a storage error), before it has
    // recorded anything, so it rolls back.
    Outbox.prototype.failed = function (this: Outbox, m, error, now) {
      if (m.target.endsWith(":rv:k1") && recordingThrew === 0) {
        recordingThrew++;
        throw new Error("simulated storage error");
      }
      return originalFailed.call(this, m, error, now);
    };
    try {
      const runId = await trigger("rv-or-waits", { id });
      await vi.waitUntil(() => recordingThrew === 1 && bus.failures >= 1, { timeout: 10_000, interval: 10 });
      // The message is still the outbox's to send (it was not left marked as on its way).
      await expectSentWhenBack(bus, runId, id);
    } finally {
      bus.restore();
      Outbox.prototype.failed = originalFailed;
    }
  });

  it("fails the alarm (run again later, backing off) when, from the alarm, a failed send cannot be recorded", async () => {
    const id = `id-${crypto.randomUUID()}`;
    const bus = k1Bus(id);
    const originalFailed = Outbox.prototype.failed;
    const originalAlarm = WorkflowRun.prototype.alarm;
    let inAlarm = 0;
    let storageBroken = true; // only ever inside the alarm
    let alarmRejections = 0;
    Outbox.prototype.failed = function (this: Outbox, m, error, now) {
      if (m.target.endsWith(":rv:k1") && storageBroken && inAlarm > 0) throw new Error("simulated storage error");
      return originalFailed.call(this, m, error, now);
    };
    WorkflowRun.prototype.alarm = async function (this: WorkflowRun) {
      inAlarm++;
      try {
        return await originalAlarm.call(this);
      } catch (err) {
        if (String(err).includes("simulated storage error")) alarmRejections++;
        throw err;
      } finally {
        inAlarm--;
      }
    };
    try {
      const runId = await trigger("rv-or-waits", { id });
      // The first failure comes from the checkpoint's own send, and is recorded: a retry, due soon.
      await vi.waitUntil(() => bus.failures >= 1, { timeout: 10_000, interval: 10 });
      // The retry is the alarm's to send; it fails and cannot be recorded: the alarm fails with it,
      // so the runtime runs it again later (whoever runs it first: the runtime, or this test).
      await alarmUntil(runId, () => alarmRejections > 0, 20);
      expect(alarmRejections).toBeGreaterThan(0);
      // Storage is back, and the message is still the outbox's to send.
      storageBroken = false;
      await expectSentWhenBack(bus, runId, id);
    } finally {
      bus.restore();
      Outbox.prototype.failed = originalFailed;
      WorkflowRun.prototype.alarm = originalAlarm;
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
