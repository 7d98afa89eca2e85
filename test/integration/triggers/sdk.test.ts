import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { SpindleError } from "@spindle/worker-sdk";
import { advanceClock, resetClock } from "../../../src/core/clock";
import { trFiltered, trGreet } from "../../worker/triggers";
import { echo, spindle, typed } from "../../worker/workflows";

/** The trigger surface of the SDK, over the SPINDLE service binding, as a worker uses it. */
afterEach(() => resetClock());

describe("triggers through the SDK", () => {
  it("pushes an event that starts its workflow, and reads it back from the event log", async () => {
    const pushed = await spindle.events.push("tr:user:created", { name: "Sdk" });
    expect(pushed.runs).toEqual([{ workflow: trGreet.name, runId: expect.any(String) }]);
    expect(await trGreet.ref(pushed.runs[0]!.runId).result()).toEqual({ greeted: "Sdk" });
    const event = await spindle.events.get(pushed.eventId);
    expect(event).toMatchObject({ key: "tr:user:created", payload: { name: "Sdk" }, runs: pushed.runs });
    const bulk = await spindle.events.bulkPush([{ key: "tr:user:created", payload: { name: "Two" } }]);
    expect(bulk[0]!.runs).toHaveLength(1);
  });

  it("creates, lists and deletes filters", async () => {
    const scope = `sdk-${crypto.randomUUID()}`;
    const filter = await spindle.filters.create({ workflow: trFiltered, expression: "input.ok", scope, payload: { via: "sdk" } });
    expect((await spindle.filters.list({ workflow: trFiltered.name, limit: 500 })).filters.map((f) => f.id)).toContain(filter.id);
    expect((await spindle.events.push("tr:filtered", { ok: false }, { scope })).runs).toEqual([]);
    const held = await spindle.events.push("tr:filtered", { ok: true }, { scope });
    expect(await trFiltered.ref(held.runs[0]!.runId).result()).toEqual({ input: { ok: true }, filterPayload: { via: "sdk" } });
    await spindle.filters.delete(filter.id);
    expect((await spindle.events.push("tr:filtered", { ok: false }, { scope })).runs).toHaveLength(1);
  });

  it("creates a cron with wf.cron, lists it with spindle.crons.list and deletes it", async () => {
    const name = `sdk-cron-${crypto.randomUUID()}`;
    const cron = await echo.cron(name, "0 * * * *", { from: "sdk" }, { timezone: "America/New_York", additionalMetadata: { via: "sdk" } });
    expect(cron).toMatchObject({ id: expect.any(String), name, expression: "0 * * * *", timezone: "America/New_York", nextRunAt: expect.any(String) });
    expect((await spindle.crons.list({ workflow: echo.name, limit: 500 })).crons.map((c) => c.id)).toContain(cron.id);
    await spindle.crons.delete(cron.id);
    const err = await spindle.crons.delete(cron.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpindleError);
    expect((err as SpindleError).code).toBe("cron.not_found");
    const bad = await echo.cron(name, "not a cron", {}).catch((e: unknown) => e);
    expect((bad as SpindleError).fields?.[0]?.path).toBe("expression");
  });

  it("schedules with schedule() and delay(), refusing input its schema refuses before sending it", async () => {
    const s = await echo.delay("1h", { later: true });
    expect(s).toMatchObject({ workflow: echo.name, status: "SCHEDULED", input: { later: true } });
    expect((await spindle.schedules.list({ workflow: echo.name, status: "SCHEDULED", limit: 500 })).schedules.map((x) => x.scheduleId)).toContain(s.scheduleId);
    advanceClock(3_600_000 + 1_000);
    await runDurableObjectAlarm(env.TRIGGERS.getByName("triggers:default"));
    await vi.waitUntil(async () => (await spindle.schedules.get(s.scheduleId)).status === "FIRED", { timeout: 10_000, interval: 50 });
    const fired = await spindle.schedules.get(s.scheduleId);
    expect(fired.runId).toEqual(expect.any(String));
    expect((await spindle.runs.get(fired.runId!)).trigger).toMatchObject({ kind: "schedule", scheduleId: s.scheduleId });
    resetClock();
    const bad = await typed.schedule(new Date(Date.now() + 3_600_000), { Message: 1 } as never).catch((e: unknown) => e);
    expect((bad as SpindleError).code).toBe("input.invalid");
    const gone = await typed.schedule(new Date(Date.now() + 3_600_000), { Message: "ok" });
    expect((await spindle.schedules.delete(gone.scheduleId)).scheduleId).toBe(gone.scheduleId);
  });
});
