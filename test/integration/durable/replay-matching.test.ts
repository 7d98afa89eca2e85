import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { deterministicUlid } from "../../../src/core/ids";
import { effects } from "../../worker/workflows";
import { gates, staleOutcomes } from "../../worker/replay-matching";
import { canonical } from "../../../worker-sdk/src/durable-context";
import { api, getRun, push, result, runStub, task, TOKEN, trigger, until } from "../helpers";

/** The key an SDK from before memo identities gave an unnamed memo: its deps' digest (12 bytes of SHA-256). */
async function legacyMemoKey(deps: unknown[] | null): Promise<string> {
  const bytes = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical(deps))));
  return `memo:${[...bytes.slice(0, 12)].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

const RUNS = 50;

describe("replay matches calls with their own records", () => {
  it(`gives each of two parallel memo chains its own results, replayed ${RUNS} times with random pauses`, async () => {
    const ids = await Promise.all(Array.from({ length: RUNS }, () => trigger("rv-parallel-memos", {})));
    const runs = await Promise.all(ids.map((id) => result(id, { timeoutMs: 120_000 })));
    for (const run of runs) {
      expect(run.status, JSON.stringify(run.error)).toBe("COMPLETED");
      // The positive first: the output comes from a replay of the log, not from the first run.
      expect(run.output).toMatchObject({ invocation: 2 });
      expect(run.output).toEqual({ left: ["L1", "L2", "L3"], right: ["R1", "R2", "R3"], invocation: 2 });
      for (const tag of ["L1", "L2", "L3", "R1", "R2", "R3"]) {
        expect(effects.get(`rv-parallel-memos:${tag}:${run.runId}`), `${tag} of ${run.runId}`).toBe(1);
      }
    }
  }, 180_000);

  it("gives each unnamed memo its own result when a replay calls them in the other order", async () => {
    const runId = await trigger("rv-memo-reorder", {});
    const run = await result(runId);
    expect(run.status, JSON.stringify(run.error)).toBe("COMPLETED");
    expect(task(run, "rv-memo-reorder").invocations).toBe(2);
    expect(run.output).toEqual({ a: "one", b: "two" });
    expect(effects.get(`rv-memo-reorder:one:${runId}`)).toBe(1);
    expect(effects.get(`rv-memo-reorder:two:${runId}`)).toBe(1);
    const keys = task(run, "rv-memo-reorder").eventLog!.filter((c) => c.kind === "memo").map((c) => c.key);
    expect(new Set(keys).size).toBe(2);
  });

  it("gives each named memo its own result when a replay calls them in the other order", async () => {
    const runId = await trigger("rv-named-reorder", {});
    const run = await result(runId);
    expect(run.status, JSON.stringify(run.error)).toBe("COMPLETED");
    const t = task(run, "rv-named-reorder");
    expect(t.invocations).toBe(2);
    const out = run.output as { a: string; b: string };
    expect(out.a).toMatch(/^a at /);
    expect(out.b).toMatch(/^b at /);
    expect(t.eventLog!.map((c) => [c.kind, c.key, c.occurrence])).toEqual([
      ["memo", "memo:a", 0],
      ["memo", "memo:b", 0],
      ["sleep", "sleepFor:1000", 0],
    ]);
    expect(t.eventLog![0]!.result).toEqual({ value: out.a });
    expect(effects.get(`rv-named-reorder:a:${runId}`)).toBe(1);
    expect(effects.get(`rv-named-reorder:b:${runId}`)).toBe(1);
  });
});

describe("the engine records a call as the SDK matches it", () => {
  it("refuses a call recorded elsewhere in the log, or another call at a recorded position, and records nothing", async () => {
    const runId = await trigger("rv-held", {});
    await until(runId, (r) => task(r, "rv-held").eventLog?.length === 1);
    const stub = runStub(runId);
    const call = { task: "rv-held", attempt: 1, invocation: 0, kind: "memo" as const, result: { value: 2 } };
    const again = await stub.checkpoint({ ...call, seq: 7, key: "memo:held", occurrence: 0 });
    expect(again).toMatchObject({ ok: false, error: { code: "replay.non_determinism" } });
    expect((again as { error: { message: string } }).error.message).toBe(
      "non-deterministic replay at checkpoint 7: memo(memo:held) is already recorded at checkpoint 0",
    );
    const other = await stub.checkpoint({ ...call, seq: 0, key: "memo:other", occurrence: 0 });
    expect((other as { error: { message: string } }).error.message).toBe(
      "non-deterministic replay at checkpoint 0: the log recorded memo(memo:held) but the task now called memo(memo:other)",
    );
    // The same call again (a retried request) gets its recorded result; the next occurrence is a new call.
    expect(await stub.checkpoint({ ...call, seq: 0, key: "memo:held", occurrence: 0 })).toEqual({ ok: true, value: { status: "resolved", result: { value: 1 } } });
    expect(await stub.checkpoint({ ...call, seq: 1, key: "memo:held", occurrence: 1 })).toEqual({ ok: true, value: { status: "resolved", result: { value: 2 } } });
    expect(task(await getRun(runId), "rv-held").eventLog!.map((c) => [c.seq, c.key, c.occurrence])).toEqual([
      [0, "memo:held", 0],
      [1, "memo:held", 1],
    ]);
    await api("POST", `/api/v1/runs/${runId}/cancel`);
  });
});

describe("a stale invocation acts no more", () => {
  it("throws at a memo called after the run was cancelled, without running its body", async () => {
    const runId = await trigger("rv-stale-memo", {});
    await until(runId, (r) => task(r, "rv-stale-memo").eventLog?.length === 1);
    const cancelled = await api("POST", `/api/v1/runs/${runId}/cancel`);
    expect(cancelled.status).toBe(200);
    // The code has seen the cancel (its abort signal fired) and called the memo.
    await until(runId, () => staleOutcomes.has(runId) || effects.has(`rv-stale-memo:after:${runId}`), 20_000);
    expect(effects.get(`rv-stale-memo:after:${runId}`), "memo body runs").toBeUndefined();
    expect(staleOutcomes.get(runId)).toBe("task.superseded");
    expect((await getRun(runId)).status).toBe("CANCELLED");
  });

  it("throws at a memo called after the execution timeout, without running its body", async () => {
    const runId = await trigger("rv-stale-memo", {});
    await until(runId, () => staleOutcomes.has(runId) || effects.has(`rv-stale-memo:after:${runId}`), 30_000);
    expect(effects.get(`rv-stale-memo:before:${runId}`)).toBe(1);
    expect(effects.get(`rv-stale-memo:after:${runId}`), "memo body runs").toBeUndefined();
    expect(staleOutcomes.get(runId)).toBe("task.superseded");
    const run = await result(runId);
    expect(run.status).toBe("FAILED");
    expect(run.error).toMatchObject({ code: "task.timeout" });
  });

  it("refuses a child trigger from an attempt that is no longer current, and creates nothing", async () => {
    const runId = await trigger("rv-stale-spawn", {});
    // The first attempt failed and its retry is running: the first is no longer current.
    await until(runId, () => effects.get(`rv-stale-spawn:attempt2:${runId}`) === 1, 30_000);
    const during = await getRun(runId);
    expect(task(during, "rv-stale-spawn").attempts.map((a) => [a.attempt, a.status])).toEqual([
      [1, "FAILED"],
      [2, "RUNNING"],
    ]);
    // What a late copy of attempt 1 sends when it spawns (the SDK's parent link), over the engine's RPC.
    const link = (attempt: number) => ({ runId, taskName: "rv-stale-spawn", attempt, invocation: 0, index: 0, startedAt: 0 });
    const stale = await env.SPINDLE.trigger(TOKEN, { workflow: "t-leaf", input: { i: 1 }, parent: link(1) });
    expect(stale).toMatchObject({ ok: false, error: { code: "task.superseded" } });
    expect((stale as { error: { message: string } }).error.message).toContain("attempt 1 invocation 0 of task 'rv-stale-spawn' is no longer current");
    const many = await env.SPINDLE.triggerMany(TOKEN, [
      { workflow: "t-leaf", input: { i: 2 }, parent: link(2) },
      { workflow: "t-leaf", input: { i: 1 }, parent: { ...link(1), index: 1 } },
    ]);
    expect(many).toMatchObject({ ok: false, error: { code: "task.superseded" } });
    // Every request of a refused batch is refused: no run was created, and the parent links none.
    const linked = await getRun(runId);
    expect(linked.children).toEqual([]);
    for (const [attempt, index] of [[1, 0], [1, 1], [2, 0]] as const) {
      const id = await deterministicUlid(0, `default/${runId}/rv-stale-spawn/${attempt}/${index}`);
      expect((await api("GET", `/api/v1/runs/${id}`)).status, `child ${attempt}/${index}`).toBe(404);
    }
    // The current attempt spawns.
    gates.add(`${runId}:2`);
    const run = await result(runId);
    expect(run.status, JSON.stringify(run.error)).toBe("COMPLETED");
    const child = (run.output as { child: string }).child;
    expect(run.children).toEqual([child]);
    expect((await result(child)).status).toBe("COMPLETED");
  });
});

describe("a durable task in flight across the upgrade to memo identities", () => {
  it("replays a log whose memos were recorded in the old form without running them again, and completes", async () => {
    const tag = crypto.randomUUID();
    const runId = await trigger("rv-legacy-log", { tag });
    await until(runId, (r) => task(r, "rv-legacy-log").evicted === true, 20_000);
    // While it waits, its log becomes what the old SDK would have written: unnamed memos keyed by deps.
    const keys = [await legacyMemoKey(null), await legacyMemoKey([10])];
    await runInDurableObject(runStub(runId), (_instance, state) => {
      const memos = state.storage.sql.exec<{ seq: number }>("SELECT seq FROM checkpoints WHERE task = 'rv-legacy-log' AND kind = 'memo' ORDER BY seq").toArray();
      expect(memos.map((m) => m.seq)).toEqual([0, 1]);
      memos.forEach((m, i) => state.storage.sql.exec("UPDATE checkpoints SET key = ?, occurrence = 0 WHERE task = 'rv-legacy-log' AND seq = ?", keys[i]!, m.seq));
    });
    expect(task(await getRun(runId), "rv-legacy-log").eventLog!.map((c) => c.key).slice(0, 2)).toEqual(keys);
    await push("rv:legacy", { tag });
    const run = await result(runId, { timeoutMs: 20_000 });
    expect(run.status, JSON.stringify(run.error)).toBe("COMPLETED");
    expect(task(run, "rv-legacy-log").invocations).toBe(2);
    expect(run.output).toEqual({ a: 10, b: 11, c: 12 });
    expect(effects.get(`rv-legacy-log:a:${runId}`)).toBe(1);
    expect(effects.get(`rv-legacy-log:b:${runId}`)).toBe(1);
    expect(effects.get(`rv-legacy-log:c:${runId}`)).toBe(1);
  });
});
