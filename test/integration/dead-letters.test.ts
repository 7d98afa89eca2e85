import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { RunView } from "@spindle/worker-sdk/protocol";
import { describe, expect, it, vi } from "vitest";
import { advanceClock, resetClock } from "../../src/core/clock";
import { DELIVERY_MAX_TRIES, EventBus } from "../../src/events/event-bus";
import { OUTBOX_MAX_TRIES } from "../../src/run/outbox";
import { WorkflowRun } from "../../src/run/workflow-run";
import { TaskQueue } from "../../src/scheduler/task-queue";
import { gates } from "../worker/liveness";
import { api, getRun, push, result, runStub, task, trigger, until } from "./helpers";

/** Runs the run's alarm (each run is one more try of what its outbox owes) until a dead letter of `kind` shows. */
async function untilDeadLettered(runId: string, kind: string): Promise<RunView> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const view = await getRun(runId);
    if (view.deadLetters?.some((d) => d.kind === kind)) return view;
    if (Date.now() > deadline) throw new Error(`run ${runId}: no ${kind} dead letter; it has ${JSON.stringify(view.deadLetters ?? [])}`);
    if (!(await runDurableObjectAlarm(runStub(runId)))) await new Promise((r) => setTimeout(r, 20));
  }
}

/** The task `l-two-waits` is parked at its wait on `key` (its invocation has ended there). */
const waitsOn = (key: string) => (r: RunView) => {
  const t = task(r, "l-two-waits");
  return t.evicted === true && JSON.stringify(t.waitingFor ?? []).includes(`"${key}"`);
};

/** Makes the event bus of `key` throw on every subscription whose expression names `tag`. */
function refuseSubscriptions(key: string, tag: string): { refused: () => number; restore: () => void } {
  const original = EventBus.prototype.subscribe;
  let refused = 0;
  EventBus.prototype.subscribe = async function (this: EventBus, tenant, k, waiters) {
    if (k === key && waiters.some((w) => w.expression?.includes(tag))) {
      refused++;
      throw new Error("the event bus cannot take this subscription");
    }
    return original.call(this, tenant, k, waiters);
  };
  return { refused: () => refused, restore: () => (EventBus.prototype.subscribe = original) };
}

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
  it("fails a task whose event subscription was dead-lettered while its wait is still undecided", async () => {
    const tag = crypto.randomUUID();
    const bus = refuseSubscriptions("l:first", tag);
    try {
      const runId = await trigger("l-two-waits", { tag, firstSleep: "1h" });
      await vi.waitUntil(() => bus.refused() >= 1, { timeout: 10_000, interval: 20 });
      await untilDeadLettered(runId, "subscribe");
      const run = await result(runId, { timeoutMs: 10_000 });
      expect(bus.refused()).toBe(OUTBOX_MAX_TRIES);
      expect(run.status).toBe("FAILED");
      expect(run.error).toMatchObject({ code: "delivery.dead_letter", task: "l-two-waits" });
      expect(run.error!.message).toContain(`task 'l-two-waits' waits for an event it can never receive: subscribe to events:default:l:first could not be delivered after ${OUTBOX_MAX_TRIES} tries`);
      expect(run.deadLetters).toEqual([expect.objectContaining({ kind: "subscribe", target: "events:default:l:first", tries: OUTBOX_MAX_TRIES })]);
    } finally {
      bus.restore();
    }
  });

  it("does not fail a task when a subscription of a wait it has since left is dead-lettered: it goes on waiting where it is", async () => {
    const tag = crypto.randomUUID();
    const bus = refuseSubscriptions("l:first", tag);
    try {
      // The first wait's subscription never lands, but its 1 s sleep decides it: the task moves on.
      const runId = await trigger("l-two-waits", { tag, firstSleep: "1s" });
      await vi.waitUntil(() => bus.refused() >= 1, { timeout: 10_000, interval: 20 });
      await until(runId, waitsOn("l:second"), 20_000);
      // Then the old subscription runs out of tries while the task waits at its second wait.
      const view = await untilDeadLettered(runId, "subscribe");
      expect(bus.refused()).toBe(OUTBOX_MAX_TRIES);
      expect(view.deadLetters).toEqual([expect.objectContaining({ kind: "subscribe", target: "events:default:l:first", tries: OUTBOX_MAX_TRIES })]);
      expect(view.status).toBe("RUNNING");
      expect(waitsOn("l:second")(view)).toBe(true);
      expect(task(view, "l-two-waits").error ?? null).toBeNull();
      await push("l:second", { tag, n: 7 });
      const run = await result(runId, { timeoutMs: 10_000 });
      expect(run.status).toBe("COMPLETED");
      expect(run.output).toEqual({ first: ["sleep"], second: 7 });
    } finally {
      bus.restore();
    }
  });

  it("does not fail a task whose dispatch landed though every answer from its task queue was lost, once it runs", async () => {
    const original = TaskQueue.prototype.enqueue;
    const tag = crypto.randomUUID();
    let target = "";
    let lost = 0;
    // The task queue takes the resume's dispatch (and sends it), but its answer never reaches the run.
    TaskQueue.prototype.enqueue = async function (this: TaskQueue, identity, items) {
      const reply = await original.call(this, identity, items);
      if (items.some((i) => i.runId === target && i.invocation === 1)) {
        lost++;
        throw new Error("the answer of the task queue was lost");
      }
      return reply;
    };
    try {
      const runId = await trigger("l-two-waits", { tag, firstSleep: "1h" });
      await until(runId, waitsOn("l:first"));
      target = runId;
      await push("l:first", { tag, n: 1 });
      // The resume was dispatched and ran to the second wait, while the run still retries its enqueue.
      await until(runId, waitsOn("l:second"), 20_000);
      await vi.waitUntil(() => lost >= 1, { timeout: 10_000, interval: 20 });
      const view = await untilDeadLettered(runId, "enqueue");
      expect(lost).toBe(OUTBOX_MAX_TRIES);
      expect(view.deadLetters).toEqual([expect.objectContaining({ kind: "enqueue", tries: OUTBOX_MAX_TRIES, error: expect.stringContaining("was lost") })]);
      expect(view.status).toBe("RUNNING");
      expect(waitsOn("l:second")(view)).toBe(true);
      await push("l:second", { tag, n: 2 });
      const run = await result(runId, { timeoutMs: 10_000 });
      expect(run.status).toBe("COMPLETED");
      expect(run.output).toEqual({ first: ["l:first"], second: 2 });
      expect(task(run, "l-two-waits").attempts).toHaveLength(1);
    } finally {
      TaskQueue.prototype.enqueue = original;
    }
  });
});

/** Runs `runId`'s alarm until `done` holds (each run is one more try of what its outbox owes). */
async function driveUntil(runId: string, done: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`${what}: not after 30 s of retries`);
    if (!(await runDurableObjectAlarm(runStub(runId)))) await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A few small notices are never dead-lettered: given up, nothing would repair what they carry.
 * They are retried, backing off to once a minute, until they land.
 */
describe("notices that are never given up", () => {
  it("tells a parent that its child's report was lost even when that notice fails more than the outbox's tries", async () => {
    const originalEnded = WorkflowRun.prototype.childEnded;
    const originalLost = WorkflowRun.prototype.childLost;
    const refusals = OUTBOX_MAX_TRIES + 3;
    let lostRefused = 0;
    WorkflowRun.prototype.childEnded = async function (this: WorkflowRun, report) {
      if (report.parentTask === "l-lonely-parent") throw new Error("the parent cannot take this report");
      return originalEnded.call(this, report);
    };
    // The notice that replaces the report fails for longer than a dead letter's tries, then lands.
    WorkflowRun.prototype.childLost = async function (this: WorkflowRun, lost) {
      if (lost.parentTask === "l-lonely-parent" && lostRefused < refusals) {
        lostRefused++;
        throw new Error("the parent is unreachable for now");
      }
      return originalLost.call(this, lost);
    };
    try {
      const parentId = await trigger("l-lonely-parent", {});
      const parked = await until(parentId, (r) => task(r, "l-lonely-parent").evicted === true && r.children.length === 1);
      const childId = parked.children[0]!;
      await until(childId, (r) => r.status === "COMPLETED");
      await driveUntil(childId, async () => lostRefused >= 1, "the child never sent its parent the notice");
      await driveUntil(childId, async () => (await getRun(parentId)).status !== "RUNNING", "the parent still waits for its child");
      expect(lostRefused).toBe(refusals);
      const parent = await result(parentId, { timeoutMs: 10_000 });
      expect(parent.status).toBe("FAILED");
      expect(parent.error).toMatchObject({ code: "delivery.dead_letter", task: "l-lonely-parent" });
      expect(parent.error!.message).toContain(`the report of child run ${childId} (COMPLETED) could not be delivered to this run after ${OUTBOX_MAX_TRIES} tries`);
      // The report is a dead letter; the notice is not: it landed.
      expect((await getRun(childId)).deadLetters).toEqual([expect.objectContaining({ kind: "child_ended", tries: OUTBOX_MAX_TRIES })]);
    } finally {
      WorkflowRun.prototype.childEnded = originalEnded;
      WorkflowRun.prototype.childLost = originalLost;
    }
  });

  it("cancels a child run whose cancel fails more than the outbox's tries", async () => {
    const original = WorkflowRun.prototype.cancel;
    const tag = crypto.randomUUID();
    const refusals = OUTBOX_MAX_TRIES + 3;
    let childObject: DurableObjectId | null = null;
    let refused = 0;
    WorkflowRun.prototype.cancel = async function (this: WorkflowRun) {
      const id = (this as unknown as { ctx: DurableObjectState }).ctx.id;
      if (childObject?.equals(id) && refused < refusals) {
        refused++;
        throw new Error("the child run is unreachable for now");
      }
      return original.call(this);
    };
    try {
      const parentId = await trigger("l-held-child", { tag });
      const parked = await until(parentId, (r) => task(r, "l-held-child").evicted === true && r.children.length === 1);
      const childId = parked.children[0]!;
      await until(childId, (r) => task(r, "t-gated").status === "RUNNING");
      childObject = env.RUNS.idFromName(`run:default:${childId}`);
      const cancelled = await api("POST", `/api/v1/runs/${parentId}/cancel`);
      expect(cancelled.status).toBe(200);
      expect(cancelled.body.status).toBe("CANCELLED");
      await driveUntil(parentId, async () => (await getRun(childId)).status !== "RUNNING", "the child run still runs");
      expect(refused).toBe(refusals);
      const child = await result(childId, { timeoutMs: 10_000 });
      expect(child.status).toBe("CANCELLED");
      expect((await getRun(parentId)).deadLetters ?? []).toEqual([]);
    } finally {
      WorkflowRun.prototype.cancel = original;
      gates.add(tag);
    }
  });
});
