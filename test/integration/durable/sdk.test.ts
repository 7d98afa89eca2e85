import { runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { SpindleError } from "@spindle/worker-sdk";
import { effects } from "../../worker/durable";
import { spindle } from "../../worker/workflows";
import { result, runStub, task, trigger, until } from "../helpers";

describe("the durable SDK", () => {
  it("keys an unnamed memo by its source and deps, and replays the first now() instead of reading the clock again", async () => {
    const [alpha, beta] = await Promise.all(["alpha", "beta"].map((dep) => trigger("d-memo-keys", { dep })));
    const logs = [];
    for (const runId of [alpha!, beta!]) {
      const waiting = await until(runId, (r) => task(r, "d-memo-keys").evicted === true);
      logs.push(task(waiting, "d-memo-keys").eventLog!);
    }
    // Let the clock move on: a now() read again by the replay would be later than this.
    await new Promise((r) => setTimeout(r, 20));
    const evictedAt = Date.now();
    for (const log of logs) {
      expect(log.map((c) => [c.seq, c.kind, c.key.replace(/[0-9a-f]{24}$/, "<digest>"), c.occurrence])).toEqual([
        [0, "memo", "now", 0],
        [1, "memo", "memo#<digest>", 0],
        [2, "sleep", "sleepFor:1000", 0],
      ]);
    }
    // The same memo with other deps is another call.
    expect(logs[0]![1]!.key).not.toBe(logs[1]![1]!.key);
    for (const [runId, dep] of [[alpha!, "alpha"], [beta!, "beta"]] as const) {
      expect(await runDurableObjectAlarm(runStub(runId))).toBe(true);
      const run = await result(runId);
      expect(run.status, JSON.stringify(run.error)).toBe("COMPLETED");
      const t = task(run, "d-memo-keys");
      expect(t.invocations).toBe(2);
      const out = run.output as { value: string; first: string; second: string };
      expect(out.value).toBe(`computed for ${dep}`);
      expect(effects.get(`d-memo-keys:body:${runId}`)).toBe(1);
      // The first now() was replayed from the log; the second, a second call of now(), was read after the sleep.
      expect(t.eventLog![0]!.result).toEqual({ value: Date.parse(out.first) });
      expect(Date.parse(out.first)).toBeLessThan(evictedAt);
      expect(Date.parse(out.second)).toBeGreaterThanOrEqual(evictedAt);
      expect(t.eventLog!.map((c) => [c.key, c.occurrence])).toContainEqual(["now", 1]);
    }
  });

  it("runs a durable task inside a DAG and wakes it with an event pushed through the SDK", async () => {
    const runId = await trigger("t-mixed", { x: 4 });
    await until(runId, (r) => task(r, "middle").evicted === true);
    const { eventId } = await spindle.events.push("t-mixed:add", { x: 4, add: 3 });
    expect(eventId).toMatch(/^[0-9A-Z]{26}$/);
    const run = await result(runId);
    expect(run.output).toEqual({ before: { x: 4 }, middle: { x: 7 }, after: { final: 14 } });
  });

  it("pushes many events at once", async () => {
    const ids = await Promise.all([1, 2].map((x) => trigger("t-mixed", { x: 100 + x })));
    for (const id of ids) await until(id, (r) => task(r, "middle").evicted === true);
    const pushed = await spindle.events.bulkPush([
      { key: "t-mixed:add", payload: { x: 101, add: 1 } },
      { key: "t-mixed:add", payload: { x: 102, add: 2 } },
    ]);
    expect(pushed).toHaveLength(2);
    const [a, b] = await Promise.all(ids.map((id) => result(id)));
    expect((a!.output as any).middle).toEqual({ x: 102 });
    expect((b!.output as any).middle).toEqual({ x: 104 });
  });

  it("refuses an event without a key, naming the field, and pushes nothing", async () => {
    const err = await spindle.events.push("", { x: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpindleError);
    expect((err as SpindleError).code).toBe("request.invalid");
    expect((err as SpindleError).fields).toEqual([{ path: "key", message: "must be a string of 1 to 256 characters" }]);
    const bulk = await spindle.events.bulkPush([{ key: "ok", payload: 1 }, { key: "", payload: 2 }]).catch((e: unknown) => e);
    expect((bulk as SpindleError).fields?.[0]?.path).toBe("events[1].key");
  });

  it("fails a task whose wait has an expression that does not parse, without retrying", async () => {
    const run = await result(await trigger("d-bad-cel", {}));
    expect(run.status).toBe("FAILED");
    expect(run.error).toMatchObject({ code: "condition.invalid", retryable: false });
    expect(run.error!.message).toContain('CEL expression "input.x == == 1" does not parse');
    expect(task(run, "d-bad-cel").attempts).toHaveLength(1);
  });
});
