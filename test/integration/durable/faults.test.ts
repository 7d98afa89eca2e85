import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { advanceClock } from "../../../src/core/clock";
import type { DispatchMessage } from "../../../src/scheduler/messages";
import { WorkflowRun } from "../../../src/run/workflow-run";
import { crashAt, effects, reorder } from "../../worker/durable";
import { gates } from "../../worker/liveness";
import { getRun, push, result, runStub, task, trigger, until } from "../helpers";

const evicted = (name: string) => (run: any) => task(run, name).evicted === true;
const tag = () => `tag-${crypto.randomUUID()}`;

/** Drives d-steps to the end: fires its sleep, pushes its event, evicting the run's object as asked. */
async function driveSteps(runId: string, t: string, evictAtEveryStep: boolean) {
  const stub = runStub(runId);
  const evict = async () => {
    if (evictAtEveryStep) await evictDurableObject(stub).catch(() => undefined);
  };
  // seq 1 is the sleep: wait until the task sleeps on it, then wake it.
  await until(runId, (r) => task(r, "d-steps").waitingFor?.some((w) => w.kind === "sleep") === true && task(r, "d-steps").evicted === true);
  await evict();
  expect(await runDurableObjectAlarm(stub)).toBe(true);
  await evict();
  await until(runId, (r) => task(r, "d-steps").waitingFor?.some((w) => w.kind === "wait") === true && task(r, "d-steps").evicted === true);
  await evict();
  await push("d-steps:go", { tag: t, n: 100 });
  await evict();
  return result(runId, { timeoutMs: 30_000 });
}

describe("durable tasks under faults", () => {
  it("gets the same output with each memo body run once, evicting the run and crashing the task at every checkpoint", async () => {
    const calm = tag();
    const calmId = await trigger("d-steps", { tag: calm });
    const reference = await driveSteps(calmId, calm, false);
    expect(reference.status).toBe("COMPLETED");
    expect(reference.output).toEqual({ a: 1, b: 11, c: 111, d: 125, slept: 2000, invocations: true });

    const t = tag();
    const runId = await trigger("d-steps", { tag: t });
    for (const step of ["a", "sleep", "b", "event", "c", "children"]) crashAt.add(`${runId}:${step}`);
    const run = await driveSteps(runId, t, true);
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual(reference.output);
    for (const step of ["a", "b", "c", "d"]) expect(effects.get(`d-steps:${step}:${runId}`), `memo ${step}`).toBe(1);
    // Six injected crashes, each one retried from the log.
    const steps = task(run, "d-steps");
    expect(steps.attempts.filter((a) => a.status === "FAILED").map((a) => a.error?.message)).toEqual([
      "injected crash after a",
      "injected crash after sleep",
      "injected crash after b",
      "injected crash after event",
      "injected crash after c",
      "injected crash after children",
    ]);
    expect(steps.eventLog!.map((c) => c.kind)).toEqual(["memo", "sleep", "memo", "wait", "memo", "children", "memo"]);
    expect(steps.eventLog!.every((c) => c.status === "resolved")).toBe(true);
  });

  it("runs a delivered-twice durable invocation once", async () => {
    const runId = await trigger("d-gated-sleep", {});
    await until(runId, evicted("d-gated-sleep"));
    // Count the starts of invocation 1 as they reach the run: handed over by its task queue, or through the dispatch queue.
    const original = WorkflowRun.prototype.startTask;
    const originalDispatch = WorkflowRun.prototype.dispatch;
    let starts = 0;
    WorkflowRun.prototype.startTask = async function (this: WorkflowRun, ref, ...rest) {
      if (ref.task === "d-gated-sleep" && ref.invocation === 1) starts++;
      return original.call(this, ref, ...rest);
    };
    WorkflowRun.prototype.dispatch = async function (this: WorkflowRun, m) {
      if (m.task === "d-gated-sleep" && m.invocation === 1) starts++;
      return originalDispatch.call(this, m);
    };
    try {
      expect(await runDurableObjectAlarm(runStub(runId))).toBe(true);
      // Invocation 1 is running (held at its gate): deliver its dispatch twice more, inside that window.
      await vi.waitUntil(() => effects.get(`d-gated-sleep:resumed:${runId}`) === 1, { timeout: 10_000 });
      const duplicate: DispatchMessage = { tenant: "default", worker: "test", pool: "durable", key: `${runId}/d-gated-sleep/1/1`, runId, task: "d-gated-sleep", attempt: 1, invocation: 1 };
      await env.DISPATCH_DURABLE.sendBatch([{ body: duplicate }, { body: duplicate }]);
      await vi.waitUntil(() => starts === 3, { timeout: 10_000 });
    } finally {
      WorkflowRun.prototype.startTask = original;
      WorkflowRun.prototype.dispatch = originalDispatch;
    }
    gates.add(runId);
    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    // Invocation 0 ran once, invocation 1 once: the two extra deliveries ran nothing.
    expect(effects.get(`d-gated-sleep:invoked:${runId}`)).toBe(2);
    expect(effects.get(`d-gated-sleep:resumed:${runId}`)).toBe(1);
    const t = task(run, "d-gated-sleep");
    expect(t.invocations).toBe(2);
    expect(t.eventLog!.map((c) => c.kind)).toEqual(["sleep"]);
  });

  it("refuses a checkpoint from a stale invocation", async () => {
    const runId = await trigger("d-sleep", { duration: "1s" });
    await until(runId, evicted("d-sleep"));
    // Invocation 0 ended at the sleep; an old copy of it tries to write now.
    const reply = await runStub(runId).checkpoint({ task: "d-sleep", attempt: 1, invocation: 0, seq: 2, kind: "memo", key: "memo:x", occurrence: 0, result: { value: 1 } });
    expect(reply).toMatchObject({ ok: false, error: { code: "task.superseded" } });
    expect(task(await getRun(runId), "d-sleep").eventLog).toHaveLength(2);
    await runDurableObjectAlarm(runStub(runId));
    await result(runId);
  });

  it("resumes a 24h sleep interrupted at 23h with 1h left", async () => {
    const HOUR = 3_600_000;
    const runId = await trigger("d-sleep", { duration: "24h" });
    const waiting = await until(runId, evicted("d-sleep"));
    const due = Date.parse(task(waiting, "d-sleep").waitingFor![0]!.conditions![0]!.dueAt!);
    const stub = runStub(runId);
    advanceClock(23 * HOUR);
    try {
      // A restart at 23 h: the object goes away and comes back.
      await evictDurableObject(stub).catch(() => undefined);
      const resumed = await getRun(runId);
      const t = task(resumed, "d-sleep");
      expect(t.status).toBe("RUNNING");
      expect(t.evicted).toBe(true);
      expect(Date.parse(t.waitingFor![0]!.conditions![0]!.dueAt!)).toBe(due);
      const left = due - (Date.now() + 23 * HOUR);
      expect(left).toBeGreaterThan(HOUR - 60_000);
      expect(left).toBeLessThanOrEqual(HOUR);
      // The alarm still points at the original deadline, not 24 h from the restart.
      await vi.waitUntil(async () => (await runInDurableObject(stub, (_instance, state) => state.storage.getAlarm())) === due, { timeout: 5_000 });
      advanceClock(HOUR);
      expect(await runDurableObjectAlarm(stub)).toBe(true);
      const run = await result(runId);
      expect(run.status).toBe("COMPLETED");
      expect(run.output).toMatchObject({ sleptMs: 24 * HOUR });
      expect(task(run, "d-sleep").invocations).toBe(2);
    } finally {
      advanceClock(-24 * HOUR);
    }
  });

  it("fails a sequential replay that makes another call where the log has one, naming the position and both calls", async () => {
    const runId = await trigger("d-nondet", {});
    await until(runId, evicted("d-nondet"));
    reorder.add(runId);
    expect(await runDurableObjectAlarm(runStub(runId))).toBe(true);
    const run = await result(runId);
    expect(run.status).toBe("FAILED");
    expect(run.error).toMatchObject({ code: "replay.non_determinism", name: "NonDeterminismError", retryable: false });
    // The sequential replay made another memo where the log has `memo(() => 1)`: named with both calls.
    const log = task(run, "d-nondet").eventLog!;
    expect(log.map((c) => [c.seq, c.kind])).toEqual([[0, "memo"], [1, "sleep"], [2, "memo"]]);
    expect(run.error!.message).toContain(`checkpoint 0: the log recorded memo(${log[0]!.key})`);
    expect(run.error!.message).toContain(`it called memo(${log[2]!.key}) (checkpoint 2) instead`);
    expect(log[0]!.key).not.toBe(log[2]!.key);
    expect(task(run, "d-nondet").attempts).toHaveLength(1);
  });
});
