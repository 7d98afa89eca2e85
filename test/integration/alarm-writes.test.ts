import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { LIVENESS_TIMEOUT_MS } from "../../src/run/liveness";
import { ALARM_OVERDUE_MS, ALARM_SLACK_MS, TimerStore } from "../../src/run/timer-store";
import { gates } from "../worker/liveness";
import { getRun, result, runStub, task, trigger, until } from "./helpers";

/**
 * Moving a Durable Object's alarm costs a write of the runtime's alarm store besides the commit. A
 * run keeps its alarm where it is when the next due time is only a little later (`TimerStore.plan`),
 * so a short run sets it once and deletes it once; a long wait still moves it.
 */
describe("a run's alarm writes", () => {
  /** Records every setAlarm and deleteAlarm, by the storage they were called on. */
  async function recordAlarmWrites(): Promise<{ calls: Map<object, string[]>; restore: () => void }> {
    const probe = runStub(`alarm-probe-${crypto.randomUUID()}`);
    const proto = await runInDurableObject(probe, (_instance, state) => Object.getPrototypeOf(state.storage));
    const { setAlarm, deleteAlarm } = proto;
    const calls = new Map<object, string[]>();
    const note = (storage: object, what: string) => calls.set(storage, [...(calls.get(storage) ?? []), what]);
    proto.setAlarm = function (this: object, ...args: unknown[]) {
      note(this, "set");
      return setAlarm.apply(this, args);
    };
    proto.deleteAlarm = function (this: object, ...args: unknown[]) {
      note(this, "delete");
      return deleteAlarm.apply(this, args);
    };
    return {
      calls,
      restore: () => {
        proto.setAlarm = setAlarm;
        proto.deleteAlarm = deleteAlarm;
      },
    };
  }

  it("sets a short run's alarm once, at its creation, and deletes it once, at its end", async () => {
    const { calls, restore } = await recordAlarmWrites();
    try {
      const runId = await trigger("t-echo", { alarm: true });
      expect((await result(runId)).status).toBe("COMPLETED");
      const storage = await runInDurableObject(runStub(runId), (_instance, state) => state.storage);
      // The deletion comes with the write that tidies the outbox, just after the end.
      await vi.waitUntil(() => (calls.get(storage) ?? []).includes("delete"), { timeout: 5_000 });
      expect(calls.get(storage)).toEqual(["set", "delete"]);
      expect(await runInDurableObject(runStub(runId), (_instance, state) => state.storage.getAlarm())).toBeNull();
    } finally {
      restore();
    }
  });

  it("lets a task's first liveness check share the alarm its run's creation set", async () => {
    const { calls, restore } = await recordAlarmWrites();
    const tag = `alarm-${crypto.randomUUID()}`;
    try {
      const runId = await trigger("t-gated", { tag, hold: true });
      await until(runId, (run) => run.tasks[0]!.status === "RUNNING");
      const { alarm, liveness, created } = await runInDurableObject(runStub(runId), (_instance, state) => ({
        alarm: state.storage.getAlarm(),
        liveness: state.storage.sql.exec<{ due_at: number }>("SELECT due_at FROM timers WHERE kind = 'liveness'").one().due_at,
        created: state.storage.sql.exec<{ created_at: number }>("SELECT created_at FROM run").one().created_at,
      }));
      const started = Date.parse((await getRun(runId)).tasks[0]!.startedAt!);
      // The check is due when the alarm set at the creation (its outbox's grace) fires: at most
      // ALARM_SLACK_MS before a timeout counted from the start, when the start came that soon.
      expect(await alarm).toBe(liveness);
      if (started - created < ALARM_SLACK_MS) {
        expect(liveness).toBe(created + LIVENESS_TIMEOUT_MS);
        expect(calls.get(await runInDurableObject(runStub(runId), (_instance, state) => state.storage))).toEqual(["set"]);
      } else {
        expect(liveness).toBe(started + LIVENESS_TIMEOUT_MS);
      }
      gates.add(tag);
      expect((await result(runId)).status).toBe("COMPLETED");
    } finally {
      restore();
    }
  });

  it("moves the alarm to a sleep's deadline, far beyond the slack", async () => {
    const { calls, restore } = await recordAlarmWrites();
    try {
      const runId = await trigger("d-sleep", { duration: "1h" });
      const waiting = await until(runId, (run) => task(run, "d-sleep").evicted === true);
      const due = Date.parse(task(waiting, "d-sleep").waitingFor![0]!.conditions![0]!.dueAt!);
      const storage = await runInDurableObject(runStub(runId), (_instance, state) => state.storage);
      await vi.waitUntil(async () => (await runInDurableObject(runStub(runId), (_instance, state) => state.storage.getAlarm())) === due, { timeout: 5_000 });
      expect(calls.get(storage)?.at(-1)).toBe("set");
      await runInDurableObject(runStub(runId), (instance) => instance.cancel());
    } finally {
      restore();
    }
  });

  it("sets an alarm again that a write finds long past its time (one the runtime may have given up on)", async () => {
    const runId = await trigger("d-sleep", { duration: "1h" });
    const waiting = await until(runId, (run) => task(run, "d-sleep").evicted === true);
    const due = Date.parse(task(waiting, "d-sleep").waitingFor![0]!.conditions![0]!.dueAt!);
    await vi.waitUntil(async () => (await runInDurableObject(runStub(runId), (_instance, state) => state.storage.getAlarm())) === due, { timeout: 5_000 });
    // What a write's plan decides, with the sleep's alarm set for `due`, at two moments after it:
    // a little late (the runtime is about to run it: leave it) and long overdue (set it again).
    const [late, overdue] = await runInDurableObject(runStub(runId), (_instance, state) => {
      const timers = new TimerStore(state.storage);
      return state.storage.transactionSync(() => [timers.plan(null, due + 30_000), timers.plan(null, due + ALARM_OVERDUE_MS + 1)]);
    });
    expect(late).toBeUndefined();
    expect(overdue).toBe(due);
    await runInDurableObject(runStub(runId), (instance) => instance.cancel());
  });
});
