import { describe, expect, it, vi } from "vitest";
import { effects } from "../worker/workflows";
import { released } from "../worker/limits";
import { api, getRun, result, runStub, task, trigger, until } from "./helpers";

const MiB = 1024 * 1024;

/**
 * Size limits. The suite runs under a guard that refuses any SQLite value over 2 MB (setup.ts), as
 * Cloudflare does: what grows with the number of children or tasks must be many rows, not one.
 */
describe("size limits", () => {
  it("completes a durable fan-out of 1,000 children returning 4 KB each (4 MB of results)", async () => {
    const runId = await trigger("l-fanout-4k", { n: 1000 });
    const run = await result(runId, { timeoutMs: 240_000 });
    expect(run.status, JSON.stringify(run.error)).toBe("COMPLETED");
    expect(run.output).toEqual({ n: 1000, inOrder: true, bytes: 1000 * 4096 });
    expect(run.children).toHaveLength(1000);
  }, 300_000);

  it("completes a DAG with 2.7 MB of outputs, and its output has every task's", async () => {
    const runId = await trigger("l-big-dag", {});
    const run = await result(runId, { timeoutMs: 60_000 });
    expect(run.status, JSON.stringify(run.error)).toBe("COMPLETED");
    const output = run.output as Record<string, { name: string; pad: string }>;
    expect(Object.keys(output).sort()).toEqual(["one", "three", "two"]);
    for (const name of ["one", "two", "three"]) {
      expect(output[name]!.name).toBe(name);
      expect(output[name]!.pad).toHaveLength(900_000);
    }
  });

  it("refuses a 1.1 MiB input with 413 naming `input`, and creates no run", async () => {
    const probe = crypto.randomUUID();
    const res = await api("POST", "/api/v1/workflows/t-echo/runs", { input: { pad: "i".repeat(1.1 * MiB) }, additionalMetadata: { probe } });
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe("payload.too_large");
    expect(res.body.error.fields).toEqual([{ path: "input", message: expect.stringContaining(`the limit is ${MiB} bytes`) }]);
    // A small run with the same metadata shows up in the list; the refused one never does.
    const ok = await trigger("t-echo", { small: true }, { additionalMetadata: { probe } });
    await vi.waitUntil(async () => (await api("GET", `/api/v1/runs?metadata=probe:${probe}`)).body.runs.length > 0, { timeout: 10_000, interval: 50 });
    const list = await api("GET", `/api/v1/runs?metadata=probe:${probe}`);
    expect(list.body.runs.map((r: { runId: string }) => r.runId)).toEqual([ok]);
  });

  it("refuses an event payload, and metadata, over their limits with 413 naming the field", async () => {
    const big = await api("POST", "/api/v1/events", { key: "l:big", payload: { pad: "p".repeat(1.1 * MiB) } });
    expect(big.status).toBe(413);
    expect(big.body.error.fields.map((f: { path: string }) => f.path)).toEqual(["payload"]);
    const meta = await api("POST", "/api/v1/events", { key: "l:big", payload: {}, additionalMetadata: { m: "x".repeat(70_000) } });
    expect(meta.status).toBe(413);
    expect(meta.body.error.fields.map((f: { path: string }) => f.path)).toEqual(["additionalMetadata"]);
    const trig = await api("POST", "/api/v1/workflows/t-echo/runs", { input: {}, additionalMetadata: { m: "x".repeat(70_000) } });
    expect(trig.status).toBe(413);
    expect(trig.body.error.fields.map((f: { path: string }) => f.path)).toEqual(["additionalMetadata"]);
    const many = await api("POST", "/api/v1/events", { key: "l:ok", payload: { pad: "p".repeat(1000) } });
    expect(many.status).toBe(200);
  });

  it("fails a task whose output is over the limit at once, without using its retries (SDK check)", async () => {
    const runId = await trigger("l-big-output", {});
    const run = await result(runId);
    expect(run.status).toBe("FAILED");
    const t = task(run, "l-big-output");
    expect(t.error).toMatchObject({ code: "payload.too_large", name: "PayloadTooLargeError", retryable: false });
    expect(t.error!.message).toMatch(/output is \d+ bytes; the limit is 1048576 bytes/);
    expect(t.attempts).toHaveLength(1);
    expect(effects.get(`l-big-output:${runId}`)).toBe(1);
  });

  it("fails a task whose worker reports an over-limit output, without storing it or retrying (engine check)", async () => {
    const runId = await trigger("l-held", {});
    const running = await until(runId, (r) => task(r, "l-held").status === "RUNNING" && effects.get(`l-held:${runId}`) === 1);
    const t = task(running, "l-held");
    // A worker without the SDK's check answers with 1.1 MiB.
    const reply = await runStub(runId).completeTask(
      { task: "l-held", attempt: t.attempt, invocation: 0 },
      { status: "completed", output: { pad: "o".repeat(1.1 * MiB) }, logs: [] },
    );
    expect(reply).toEqual({ ok: true, value: { accepted: true } });
    const run = await result(runId);
    expect(run.status).toBe("FAILED");
    expect(task(run, "l-held").error).toMatchObject({ code: "payload.too_large", retryable: false });
    expect(task(run, "l-held").error!.message).toContain("task 'l-held' returned an output of");
    expect(task(run, "l-held").attempts).toHaveLength(1);
    released.add(runId);
    expect(effects.get(`l-held:${runId}`)).toBe(1);
  });

  it("throws the typed PayloadTooLargeError from a memo whose result is over the limit", async () => {
    const runId = await trigger("l-big-memo", {});
    const run = await result(runId);
    expect(run.status, JSON.stringify(run.error)).toBe("COMPLETED");
    expect(run.output).toMatchObject({ threw: true, typed: true, code: "payload.too_large" });
    expect((run.output as { message: string }).message).toMatch(/memo result is \d+ bytes; the limit is 1048576 bytes/);
    const view = await getRun(runId);
    expect(task(view, "l-big-memo").eventLog![0]).toMatchObject({ kind: "memo", result: { error: { code: "payload.too_large" } } });
  });

  it("fails a task whose parents' outputs would not fit in its assignment, before it starts", async () => {
    const runId = await trigger("l-wide-dag", {});
    const run = await result(runId, { timeoutMs: 120_000 });
    expect(run.status).toBe("FAILED");
    for (let i = 0; i < 25; i++) expect(task(run, `p${i}`).status).toBe("COMPLETED");
    const gather = task(run, "gather");
    expect(gather.status).toBe("FAILED");
    expect(gather.error).toMatchObject({ code: "payload.too_large" });
    expect(gather.error!.message).toMatch(/the outputs task 'gather' would receive total \d+ bytes; one assignment carries at most 25165824 bytes/);
    expect(run.error).toMatchObject({ code: "payload.too_large", task: "gather" });
    expect(gather.attempts).toHaveLength(0);
    expect(effects.get(`l-wide-dag:gather:${runId}`)).toBeUndefined();
  }, 180_000);

  it("refuses a memo that would make a durable task's event log too large for its assignment, without a retry", async () => {
    const runId = await trigger("l-memo-hoarder", {});
    const run = await result(runId, { timeoutMs: 120_000 });
    expect(run.status, JSON.stringify(run.error)).toBe("COMPLETED");
    const out = run.output as { kept: number; refused: { code: string; message: string } | null };
    // 24 MiB holds 25 results of ~1 MB: the 26th is refused.
    expect(out.kept).toBe(25);
    expect(out.refused).toMatchObject({ code: "payload.too_large" });
    expect(out.refused!.message).toMatch(/recording checkpoint 25 would make the event log of task 'l-memo-hoarder' \d+ bytes/);
    expect(effects.get(`l-memo-hoarder:${runId}`)).toBe(1);
  }, 180_000);
});
