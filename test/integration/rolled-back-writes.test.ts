import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { RunIndex } from "../../src/run/run-index";
import { RunStore } from "../../src/run/run-store";
import { gates } from "../worker/liveness";
import { effects } from "../worker/workflows";
import { api, getRun, result, runStub, task, trigger, until } from "./helpers";

/**
 * A write of a run that throws rolls back in SQLite; what the run keeps in memory about it must
 * roll back too: the watch results it decided (they would reach a running attempt), the outbox's
 * record of what it has sent (else sent messages go out again).
 */

/** Starts a `t-gated` run held in its first execution, once the attempt watches the run (its SDK does after 200 ms). */
async function heldAndWatching(tag: string): Promise<string> {
  const runId = await trigger("t-gated", { tag, hold: true });
  await until(runId, (r) => task(r, "t-gated").status === "RUNNING");
  await vi.waitUntil(() => effects.get(`t-gated:${tag}`) === 1, { timeout: 10_000, interval: 20 });
  await vi.waitUntil(
    () => runInDurableObject(runStub(runId), (instance) => (instance as unknown as { watchers: Map<string, unknown> }).watchers.size === 1),
    { timeout: 10_000, interval: 20 },
  );
  return runId;
}

describe("a write that rolls back", () => {
  it("delivers none of the watch results it decided: a cancel whose write failed aborts no running attempt", async () => {
    const tag = crypto.randomUUID();
    const runId = await heldAndWatching(tag);
    const original = RunStore.prototype.end;
    let failed = 0;
    // The cancel decides every task's end (and tells the attempt's watch), then its write fails.
    RunStore.prototype.end = function (this: RunStore, ...args: Parameters<RunStore["end"]>) {
      if (failed === 0) {
        failed++;
        throw new Error("injected: the cancel's write failed");
      }
      return original.apply(this, args);
    };
    try {
      const cancel = await api("POST", `/api/v1/runs/${runId}/cancel`);
      expect(cancel.status).toBe(500);
      expect(failed).toBe(1);
    } finally {
      RunStore.prototype.end = original;
    }
    // The run's next write (its alarm) delivers whatever the run holds for the attempt's watch.
    expect(await runDurableObjectAlarm(runStub(runId))).toBe(true);
    expect((await getRun(runId)).status).toBe("RUNNING");
    gates.add(tag);
    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ execution: 1 });
    expect(task(run, "t-gated").attempts).toHaveLength(1);
    expect(effects.get(`t-gated:${tag}`)).toBe(1);
  });

  it("sends nothing again that was sent before it: a refused checkpoint leaves the outbox's sent messages sent", async () => {
    const original = RunIndex.prototype.upsert;
    const reports: string[] = [];
    let target = "";
    RunIndex.prototype.upsert = async function (this: RunIndex, entry) {
      if (entry.runId === target) reports.push(entry.status);
      return original.call(this, entry);
    };
    const tag = crypto.randomUUID();
    try {
      const runId = await trigger("t-gated", { tag, hold: true });
      target = runId;
      await until(runId, (r) => task(r, "t-gated").status === "RUNNING");
      // The start's report to the run index has gone out; the run has not written since.
      await vi.waitUntil(() => reports.includes("RUNNING"), { timeout: 10_000, interval: 20 });
      const refused = await runStub(runId).checkpoint({ task: "t-gated", attempt: 0, invocation: 0, seq: -1, kind: "memo", key: "memo:x", occurrence: 0 });
      expect(refused).toMatchObject({ ok: false, error: { code: "request.invalid" } });
      // The run's next write sends what its outbox still owes.
      expect(await runDurableObjectAlarm(runStub(runId))).toBe(true);
      gates.add(tag);
      expect((await result(runId)).status).toBe("COMPLETED");
      await vi.waitUntil(() => reports.includes("COMPLETED"), { timeout: 10_000, interval: 20 });
      expect(reports.filter((s) => s === "RUNNING")).toEqual(["RUNNING"]);
    } finally {
      RunIndex.prototype.upsert = original;
      gates.add(tag);
    }
  });
});
