import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { advanceClock, resetClock } from "../../src/core/clock";
import { DELIVERY_MAX_TRIES } from "../../src/events/event-bus";
import { OUTBOX_MAX_TRIES } from "../../src/run/outbox";
import { WorkflowRun } from "../../src/run/workflow-run";
import { TaskQueue } from "../../src/scheduler/task-queue";
import { getRun, push, result, runStub, task, trigger, until } from "./helpers";

/**
 * Every message a run owes another object has a bounded number of tries. Past them it is
 * dead-lettered: kept, shown in the run's view, and the run that waited on it fails saying what
 * could not be delivered.
 */
describe("dead letters", () => {
  it("dead-letters a child's report that its parent always refuses, and fails the waiting parent naming it", async () => {
    const original = WorkflowRun.prototype.childEnded;
    let refused = 0;
    // The parent's object throws on every report of this child (a bug, a value it cannot store...).
    WorkflowRun.prototype.childEnded = async function (this: WorkflowRun, report) {
      if (report.parentTask === "l-lonely-parent") {
        refused++;
        throw new Error("the parent cannot take this report");
      }
      return original.call(this, report);
    };
    try {
      const parentId = await trigger("l-lonely-parent", {});
      const parked = await until(parentId, (r) => task(r, "l-lonely-parent").evicted === true && r.children.length === 1);
      const childId = parked.children[0]!;
      await until(childId, (r) => r.status === "COMPLETED");
      await vi.waitUntil(() => refused >= 1, { timeout: 10_000, interval: 20 });
      // Each run of the child's alarm is one more try (its retry time is what the alarm points at).
      const child = runStub(childId);
      for (let i = 0; !(await getRun(childId)).deadLetters?.length; i++) {
        if (i > 3 * OUTBOX_MAX_TRIES) throw new Error(`never dead-lettered after ${refused} refusals`);
        await runDurableObjectAlarm(child);
      }
      expect(refused).toBe(OUTBOX_MAX_TRIES);
      const childView = await getRun(childId);
      expect(childView.status).toBe("COMPLETED");
      expect(childView.deadLetters).toEqual([
        {
          kind: "child_ended",
          target: `run:default:${parentId}`,
          payload: expect.objectContaining({ childRunId: childId, status: "COMPLETED" }),
          tries: OUTBOX_MAX_TRIES,
          error: expect.stringContaining("the parent cannot take this report"),
          at: expect.any(String),
        },
      ]);
      const parent = await result(parentId, { timeoutMs: 10_000 });
      expect(parent.status).toBe("FAILED");
      expect(parent.error).toMatchObject({ code: "delivery.dead_letter", task: "l-lonely-parent", retryable: false });
      expect(parent.error!.message).toContain(`the report of child run ${childId} (COMPLETED) could not be delivered to this run after ${OUTBOX_MAX_TRIES} tries`);
      expect(parent.error!.message).toContain("the parent cannot take this report");
      expect(refused).toBe(OUTBOX_MAX_TRIES);
    } finally {
      WorkflowRun.prototype.childEnded = original;
    }
  });

  it("dead-letters an event delivery its run always refuses, and fails the waiting task naming the event", async () => {
    const original = WorkflowRun.prototype.conditionMet;
    const userId = `dl-${crypto.randomUUID()}`;
    let refused = 0;
    WorkflowRun.prototype.conditionMet = async function (this: WorkflowRun, met) {
      if ((met.payload as { userId?: string } | null)?.userId === userId) {
        refused++;
        throw new Error("the run cannot take this event");
      }
      return original.call(this, met);
    };
    try {
      const runId = await trigger("d-event", { userId });
      await until(runId, (r) => task(r, "d-event").evicted === true && (task(r, "d-event").waitingFor as unknown[]).length === 1);
      const eventId = await push("d:update", { userId });
      await vi.waitUntil(() => refused >= 1, { timeout: 10_000, interval: 20 });
      // The bus retries from its alarm, backing off: move its clock past each retry time.
      const bus = env.EVENTS.getByName(`events:default:d:update`);
      for (let i = 0; refused < DELIVERY_MAX_TRIES; i++) {
        if (i > 3 * DELIVERY_MAX_TRIES) throw new Error(`only ${refused} tries`);
        advanceClock(61_000);
        await runDurableObjectAlarm(bus);
      }
      const run = await result(runId, { timeoutMs: 10_000 });
      expect(refused).toBe(DELIVERY_MAX_TRIES);
      expect(run.status).toBe("FAILED");
      expect(run.error).toMatchObject({ code: "delivery.dead_letter", task: "d-event" });
      expect(run.error!.message).toContain(`event ${eventId} met a condition of task 'd-event' but could not be delivered by events:default:d:update after ${DELIVERY_MAX_TRIES} tries`);
      expect(run.deadLetters).toEqual([expect.objectContaining({ kind: "condition_met", tries: DELIVERY_MAX_TRIES, error: expect.stringContaining("the run cannot take this event") })]);
      const kept = await bus.deadLetters();
      expect(kept.filter((d) => d.runId === runId)).toEqual([expect.objectContaining({ eventId, task: "d-event", tries: DELIVERY_MAX_TRIES, noticed: true })]);
    } finally {
      WorkflowRun.prototype.conditionMet = original;
      resetClock();
    }
  });

  it("dead-letters a dispatch its task queue always refuses, and fails the task it was for", async () => {
    const original = TaskQueue.prototype.enqueue;
    let refused = 0;
    // Only this test runs t-echo in this file (each file has its own isolate).
    TaskQueue.prototype.enqueue = async function (this: TaskQueue, identity, items) {
      if (items.some((i) => i.task === "t-echo")) {
        refused++;
        throw new Error("the task queue is unreachable");
      }
      return original.call(this, identity, items);
    };
    try {
      const runId = await trigger("t-echo", { dispatch: "refused" });
      await vi.waitUntil(() => refused >= 1, { timeout: 10_000, interval: 20 });
      for (let i = 0; !(await getRun(runId)).deadLetters?.length; i++) {
        if (i > 3 * OUTBOX_MAX_TRIES) throw new Error(`never dead-lettered after ${refused} refusals`);
        await runDurableObjectAlarm(runStub(runId));
      }
      const run = await result(runId, { timeoutMs: 10_000 });
      expect(refused).toBe(OUTBOX_MAX_TRIES);
      expect(run.status).toBe("FAILED");
      expect(run.error).toMatchObject({ code: "delivery.dead_letter", task: "t-echo" });
      expect(run.error!.message).toContain(`task 't-echo' was never dispatched: enqueue to tq:default:test:regular could not be delivered after ${OUTBOX_MAX_TRIES} tries`);
      expect(run.deadLetters).toEqual([expect.objectContaining({ kind: "enqueue", tries: OUTBOX_MAX_TRIES, error: expect.stringContaining("unreachable") })]);
      expect(task(run, "t-echo").attempts).toHaveLength(1);
    } finally {
      TaskQueue.prototype.enqueue = original;
    }
  });
});
