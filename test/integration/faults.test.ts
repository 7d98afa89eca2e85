import { evictDurableObject, runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import type { TaskOutcome } from "@spindle/worker-sdk/protocol";
import { advanceClock } from "../../src/core/clock";
import { WorkflowRun } from "../../src/run/workflow-run";
import { DISPATCH_RESEND_MS, type DispatchMessage } from "../../src/scheduler/messages";
import { TaskQueue } from "../../src/scheduler/task-queue";
import { gates } from "../worker/liveness";
import { effects, timeline } from "../worker/workflows";
import { getRun, result, runStub, task, trigger, until } from "./helpers";

describe("faults", () => {
  it("runs the effect of one attempt once when its dispatch is delivered again while it runs and after it ended", async () => {
    const t = `dup-${crypto.randomUUID()}`;
    const runId = await trigger("t-gated", { tag: t, hold: true });
    await vi.waitUntil(() => effects.get(`t-gated:${t}`) === 1, { timeout: 10_000 });
    // The run's answers to every start of this dispatch.
    const original = WorkflowRun.prototype.startTask;
    const refused: string[] = [];
    WorkflowRun.prototype.startTask = async function (this: WorkflowRun, ref, ...rest) {
      const reply = await original.call(this, ref, ...rest);
      if (ref.task === "t-gated" && reply.ok && reply.value.kind === "stale") refused.push(reply.value.reason);
      return reply;
    };
    try {
      // The same dispatch twice more while the attempt runs: same run, task, attempt and invocation.
      const duplicate: DispatchMessage = { tenant: "default", worker: "test", pool: "regular", key: `${runId}/t-gated/1/0`, runId, task: "t-gated", attempt: 1, invocation: 0 };
      await env.DISPATCH.sendBatch([{ body: duplicate }, { body: duplicate }]);
      await vi.waitUntil(() => refused.length === 2, { timeout: 10_000 });
      gates.add(t);
      const run = await result(runId);
      expect(run.status).toBe("COMPLETED");
      // And once more after it has completed.
      await env.DISPATCH.send(duplicate);
      await vi.waitUntil(() => refused.length === 3, { timeout: 10_000 });
      expect(refused).toEqual([...Array(2).fill("duplicate delivery: the attempt is already running"), "run is COMPLETED"]);
      expect(effects.get(`t-gated:${t}`)).toBe(1);
      const after = await getRun(runId);
      expect(task(after, "t-gated").attempts).toHaveLength(1);
      expect(after.finishedAt).toBe(run.finishedAt);
    } finally {
      WorkflowRun.prototype.startTask = original;
    }
  });

  it("records an outcome once when the worker's answer is reported twice while the attempt runs", async () => {
    const t = `twice-${crypto.randomUUID()}`;
    const runId = await trigger("t-gated", { tag: t, hold: true });
    await vi.waitUntil(() => effects.get(`t-gated:${t}`) === 1, { timeout: 10_000 });
    // Attempt 1 is running: the same failure is reported for it twice at once.
    const stub = runStub(runId);
    const failure: TaskOutcome = { status: "failed", error: { code: "x", name: "Error", message: "reported twice", retryable: true }, logs: [] };
    const ref = { task: "t-gated", attempt: 1, invocation: 0 };
    const replies = await Promise.all([stub.completeTask(ref, failure), stub.completeTask(ref, failure)]);
    expect(replies.map((r) => (r.ok ? r.value.accepted : r.error.code)).sort()).toEqual([false, true]);
    // One retry, not two: attempt 2 runs and completes.
    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ execution: 2 });
    const gated = task(run, "t-gated");
    expect(gated.attempts.map((a) => a.status)).toEqual(["FAILED", "COMPLETED"]);
    expect(gated.retryCount).toBe(1);
    // The worker's own answer for attempt 1 comes last, and changes nothing either.
    gates.add(t);
    const after = await until(runId, (r) => task(r, "t-gated").logs.some((l) => l.message === "execution 1"));
    expect(after.output).toEqual(run.output);
    expect(after.finishedAt).toBe(run.finishedAt);
    expect(task(after, "t-gated").attempts).toHaveLength(2);
    expect(effects.get(`t-gated:${t}`)).toBe(2);
  });

  it("loses nothing when the run's object is reset between a commit and the send of its outbox", async () => {
    // The reset lands after a's outcome is committed (which queued b and c) and before that
    // write's outbox is sent.
    type Internals = { flushOutbox(horizon: number): Promise<void>; current(): { runId: string } | null; tasks: { get(name: string): { status: string } | null }; ctx: DurableObjectState };
    const proto = WorkflowRun.prototype as unknown as Internals;
    const original = proto.flushOutbox;
    let target: string | null = null;
    let resets = 0;
    proto.flushOutbox = async function (this: Internals, horizon: number) {
      if (resets === 0 && target !== null && this.current()?.runId === target && this.tasks.get("a")?.status === "COMPLETED") {
        resets++;
        // The commit is on disk (a reset would otherwise take the unconfirmed write with it).
        await this.ctx.storage.sync();
        this.ctx.abort("injected: reset between the commit and the outbox send");
      }
      return original.call(this, horizon);
    };
    try {
      const runId = await trigger("t-diamond", { x: 5 });
      target = runId;
      // A call in flight on the object when it is reset fails with it: look once the reset is done.
      await vi.waitUntil(() => resets === 1, { timeout: 10_000 });
      const run = await result(runId);
      expect(run.status).toBe("COMPLETED");
      expect(run.output).toEqual({ a: { v: 6 }, b: { v: 60 }, c: { v: 600 }, d: { sum: 660 } });
      for (const t of run.tasks) expect(t.attempts).toHaveLength(1);
      for (const name of ["a", "b", "c", "d"]) expect(timeline.get(`${runId}:${name}:start`), name).toHaveLength(1);
    } finally {
      proto.flushOutbox = original;
    }
  });

  it("keeps a retry's backoff timer across an eviction", async () => {
    const runId = await trigger("t-flaky", { succeedOn: 1 });
    const stub = runStub(runId);
    await vi.waitUntil(async () => (await getRun(runId)).tasks[0]!.queuedReason?.includes("backing off") === true, { timeout: 5_000 });
    await evictDurableObject(stub);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ retryCount: 1 });
    expect(effects.get(`t-flaky:${runId}`)).toBe(2);
  });

  it("keeps slots and queued tasks when a task queue is reset between admitting tasks and sending them", async () => {
    const queue = env.TASK_QUEUES.getByName("tq:default:test:regular");
    // The reset lands after the admission (the leases) committed and before the dispatch is handed to its run.
    type Internals = { handOver(config: unknown, rows: { task: string }[]): Promise<unknown[]>; ctx: DurableObjectState };
    const proto = TaskQueue.prototype as unknown as Internals;
    const original = proto.handOver;
    let resets = 0;
    proto.handOver = async function (this: Internals, config, rows) {
      if (resets === 0 && rows.some((r) => r.task === "t-echo")) {
        resets++;
        // The admission is on disk (a reset would otherwise take the unconfirmed write with it).
        await this.ctx.storage.sync();
        this.ctx.abort("injected: reset between admission and send");
      }
      return original.call(this, config, rows);
    };
    try {
      const runs = await Promise.all(Array.from({ length: 5 }, (_, i) => trigger("t-echo", { reset: i })));
      await vi.waitUntil(() => resets === 1, { timeout: 10_000 });
      // What was admitted and never sent is sent again once its lease is due.
      advanceClock(DISPATCH_RESEND_MS + 1_000);
      try {
        await runDurableObjectAlarm(queue);
        const done = await Promise.all(runs.map((id) => result(id)));
        expect(done.map((r) => r.status)).toEqual(Array(5).fill("COMPLETED"));
        for (const id of runs) expect(effects.get(`t-echo:${id}`), id).toBe(1);
        for (const r of done) expect(task(r, "t-echo").attempts).toHaveLength(1);
        await vi.waitUntil(async () => (await queue.stats())!.inFlight === 0, { timeout: 10_000 });
        expect(await queue.stats()).toMatchObject({ ready: 0, inFlight: 0 });
      } finally {
        advanceClock(-(DISPATCH_RESEND_MS + 1_000));
      }
    } finally {
      proto.handOver = original;
    }
  });
});
