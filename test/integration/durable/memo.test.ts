import { runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { effects } from "../../worker/workflows";
import { result, runStub, task, trigger, until } from "../helpers";

const evicted = (name: string) => (run: any) => task(run, name).evicted === true;

describe("memo checkpoints", () => {
  it("replays two parallel memo chains with each memo's own result", async () => {
    // rv-memo-race: Promise.all([memo(slow "a").then(memo "c"), memo("b").then(memo "d")]), then a sleep.
    // The first invocation records a=0, b=1, then d=2 (b answered first), c=3. The replay gets a and
    // b at once, so c is called before d: each is matched by its identity (the function's source),
    // not by its position, and gets its own record.
    const runId = await trigger("rv-memo-race", {});
    const waiting = await until(runId, evicted("rv-memo-race"));
    expect(task(waiting, "rv-memo-race").eventLog!.map((c) => c.kind)).toEqual(["memo", "memo", "memo", "memo", "sleep"]);
    expect(await runDurableObjectAlarm(runStub(runId))).toBe(true);
    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    expect(task(run, "rv-memo-race").invocations).toBe(2);
    expect(run.output).toEqual({ left: "c", right: "d" });
    for (const tag of ["a", "b", "c", "d"]) expect(effects.get(`rv-memo-race:${tag}:${runId}`), tag).toBe(1);
  });

  it("runs a memo body once even when it is reached after its invocation has ended", async () => {
    // rv-late-memo: Promise.all([sleepFor("1h"), memo(() => 1).then(() => memo(effect))]). The sleep
    // ends the invocation; Suspension.settle() waits for the first memo's recording only, so the
    // executor answers `suspended` and the second memo is called a few microtasks later: its body
    // runs in the ended invocation, its recording never lands (superseded / context gone), and the
    // next invocation runs the body again.
    const runId = await trigger("rv-late-memo", {});
    await until(runId, evicted("rv-late-memo"));
    expect(await runDurableObjectAlarm(runStub(runId))).toBe(true);
    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    expect(task(run, "rv-late-memo").invocations).toBe(2);
    expect(effects.get(`rv-late-memo:${runId}`), "memo body runs").toBe(1);
    expect(run.output).toEqual({ n: 1 });
  });

  it("does not retry a task whose memo threw NonRetryableError", async () => {
    const runId = await trigger("rv-memo-nonretryable", {});
    const run = await result(runId);
    expect(run.status).toBe("FAILED");
    expect(run.error).toMatchObject({ name: "NonRetryableError", retryable: false });
    expect(task(run, "rv-memo-nonretryable").attempts).toHaveLength(1);
    expect(effects.get(`rv-memo-nonretryable:${runId}`), "memo body runs").toBe(1);
  });

  it("lets a retry run a memo whose body failed with a retryable error", async () => {
    // A transient failure inside memo is recorded as the memo's result, so every retry replays the
    // same error without running the body again: `retries` can never help.
    const runId = await trigger("rv-memo-transient", {});
    const run = await result(runId);
    expect(effects.get(`rv-memo-transient:${runId}`), "memo body runs").toBe(2);
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ v: "ok" });
  });
});
