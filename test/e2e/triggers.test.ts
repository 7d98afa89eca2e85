import { createHmac } from "node:crypto";
import { describe, expect, inject, it } from "vitest";
import { client } from "./dev-server";

const server = inject("devServer");
const api = client(server);

async function poll<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: gave up; last ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const runsOfCron = async (name: string): Promise<any[]> =>
  (await api.call("GET", `/api/v1/runs?workflow=simple&metadata=${encodeURIComponent(`cron:${name}`)}&limit=500`)).body.runs;

describe("triggers over HTTP, as `npm start` runs them", () => {
  it("pushing user:created starts on-event, whose run completes with { greeted }", async () => {
    const name = `Ada-${Date.now()}`;
    const pushed = await api.call("POST", "/api/v1/events", { key: "user:created", payload: { name } });
    expect(pushed.status).toBe(200);
    expect(pushed.body).toEqual({ eventId: expect.any(String), runs: [{ workflow: "on-event", runId: expect.any(String) }] });
    const run = await api.result(pushed.body.runs[0].runId);
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ greeted: name });
    expect(run.additionalMetadata).toMatchObject({ eventId: pushed.body.eventId, eventKey: "user:created" });
  });

  it("order-audit audits any order: event and says which key it came from", async () => {
    const pushed = await api.call("POST", "/api/v1/events", { key: "order:shipped", payload: { orderId: "o-1" } });
    const audit = pushed.body.runs.find((r: any) => r.workflow === "order-audit");
    expect((await api.result(audit.runId)).output).toEqual({ audited: true, eventKey: "order:shipped" });
    const logged = await api.call("GET", `/api/v1/events/${pushed.body.eventId}`);
    expect(logged.body).toMatchObject({ key: "order:shipped", payload: { orderId: "o-1" }, runs: pushed.body.runs });
  });

  it("on-cron's declared cron is listed with its next tick", async () => {
    const crons = await poll(
      "on-cron's cron",
      async () => (await api.call("GET", "/api/v1/crons?workflow=on-cron")).body.crons,
      (c: any[]) => c.length === 1,
    );
    expect(crons[0]).toMatchObject({ workflow: "on-cron", expression: "*/5 * * * *", source: "declared", nextRunAt: expect.any(String) });
    expect(new Date(crons[0].nextRunAt).getUTCMinutes() % 5).toBe(0);
  });

  it("a cron of */2 * * * * * on simple starts a run about every 2 s, and none after it is deleted", async () => {
    const name = `every-2s-${Date.now()}`;
    const created = await api.call("POST", "/api/v1/workflows/simple/crons", { name, expression: "*/2 * * * * *", input: { Message: "Tick" } });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({ id: expect.any(String), name, expression: "*/2 * * * * *", nextRunAt: expect.any(String) });
    const runs = await poll(`three runs of ${name}`, () => runsOfCron(name), (r) => r.length >= 3, 30_000);
    const ticks = runs.map((r) => Date.parse(r.additionalMetadata.scheduledAt)).sort((a, b) => a - b);
    // Consecutive ticks, 2 s apart, each run created at (or just after) its tick.
    for (let i = 1; i < ticks.length; i++) expect(ticks[i]! - ticks[i - 1]!).toBe(2_000);
    for (const r of runs) expect(Date.parse(r.createdAt)).toBeGreaterThanOrEqual(Date.parse(r.additionalMetadata.scheduledAt));
    const done = await api.result(runs[0].runId);
    expect(done.output).toEqual({ TransformedMessage: "tick" });

    const deleted = await api.call("DELETE", `/api/v1/crons/${created.body.id}`);
    expect(deleted.status).toBe(200);
    const deletedAt = Date.now();
    const countAtDelete = (await runsOfCron(name)).length;
    // A second cron ticking twice shows time (and the alarm) went on; the deleted one started nothing more.
    const control = await api.call("POST", "/api/v1/workflows/simple/crons", { name: `${name}-control`, expression: "*/2 * * * * *", input: { Message: "Control" } });
    await poll("two control ticks", () => runsOfCron(`${name}-control`), (r) => r.length >= 2, 30_000);
    await api.call("DELETE", `/api/v1/crons/${control.body.id}`);
    const after = await runsOfCron(name);
    expect(after).toHaveLength(countAtDelete);
    expect(after.every((r) => Date.parse(r.createdAt) <= deletedAt)).toBe(true);
  });

  it("a schedule 3 s ahead starts its run after 3 s and not before", async () => {
    const at = new Date(Date.now() + 3_000).toISOString();
    const created = await api.call("POST", "/api/v1/workflows/simple/schedules", { at, input: { Message: "Later" } });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({ scheduleId: expect.any(String), at });
    const listed = await api.call("GET", `/api/v1/schedules?workflow=simple&status=SCHEDULED`);
    expect(listed.body.schedules.map((s: any) => s.scheduleId)).toContain(created.body.scheduleId);
    const fired = await poll(
      "the schedule to fire",
      async () => (await api.call("GET", `/api/v1/schedules/${created.body.scheduleId}`)).body,
      (s: any) => s.status === "FIRED",
      30_000,
    );
    const run = await api.result(fired.runId);
    expect(Date.parse(run.createdAt)).toBeGreaterThanOrEqual(Date.parse(at));
    expect(run.output).toEqual({ TransformedMessage: "later" });
    expect(run.trigger).toEqual({ kind: "schedule", scheduleId: created.body.scheduleId, scheduledAt: at });
    expect((await api.call("DELETE", `/api/v1/schedules/${created.body.scheduleId}`)).status).toBe(409);
  });

  it("a signed webhook delivery starts on-event", async () => {
    const hook = `github-${Date.now()}`;
    const secret = "e2e-webhook-secret";
    const put = await api.call("PUT", `/api/v1/webhooks/${hook}`, {
      eventKey: "user:created",
      secret,
      signature: { header: "X-Hub-Signature-256", algorithm: "hmac-sha256", encoding: "hex", prefix: "sha256=" },
    });
    expect(put.status).toBe(200);
    const body = JSON.stringify({ name: "Hubot" });
    const deliver = (signature: string) =>
      fetch(`${server.url}${put.body.url}`, { method: "POST", headers: { "content-type": "application/json", "X-Hub-Signature-256": signature }, body });
    const bad = await deliver(`sha256=${createHmac("sha256", "wrong").update(body).digest("hex")}`);
    expect(bad.status).toBe(401);
    const res = await deliver(`sha256=${createHmac("sha256", secret).update(body).digest("hex")}`);
    expect(res.status).toBe(200);
    const pushed = (await res.json()) as any;
    expect(pushed.runs).toEqual([{ workflow: "on-event", runId: expect.any(String) }]);
    expect((await api.result(pushed.runs[0].runId)).output).toEqual({ greeted: "Hubot" });
  });
});
