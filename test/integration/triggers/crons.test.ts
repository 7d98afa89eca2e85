import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { advanceClock, clock, resetClock } from "../../../src/core/clock";
import { Triggers } from "../../../src/triggers/triggers";
import { registration, taskDef, workflowDef } from "../../support/definitions";
import { api, getRun, TOKEN } from "../helpers";

/**
 * Crons are the tenant's `Triggers` object's alarm. The tests move the engine's clock to a tick
 * and fire the alarm with the runtime's own hook, as many times as the fault needs.
 */
const triggers = () => env.TRIGGERS.getByName("triggers:default");
const HOUR_MS = 3_600_000;
const to = (at: number) => advanceClock(at - clock.now());

async function createCron(body: Record<string, unknown>, workflow = "t-echo") {
  const res = await api("POST", `/api/v1/workflows/${workflow}/crons`, body);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { id: string; name: string; expression: string; nextRunAt: string };
}

async function runsOfCron(name: string): Promise<any[]> {
  const res = await api("GET", `/api/v1/runs?metadata=${encodeURIComponent(`cron:${name}`)}&limit=500`);
  return res.body.runs;
}

afterEach(() => resetClock());

describe("crons", () => {
  it("starts one run per tick with { cron, scheduledAt }, even when the alarm fires twice or its record of the tick is lost", async () => {
    const name = `tick-${crypto.randomUUID()}`;
    const cron = await createCron({ name, expression: "0 * * * *", input: { n: 1 }, additionalMetadata: { team: "ops" } });
    expect(cron).toEqual({ id: expect.any(String), name, expression: "0 * * * *", nextRunAt: expect.any(String) });
    const tick = Date.parse(cron.nextRunAt);
    expect(new Date(tick).getUTCMinutes()).toBe(0);
    to(tick + 1_000);
    expect(await runDurableObjectAlarm(triggers())).toBe(true);
    // The same alarm again, and then the tick replayed as if the first firing's write never happened.
    await runDurableObjectAlarm(triggers());
    await runInDurableObject(triggers(), (_i, state) => {
      state.storage.sql.exec("UPDATE crons SET next_at = ? WHERE id = ?", tick, cron.id);
    });
    await runDurableObjectAlarm(triggers());
    await vi.waitUntil(async () => (await runsOfCron(name)).length > 0, { timeout: 10_000, interval: 50 });
    const runs = await runsOfCron(name);
    expect(runs).toHaveLength(1);
    expect(runs[0].additionalMetadata).toEqual({ team: "ops", cron: name, scheduledAt: new Date(tick).toISOString() });
    const run = await getRun(runs[0].runId);
    expect(run.input).toEqual({ n: 1 });
    expect(run.trigger).toEqual({ kind: "cron", cronId: cron.id, name, scheduledAt: new Date(tick).toISOString(), late: false, missedTicks: 0 });
    const after = await api("GET", `/api/v1/crons/${cron.id}`);
    expect(after.body).toMatchObject({ lastRunAt: new Date(tick).toISOString(), nextRunAt: new Date(tick + HOUR_MS).toISOString() });
    expect((await api("DELETE", `/api/v1/crons/${cron.id}`)).status).toBe(200);
  });

  it("runs three missed ticks once, as the latest, and says the run was late", async () => {
    const name = `missed-${crypto.randomUUID()}`;
    const cron = await createCron({ name, expression: "0 * * * *" });
    const first = Date.parse(cron.nextRunAt);
    // The engine was down from before `first` until after the third tick.
    to(first + 2 * HOUR_MS + 5 * 60_000);
    expect(await runDurableObjectAlarm(triggers())).toBe(true);
    await vi.waitUntil(async () => (await runsOfCron(name)).length > 0, { timeout: 10_000, interval: 50 });
    const runs = await runsOfCron(name);
    expect(runs).toHaveLength(1);
    const latest = new Date(first + 2 * HOUR_MS).toISOString();
    expect(runs[0].additionalMetadata).toEqual({ cron: name, scheduledAt: latest, late: "true" });
    expect((await getRun(runs[0].runId)).trigger).toMatchObject({ kind: "cron", scheduledAt: latest, late: true, missedTicks: 2 });
    expect((await api("GET", `/api/v1/crons/${cron.id}`)).body.nextRunAt).toBe(new Date(first + 3 * HOUR_MS).toISOString());
    await api("DELETE", `/api/v1/crons/${cron.id}`);
  });

  it("follows a non-UTC zone across a DST change: 09:00 in Berlin is 08:00Z before and 07:00Z after", async () => {
    to(Date.parse("2026-03-27T12:00:00Z"));
    const name = `berlin-${crypto.randomUUID()}`;
    const cron = await createCron({ name, expression: "0 9 * * *", timezone: "Europe/Berlin" });
    expect(cron.nextRunAt).toBe("2026-03-28T08:00:00.000Z");
    to(Date.parse("2026-03-28T08:00:01Z"));
    await runDurableObjectAlarm(triggers());
    expect((await api("GET", `/api/v1/crons/${cron.id}`)).body).toMatchObject({ timezone: "Europe/Berlin", nextRunAt: "2026-03-29T07:00:00.000Z" });
    to(Date.parse("2026-03-29T07:00:01Z"));
    await runDurableObjectAlarm(triggers());
    await vi.waitUntil(async () => (await runsOfCron(name)).length === 2, { timeout: 10_000, interval: 50 });
    expect((await runsOfCron(name)).map((r) => r.additionalMetadata.scheduledAt).sort()).toEqual(["2026-03-28T08:00:00.000Z", "2026-03-29T07:00:00.000Z"]);
    await api("DELETE", `/api/v1/crons/${cron.id}`);
  });

  it("keeps its crons when the object that holds them is evicted", async () => {
    const name = `evicted-${crypto.randomUUID()}`;
    const cron = await createCron({ name, expression: "*/10 * * * * *" });
    await evictDurableObject(triggers());
    to(Date.parse(cron.nextRunAt) + 500);
    expect(await runDurableObjectAlarm(triggers())).toBe(true);
    await vi.waitUntil(async () => (await runsOfCron(name)).length === 1, { timeout: 10_000, interval: 50 });
    await api("DELETE", `/api/v1/crons/${cron.id}`);
  });

  it("starts nothing after a delete, and lists crons a page at a time", async () => {
    const name = `deleted-${crypto.randomUUID()}`;
    const cron = await createCron({ name, expression: "0 * * * *" });
    const other = await createCron({ name: `${name}-2`, expression: "30 * * * *" });
    const page1 = await api("GET", "/api/v1/crons?workflow=t-echo&limit=1");
    expect(page1.body.crons).toEqual([expect.objectContaining({ id: other.id, workflow: "t-echo", source: "api", timezone: "UTC" })]);
    const page2 = await api("GET", `/api/v1/crons?workflow=t-echo&limit=1&cursor=${page1.body.nextCursor}`);
    expect(page2.body.crons[0].id).toBe(cron.id);
    expect((await api("DELETE", `/api/v1/crons/${cron.id}`)).status).toBe(200);
    expect((await api("DELETE", `/api/v1/crons/${cron.id}`)).status).toBe(404);
    // The other cron's tick shows the alarm ran; the deleted one started nothing.
    to(Date.parse(cron.nextRunAt) + HOUR_MS);
    await runDurableObjectAlarm(triggers());
    await vi.waitUntil(async () => (await runsOfCron(`${name}-2`)).length > 0, { timeout: 10_000, interval: 50 });
    expect(await runsOfCron(name)).toEqual([]);
    await api("DELETE", `/api/v1/crons/${other.id}`);
  });

  it("refuses an expression or zone that does not parse, a taken name and bad input, naming the field, storing nothing", async () => {
    const name = `bad-${crypto.randomUUID()}`;
    const minute = await api("POST", "/api/v1/workflows/t-echo/crons", { name, expression: "61 * * * *" });
    expect(minute.status).toBe(400);
    expect(minute.body.error.fields).toEqual([{ path: "body.expression", message: expect.stringContaining("Invalid value for minute: 61") }]);
    const zone = await api("POST", "/api/v1/workflows/t-echo/crons", { name, expression: "@hourly", timezone: "Mars/Base" });
    expect(zone.status).toBe(400);
    expect(zone.body.error.fields).toEqual([{ path: "body.timezone", message: expect.stringContaining("Mars/Base") }]);
    const input = await api("POST", "/api/v1/workflows/t-typed/crons", { name, expression: "@hourly", input: { Message: 1 } });
    expect(input.status).toBe(400);
    expect(input.body.error.fields).toEqual([expect.objectContaining({ path: "input.Message" })]);
    expect((await api("POST", "/api/v1/workflows/no-such/crons", { name, expression: "@hourly" })).status).toBe(404);
    for (const workflow of ["t-echo", "t-typed"]) {
      expect((await api("GET", `/api/v1/crons?workflow=${workflow}&limit=500`)).body.crons.map((c: any) => c.name)).not.toContain(name);
    }
    const ok = await createCron({ name, expression: "*/5 * * * * *" });
    const taken = await api("POST", "/api/v1/workflows/t-echo/crons", { name, expression: "@daily" });
    expect(taken.status).toBe(409);
    await api("DELETE", `/api/v1/crons/${ok.id}`);
  });
});

describe("crons declared in code", () => {
  const declaring = (id: string, onCrons?: string[]) =>
    registration(`cw-${id}`, [{ ...workflowDef(`cw-${id}`, [taskDef(`cw-${id}`)], "task"), ...(onCrons ? { onCrons, cronInput: { from: "cron" } } : {}) }]);

  it("follow the worker's registration: declared, they tick; removed from the code, they stop", async () => {
    const id = crypto.randomUUID().slice(0, 8);
    expect((await env.SPINDLE.register(TOKEN, declaring(id, ["0 * * * *"]))).ok).toBe(true);
    const listed = await api("GET", `/api/v1/crons?workflow=cw-${id}`);
    expect(listed.body.crons).toEqual([expect.objectContaining({ name: "0 * * * *", source: "declared", input: { from: "cron" }, nextRunAt: expect.any(String) })]);
    expect((await api("DELETE", `/api/v1/crons/${listed.body.crons[0].id}`)).status).toBe(409);
    expect((await env.SPINDLE.register(TOKEN, declaring(id))).ok).toBe(true);
    expect((await api("GET", `/api/v1/crons?workflow=cw-${id}`)).body.crons).toEqual([]);
  });

  it("stop at their next tick when the code no longer declares them, even if the update of the crons was lost", async () => {
    const id = crypto.randomUUID().slice(0, 8);
    expect((await env.SPINDLE.register(TOKEN, declaring(id, ["0 * * * *"]))).ok).toBe(true);
    const [cron] = (await api("GET", `/api/v1/crons?workflow=cw-${id}`)).body.crons;
    const original = Triggers.prototype.syncDeclared;
    let lost = 0;
    Triggers.prototype.syncDeclared = async function () {
      lost++;
    };
    try {
      expect((await env.SPINDLE.register(TOKEN, declaring(id))).ok).toBe(true);
    } finally {
      Triggers.prototype.syncDeclared = original;
    }
    expect(lost).toBe(1);
    expect((await api("GET", `/api/v1/crons?workflow=cw-${id}`)).body.crons).toHaveLength(1);
    to(Date.parse(cron.nextRunAt) + 1_000);
    await runDurableObjectAlarm(triggers());
    expect((await api("GET", `/api/v1/crons?workflow=cw-${id}`)).body.crons).toEqual([]);
    expect((await api("GET", `/api/v1/runs?workflow=cw-${id}`)).body.runs).toEqual([]);
  });

  it("refuses a registration whose cron does not parse, naming it", async () => {
    const reply = await env.SPINDLE.register(TOKEN, declaring(crypto.randomUUID().slice(0, 8), ["0 * * *"]));
    expect(reply.ok).toBe(false);
    if (!reply.ok) expect(reply.error.fields?.[0]?.path).toBe("registration.workflows.0.onCrons.0");
  });
});
