import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { CheckpointRequest, RunView, TaskOutcome } from "@spindle/worker-sdk/protocol";
import { advanceClock } from "../../src/core/clock";
import { LIVENESS_TIMEOUT_MS, MAX_LOST_DISPATCHES } from "../../src/run/liveness";
import { WorkflowRun, type DispatchRef } from "../../src/run/workflow-run";
import { DISPATCH_RESEND_MS, type DispatchMessage } from "../../src/scheduler/messages";
import { MAX_DISPATCH_RESENDS, RESEND_MAX_MS, TaskQueue } from "../../src/scheduler/task-queue";
import { gates, tightOrder } from "../worker/liveness";
import { effects } from "../worker/workflows";
import { getRun, push, result, runStub, task, trigger, until } from "./helpers";

/**
 * An attempt whose runner dies is found out and run again, without using a retry. The faults are
 * injected where they happen, by replacing methods of the run's object inside workerd: a consumer
 * that died after starting a claim sends no heartbeat and never answers; a start whose reply was
 * lost is delivered again by the queue. Time is moved with the engine's clock, not waited for.
 */
const restore: (() => void)[] = [];
afterEach(() => {
  for (const undo of restore.splice(0).reverse()) undo();
});

function replace<K extends "heartbeat" | "startTask" | "completeTask" | "checkpoint" | "dispatch">(name: K, impl: (original: WorkflowRun[K]) => WorkflowRun[K]): void {
  const original = WorkflowRun.prototype[name];
  WorkflowRun.prototype[name] = impl(original);
  restore.push(() => (WorkflowRun.prototype[name] = original));
}

/** The consumer of the first claim of `taskName` is gone: none of its heartbeats reach the run. */
function silenceFirstClaim(taskName: string): void {
  replace("heartbeat", (original) =>
    async function (this: WorkflowRun, ref: DispatchRef) {
      if (ref.task === taskName && ref.invocation === 0) return;
      return original.call(this, ref);
    },
  );
}

/** Moves past the liveness timeout and lets the run look at its claims. */
async function outliveTheBound(runId: string): Promise<void> {
  advanceClock(LIVENESS_TIMEOUT_MS + 1_000);
  expect(await runDurableObjectAlarm(runStub(runId))).toBe(true);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tag = (what: string) => `${what}-${crypto.randomUUID()}`;

describe("an attempt whose runner dies", () => {
  it("runs a regular task again when the invocation running it dies after the start, and ignores the lost one's late answer", async () => {
    const t = tag("lost");
    silenceFirstClaim("t-gated");
    const runId = await trigger("t-gated", { tag: t, hold: true });
    // The first execution is under way; then its runner goes silent for good.
    await vi.waitUntil(() => effects.get(`t-gated:${t}`) === 1, { timeout: 10_000 });
    await outliveTheBound(runId);
    const run = await result(runId, { timeoutMs: 30_000 });
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ execution: 2 });
    const gatedTask = task(run, "t-gated");
    expect(gatedTask.attempts).toHaveLength(1);
    expect(gatedTask.retryCount).toBe(0);
    expect(gatedTask.lostDispatches).toHaveLength(1);
    expect(gatedTask.lostDispatches[0]).toMatchObject({ attempt: 1, invocation: 0 });
    expect(gatedTask.lostDispatches[0]!.reason).toContain("no heartbeat");
    expect(effects.get(`t-gated:${t}`)).toBe(2);

    // The lost execution answers after all: its logs are kept, its answer is not.
    gates.add(t);
    const after = await until(runId, (r) => task(r, "t-gated").logs.some((l) => l.message === "execution 1"), 20_000);
    expect(after.output).toEqual(run.output);
    expect(after.finishedAt).toBe(run.finishedAt);
    expect(task(after, "t-gated").attempts).toHaveLength(1);
  });

  it("runs a durable task again from its log when the invocation dies in the middle of spawnChildren, creating each child once", async () => {
    silenceFirstClaim("d-lost-spawn");
    let recorded = false;
    let released = false;
    replace("checkpoint", (original) =>
      async function (this: WorkflowRun, req: CheckpointRequest) {
        const reply = await original.call(this, req);
        if (req.task === "d-lost-spawn" && req.invocation === 0 && req.kind === "children") {
          // The children are spawned and the wait is recorded, and then the invocation dies: the
          // reply never reaches it.
          recorded = true;
          while (!released) await sleep(10);
          throw new Error("the invocation that made this call is gone");
        }
        return reply;
      },
    );
    try {
      const runId = await trigger("d-lost-spawn", { n: 3 });
      await vi.waitUntil(() => recorded, { timeout: 10_000 });
      // The children run to the end while their parent's invocation is dead.
      const children = (await until(runId, (r) => r.children.length === 3)).children;
      for (const child of children) await result(child);
      expect(task(await getRun(runId), "d-lost-spawn")).toMatchObject({ status: "RUNNING", evicted: false });

      await outliveTheBound(runId);
      const run = await result(runId, { timeoutMs: 30_000 });
      expect(run.status).toBe("COMPLETED");
      expect(run.output).toEqual({ sum: 0 + 1 + 4 });
      const parent = task(run, "d-lost-spawn");
      expect(parent.attempts).toHaveLength(1);
      expect(parent.invocations).toBe(2);
      expect(parent.lostDispatches).toMatchObject([{ attempt: 1, invocation: 0 }]);
      expect(effects.get(`d-lost-spawn:invoked:${runId}`)).toBe(2);
      expect(run.children).toEqual(children);
      for (const child of children) expect(effects.get(`t-leaf:${child}`), `child ${child}`).toBe(1);
    } finally {
      released = true;
    }
  });

  it("fails an attempt lost ten times with a retryable task.lost error, and the retry runs", async () => {
    const t = tag("lost-often");
    // Nothing that runs attempt 1 is ever heard from again.
    replace("heartbeat", (original) =>
      async function (this: WorkflowRun, ref: DispatchRef) {
        if (ref.task === "t-gated" && ref.attempt === 1) return;
        return original.call(this, ref);
      },
    );
    const runId = await trigger("t-gated", { tag: t, holdEvery: true });
    for (let execution = 1; execution <= MAX_LOST_DISPATCHES; execution++) {
      await vi.waitUntil(() => effects.get(`t-gated:${t}`) === execution, { timeout: 10_000 });
      await outliveTheBound(runId);
    }
    const failed = await until(runId, (r) => task(r, "t-gated").attempts.length === 2, 20_000);
    expect(task(failed, "t-gated").attempts[0]).toMatchObject({ status: "FAILED", error: { code: "task.lost", retryable: true } });
    expect(task(failed, "t-gated").lostDispatches).toHaveLength(MAX_LOST_DISPATCHES);
    gates.add(t);
    const run = await result(runId, { timeoutMs: 30_000 });
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ execution: MAX_LOST_DISPATCHES + 1 });
    expect(task(run, "t-gated").retryCount).toBe(1);
  });

  it("starts the attempt again at once when its start reply was lost and the queue delivers the message again", async () => {
    const t = tag("reply");
    let lost = 0;
    let starts = 0;
    // The run is too busy to take the dispatch from its task queue: it comes through the dispatch queue.
    replace("dispatch", (original) =>
      async function (this: WorkflowRun, m: DispatchMessage) {
        if (m.task === "t-gated") return { ok: true, value: { kind: "busy" } } as const;
        return original.call(this, m);
      },
    );
    replace("startTask", (original) =>
      async function (this: WorkflowRun, ref: DispatchRef, message?: string | null) {
        const reply = await original.call(this, ref, message);
        if (ref.task !== "t-gated") return reply;
        starts++;
        if (lost === 0 && reply.ok && reply.value.kind === "started") {
          lost++;
          throw new Error("injected: the start was recorded, its reply is lost");
        }
        return reply;
      },
    );
    const runId = await trigger("t-gated", { tag: t });
    const run = await result(runId, { timeoutMs: 30_000 });
    expect(run.status).toBe("COMPLETED");
    expect(lost).toBe(1);
    expect(starts).toBeGreaterThanOrEqual(3); // the start, its redelivery, the new claim
    expect(effects.get(`t-gated:${t}`)).toBe(1);
    const gatedTask = task(run, "t-gated");
    expect(gatedTask.attempts).toHaveLength(1);
    expect(gatedTask.retryCount).toBe(0);
    expect(gatedTask.lostDispatches).toHaveLength(1);
    expect(gatedTask.lostDispatches[0]!.reason).toContain("delivered again");
  });

  it("runs a task handed straight to its run once when the run's reply to its task queue is lost", async () => {
    const t = tag("handover");
    let lost = 0;
    let duplicates = 0;
    // The run starts the task (and runs it), and its answer to the task queue is lost: the queue sends the
    // dispatch through the dispatch queue as well, where the run refuses it as a duplicate.
    replace("dispatch", (original) =>
      async function (this: WorkflowRun, m: DispatchMessage) {
        const reply = await original.call(this, m);
        if (m.task === "t-gated" && lost === 0 && reply.ok && reply.value.kind === "started") {
          lost++;
          throw new Error("injected: the run started the task, its reply is lost");
        }
        return reply;
      },
    );
    replace("startTask", (original) =>
      async function (this: WorkflowRun, ref: DispatchRef, message?: string | null) {
        const reply = await original.call(this, ref, message);
        if (ref.task === "t-gated" && reply.ok && reply.value.kind === "stale" && reply.value.reason.startsWith("duplicate")) duplicates++;
        return reply;
      },
    );
    const runId = await trigger("t-gated", { tag: t, hold: true });
    await vi.waitUntil(() => duplicates === 1 && effects.get(`t-gated:${t}`) === 1, { timeout: 10_000 });
    gates.add(t);
    const run = await result(runId, { timeoutMs: 30_000 });
    expect(lost).toBe(1);
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ execution: 1 });
    expect(effects.get(`t-gated:${t}`)).toBe(1);
    expect(task(run, "t-gated").attempts).toHaveLength(1);
    expect(task(run, "t-gated").lostDispatches).toEqual([]);
    // The refused copy kept the running attempt's slot, which its end gave back.
    const queue = env.TASK_QUEUES.getByName("tq:default:test:regular");
    await vi.waitUntil(async () => (await queue.stats())!.inFlight === 0, { timeout: 10_000 });
  });

  it("records an outcome whose recording fails six times in a row", async () => {
    const t = tag("record");
    let failures = 0;
    replace("completeTask", (original) =>
      async function (this: WorkflowRun, ref: DispatchRef, outcome: TaskOutcome) {
        if (ref.task === "t-gated" && failures < 6) {
          failures++;
          throw new Error("injected: the run could not record the outcome");
        }
        return original.call(this, ref, outcome);
      },
    );
    const runId = await trigger("t-gated", { tag: t });
    const run = await result(runId, { timeoutMs: 45_000 });
    expect(failures).toBe(6);
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ execution: 1 });
    expect(effects.get(`t-gated:${t}`)).toBe(1);
    expect(task(run, "t-gated").attempts).toHaveLength(1);
    expect(task(run, "t-gated").lostDispatches).toEqual([]);
  });
});

describe("a dispatch lost before any consumer started it", () => {
  it("is sent again by its task queue within 30 s of its send, however long its execution timeout", async () => {
    const t = tag("unsent");
    const queue = env.TASK_QUEUES.getByName("tq:default:test:regular");
    // The task queue's hand-over of the dispatch is lost on the way (t-gated's execution timeout is 5 min).
    type Sender = { handOver(config: unknown, rows: { task: string }[]): Promise<unknown[]> };
    const proto = TaskQueue.prototype as unknown as Sender;
    const original = proto.handOver;
    let dropped = 0;
    proto.handOver = async function (this: Sender, config, rows) {
      const kept = rows.filter((r) => !(r.task === "t-gated" && dropped === 0 && ++dropped));
      return original.call(this, config, kept);
    };
    restore.push(() => (proto.handOver = original));
    const runId = await trigger("t-gated", { tag: t });
    await vi.waitUntil(() => dropped === 1, { timeout: 10_000 });
    expect(task(await getRun(runId), "t-gated").status).toBe("QUEUED");
    advanceClock(DISPATCH_RESEND_MS + 1_000);
    expect(await runDurableObjectAlarm(queue)).toBe(true);
    const run = await result(runId, { timeoutMs: 30_000 });
    expect(run.status).toBe("COMPLETED");
    expect(effects.get(`t-gated:${t}`)).toBe(1);
    expect(task(run, "t-gated").attempts).toHaveLength(1);
  });
});

describe("a dispatch whose start always throws", () => {
  it("fails its task, saying why, after its task queue sent it the most times it may, and frees its slot", async () => {
    const userId = tag("never-starts");
    const queue = env.TASK_QUEUES.getByName("tq:default:test:durable");
    const runId = await trigger("d-event", { userId });
    await until(runId, (r) => task(r, "d-event").evicted === true);
    type Sender = { send(config: unknown, rows: { run_id: string; invocation: number }[]): Promise<void> };
    const proto = TaskQueue.prototype as unknown as Sender;
    const originalSend = proto.send;
    let sends = 0;
    proto.send = async function (this: Sender, config, rows) {
      sends += rows.filter((r) => r.run_id === runId && r.invocation === 1).length;
      return originalSend.call(this, config, rows);
    };
    restore.push(() => (proto.send = originalSend));
    // The resume's start throws, however often its dispatch is delivered, handed over or queued.
    const object = env.RUNS.idFromName(`run:default:${runId}`);
    let starts = 0;
    replace("dispatch", (original) =>
      async function (this: WorkflowRun, m: DispatchMessage) {
        if (object.equals((this as unknown as { ctx: DurableObjectState }).ctx.id) && m.invocation === 1) {
          starts++;
          throw new Error("injected: the start throws");
        }
        return original.call(this, m);
      },
    );
    replace("startTask", (original) =>
      async function (this: WorkflowRun, ref: DispatchRef, message?: string | null) {
        if (object.equals((this as unknown as { ctx: DurableObjectState }).ctx.id) && ref.invocation === 1) {
          starts++;
          throw new Error("injected: the start throws");
        }
        return original.call(this, ref, message);
      },
    );
    await push("d:update", { userId });
    await vi.waitUntil(() => starts >= 1, { timeout: 10_000, interval: 20 });
    const leased = (await queue.stats())!.inFlight;
    // Each lease expiry of the task queue re-sends the dispatch, until it may no more.
    for (let i = 0; (await getRun(runId)).status === "RUNNING"; i++) {
      if (i > MAX_DISPATCH_RESENDS + 3) throw new Error(`still running after ${sends} sends`);
      advanceClock(RESEND_MAX_MS + 1_000);
      expect(await runDurableObjectAlarm(queue)).toBe(true);
    }
    const run = await result(runId);
    // Every re-send went through the dispatch queue; the first send too, unless the run took the dispatch
    // over from its task queue's answer to its enqueue (then the run sent it there itself).
    expect(sends).toBeGreaterThanOrEqual(MAX_DISPATCH_RESENDS);
    expect(sends).toBeLessThanOrEqual(1 + MAX_DISPATCH_RESENDS);
    expect(run.status).toBe("FAILED");
    expect(run.error).toMatchObject({ code: "dispatch.not_started", task: "d-event", retryable: false });
    expect(run.error!.message).toContain(`task 'd-event' could not be started: its dispatch (attempt 1, invocation 1) was sent ${1 + MAX_DISPATCH_RESENDS} times and never started`);
    expect(task(run, "d-event").attempts).toHaveLength(1);
    // Its slot is free again.
    await vi.waitUntil(async () => (await queue.stats())!.inFlight === leased - 1, { timeout: 10_000, interval: 20 });
  });

  it("keeps the slot of a claim that runs longer than all its re-sends, and the task completes", async () => {
    const t = tag("long");
    const queue = env.TASK_QUEUES.getByName("tq:default:test:regular");
    const runId = await trigger("t-gated", { tag: t, hold: true });
    await until(runId, (r) => task(r, "t-gated").status === "RUNNING");
    for (let i = 0; i < MAX_DISPATCH_RESENDS + 2; i++) {
      advanceClock(RESEND_MAX_MS + 1_000);
      expect(await runDurableObjectAlarm(queue)).toBe(true);
    }
    expect(task(await getRun(runId), "t-gated").status).toBe("RUNNING");
    gates.add(t);
    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ execution: 1 });
    expect(task(run, "t-gated").attempts).toHaveLength(1);
  });
});

describe("a durable task's resume", () => {
  it("is never failed for waiting longer than the schedule timeout for a slot, and starts ahead of new work", async () => {
    const queue = env.TASK_QUEUES.getByName("tq:default:tight:durable");
    const r = tag("resume");
    const h = tag("hold");
    const n = tag("new");
    const resumeId = await trigger("d-tight-resume", { tag: r });
    await until(resumeId, (run) => task(run, "d-tight-resume").evicted === true);
    // The one durable slot is taken, and new work waits for it.
    const holdId = await trigger("d-tight-hold", { tag: h });
    await vi.waitUntil(() => tightOrder.includes(`hold:${h}`), { timeout: 10_000 });
    const newId = await trigger("d-tight-new", { tag: n });
    await vi.waitUntil(async () => (await queue.stats())?.ready === 1, { timeout: 10_000 });
    // The event arrives: the resume is queued behind the busy slot, past its 2 s schedule timeout.
    await push("d-tight-resume:go", { tag: r, n: 7 });
    await vi.waitUntil(async () => (await queue.stats())?.ready === 2, { timeout: 10_000 });
    expect(task(await getRun(resumeId), "d-tight-resume").status).toBe("QUEUED");
    advanceClock(3_000);
    await runDurableObjectAlarm(runStub(resumeId));
    const waiting: RunView = await getRun(resumeId);
    expect(waiting.status).toBe("RUNNING");
    expect(task(waiting, "d-tight-resume").status).toBe("QUEUED");

    gates.add(h);
    const resumed = await result(resumeId, { timeoutMs: 30_000 });
    expect(resumed.status).toBe("COMPLETED");
    expect(resumed.output).toEqual({ n: 7 });
    expect((await result(newId)).status).toBe("COMPLETED");
    expect((await result(holdId)).status).toBe("COMPLETED");
    expect(tightOrder.filter((e) => e.endsWith(r) || e.endsWith(n))).toEqual([`resumed:${r}`, `new:${n}`]);
  });
});
