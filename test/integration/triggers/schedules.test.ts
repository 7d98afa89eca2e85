import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { advanceClock, clock, resetClock } from "../../../src/core/clock";
import { api, getRun, result } from "../helpers";

/** One-time schedules: the tenant's `Triggers` alarm, fired with the runtime's own hook. */
const triggers = () => env.TRIGGERS.getByName("triggers:default");
const HOUR_MS = 3_600_000;

async function schedule(workflow: string, body: Record<string, unknown>) {
  const res = await api("POST", `/api/v1/workflows/${workflow}/schedules`, body);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { scheduleId: string; at: string };
}

afterEach(() => resetClock());

describe("one-time schedules", () => {
  it("fires once, at its time, and its run links back to it; a deleted one never fires", async () => {
    const at = new Date(clock.now() + HOUR_MS).toISOString();
    const kept = await schedule("t-echo", { at, input: { kept: true }, additionalMetadata: { why: "test" } });
    expect(kept).toEqual({ scheduleId: expect.any(String), at });
    const dropped = await schedule("t-echo", { at, input: { kept: false } });
    expect((await api("DELETE", `/api/v1/schedules/${dropped.scheduleId}`)).status).toBe(200);
    // Not before its time: the alarm run early finds nothing due.
    await runDurableObjectAlarm(triggers());
    expect((await api("GET", `/api/v1/schedules/${kept.scheduleId}`)).body).toMatchObject({ status: "SCHEDULED", runId: null });
    advanceClock(HOUR_MS + 1_000);
    expect(await runDurableObjectAlarm(triggers())).toBe(true);
    await runDurableObjectAlarm(triggers());
    // As if the write that recorded the firing was lost: the alarm fires it again, and finds the same run.
    await runInDurableObject(triggers(), async (_i, state) => {
      state.storage.sql.exec("UPDATE schedules SET status = 'SCHEDULED', fired_at = NULL WHERE id = ?", kept.scheduleId);
      await state.storage.setAlarm(Date.now());
    });
    expect(await runDurableObjectAlarm(triggers())).toBe(true);
    const fired = await api("GET", `/api/v1/schedules/${kept.scheduleId}`);
    expect(fired.body).toMatchObject({ scheduleId: kept.scheduleId, workflow: "t-echo", status: "FIRED", runId: expect.any(String), at });
    const run = await result(fired.body.runId);
    expect(run.output).toMatchObject({ input: { kept: true }, metadata: { why: "test", scheduleId: kept.scheduleId } });
    expect(run.trigger).toEqual({ kind: "schedule", scheduleId: kept.scheduleId, scheduledAt: at });
    await vi.waitUntil(async () => (await api("GET", `/api/v1/runs?metadata=scheduleId:${kept.scheduleId}`)).body.runs.length === 1, { timeout: 10_000, interval: 50 });
    expect((await api("GET", `/api/v1/runs?metadata=scheduleId:${dropped.scheduleId}`)).body.runs).toEqual([]);
    expect((await api("GET", `/api/v1/schedules/${dropped.scheduleId}`)).status).toBe(404);
    // Deleting a schedule that has fired is a conflict.
    const late = await api("DELETE", `/api/v1/schedules/${kept.scheduleId}`);
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe("schedule.conflict");
  });

  it("keeps its schedules when the object that holds them is evicted", async () => {
    const at = new Date(clock.now() + 10 * 60_000).toISOString();
    const s = await schedule("t-echo", { at, input: { evicted: true } });
    await evictDurableObject(triggers());
    advanceClock(10 * 60_000 + 1_000);
    expect(await runDurableObjectAlarm(triggers())).toBe(true);
    const fired = await api("GET", `/api/v1/schedules/${s.scheduleId}`);
    expect(fired.body.status).toBe("FIRED");
    expect((await getRun(fired.body.runId)).input).toEqual({ evicted: true });
  });

  it("checks the input when the schedule is created, and refuses a time in the past or not a date, storing nothing", async () => {
    const future = new Date(clock.now() + HOUR_MS).toISOString();
    const input = await api("POST", "/api/v1/workflows/t-typed/schedules", { at: future, input: { Message: 42 } });
    expect(input.status).toBe(400);
    expect(input.body.error.fields).toEqual([expect.objectContaining({ path: "input.Message" })]);
    const past = await api("POST", "/api/v1/workflows/t-typed/schedules", { at: new Date(clock.now() - 1_000).toISOString(), input: { Message: "hi" } });
    expect(past.status).toBe(400);
    expect(past.body.error.fields).toEqual([expect.objectContaining({ path: "body.at" })]);
    const notADate = await api("POST", "/api/v1/workflows/t-typed/schedules", { at: "next tuesday", input: { Message: "hi" } });
    expect(notADate.status).toBe(400);
    expect(notADate.body.error.fields).toEqual([expect.objectContaining({ path: "body.at" })]);
    expect((await api("POST", "/api/v1/workflows/no-such/schedules", { at: future })).status).toBe(404);
    expect((await api("GET", "/api/v1/schedules?workflow=t-typed&limit=500")).body.schedules).toEqual([]);
  });

  it("lists schedules by workflow and status, a page at a time", async () => {
    const at = new Date(clock.now() + HOUR_MS).toISOString();
    const a = await schedule("t-typed", { at, input: { Message: "a" } });
    const b = await schedule("t-typed", { at, input: { Message: "b" } });
    const page1 = await api("GET", "/api/v1/schedules?workflow=t-typed&status=SCHEDULED&limit=1");
    expect(page1.body.schedules).toEqual([expect.objectContaining({ scheduleId: b.scheduleId, status: "SCHEDULED" })]);
    const page2 = await api("GET", `/api/v1/schedules?workflow=t-typed&status=SCHEDULED&limit=1&cursor=${page1.body.nextCursor}`);
    expect(page2.body.schedules).toEqual([expect.objectContaining({ scheduleId: a.scheduleId })]);
    expect((await api("GET", "/api/v1/schedules?workflow=t-typed&status=FIRED")).body.schedules).toEqual([]);
    expect((await api("GET", "/api/v1/schedules?status=LATER")).status).toBe(400);
    for (const s of [a, b]) expect((await api("DELETE", `/api/v1/schedules/${s.scheduleId}`)).status).toBe(200);
  });
});
