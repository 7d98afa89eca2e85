import { runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { effects } from "../../worker/durable";
import { getRun, push, result, runStub, task, trigger, until } from "../helpers";

const evicted = (name: string) => (run: any) => task(run, name).evicted === true;

describe("durable tasks: sleeps and events", () => {
  it("sleeps without an invocation running, and wakes when the sleep is over", async () => {
    const runId = await trigger("d-sleep", { duration: "2s" });
    const waiting = await until(runId, evicted("d-sleep"));
    const t = task(waiting, "d-sleep");
    expect(t.status).toBe("RUNNING");
    expect(t.waitingFor).toHaveLength(1);
    expect(t.waitingFor![0]).toMatchObject({ kind: "sleep", key: "sleepFor:2000", conditions: [{ kind: "sleep", durationMs: 2000, satisfied: false }] });
    expect(t.eventLog!.map((c) => [c.seq, c.kind, c.status])).toEqual([
      [0, "memo", "resolved"],
      [1, "sleep", "pending"],
    ]);
    expect(await runDurableObjectAlarm(runStub(runId))).toBe(true);
    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toMatchObject({ sleptMs: 2000 });
    expect(task(run, "d-sleep").evicted).toBe(false);
    expect(task(run, "d-sleep").invocations).toBe(2);
  });

  it("wakes on a matching event and returns its payload, and not on another", async () => {
    const runId = await trigger("d-event", { userId: "u-match" });
    await until(runId, evicted("d-event"));
    await push("d:update", { userId: "someone-else", n: 1 });
    await push("d:other-key", { userId: "u-match" });
    await new Promise((r) => setTimeout(r, 200));
    expect((await getRun(runId)).status).toBe("RUNNING");
    expect(effects.get(`d-event:invoked:${runId}`)).toBe(1);
    await push("d:update", { userId: "u-match", n: 2 });
    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ payload: { userId: "u-match", n: 2 } });
    expect(effects.get(`d-event:invoked:${runId}`)).toBe(2);
  });

  it("returns which condition of an Or fired", async () => {
    const byEvent = await trigger("d-or", {});
    const bySleep = await trigger("d-or", {});
    await until(byEvent, evicted("d-or"));
    await until(bySleep, evicted("d-or"));
    await push("d:approve", { by: "alice" });
    const approved = await result(byEvent);
    expect(approved.output).toEqual({ fired: ["d:approve"], values: { "d:approve": { by: "alice" } } });
    // The other run's event condition was met too (one event wakes every waiter) ...
    const both = await result(bySleep);
    expect(both.output).toMatchObject({ fired: ["d:approve"] });

    const timedOut = await trigger("d-or", {});
    await until(timedOut, evicted("d-or"));
    expect(await runDurableObjectAlarm(runStub(timedOut))).toBe(true);
    const slept = await result(timedOut);
    expect(slept.output).toEqual({ fired: ["sleep"], values: { sleep: { durationMs: 10_000 } } });
  });

  it("waits for every condition of an AND list", async () => {
    const runId = await trigger("d-and", {});
    await until(runId, evicted("d-and"));
    await push("d:left", { l: 1 });
    await push("d:right", { ok: false });
    await new Promise((r) => setTimeout(r, 200));
    expect((await getRun(runId)).status).toBe("RUNNING");
    await push("d:right", { ok: true });
    const run = await result(runId);
    expect(run.output).toEqual({ fired: { "d:left": { l: 1 }, "d:right": { ok: true } } });
  });
});

describe("durable tasks: sleepUntil", () => {
  it("sleeps until the given moment, fixed when the sleep is reached", async () => {
    const at = new Date(Date.now() + 60_000).toISOString();
    const runId = await trigger("d-sleep-until", { at });
    const waiting = await until(runId, evicted("d-sleep-until"));
    const wait = task(waiting, "d-sleep-until").waitingFor![0]!;
    expect(wait.key).toBe(`sleepUntil:${at}`);
    expect(Math.abs(Date.parse(wait.conditions![0]!.dueAt!) - Date.parse(at))).toBeLessThanOrEqual(5);
    expect(await runDurableObjectAlarm(runStub(runId))).toBe(true);
    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    expect((run.output as { durationMs: number }).durationMs).toBeGreaterThan(55_000);
    expect((run.output as { durationMs: number }).durationMs).toBeLessThanOrEqual(60_000);
  });
});
