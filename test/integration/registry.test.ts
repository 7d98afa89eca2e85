import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { registration, taskDef, workflowDef } from "../support/definitions";
import { api, TOKEN } from "./helpers";

describe("registration", () => {
  it("learns every bound worker's workflows without a manual step", async () => {
    const res = await api("GET", "/api/v1/workflows");
    expect(res.status).toBe(200);
    const byName = new Map(res.body.workflows.map((w: any) => [w.name, w]));
    expect(byName.get("t-typed")).toMatchObject({
      kind: "task",
      worker: "test",
      inputSchema: { type: "object", properties: { Message: { type: "string" } }, required: ["Message"] },
    });
    expect(byName.get("t-diamond")).toMatchObject({ kind: "workflow", worker: "test" });
    const diamond: any = byName.get("t-diamond");
    expect(diamond.tasks.map((t: any) => [t.name, t.parents])).toEqual([
      ["a", []],
      ["b", ["a"]],
      ["c", ["a"]],
      ["d", ["b", "c"]],
    ]);
    expect(byName.get("t-flaky")).toMatchObject({
      tasks: [{ retries: 3, backoff: { factor: 2, maxSeconds: 3 }, executionTimeoutMs: 60_000, scheduleTimeoutMs: 300_000 }],
    });
    expect(byName.get("t-raw-hang")).toMatchObject({ worker: "raw" });

    const workers = await api("GET", "/api/v1/workers");
    const test = workers.body.workers.find((w: any) => w.name === "test");
    expect(test).toMatchObject({ slots: 50, durableSlots: 1000, binding: "WORKER_TEST", transport: "binding", status: "active", reason: null });
    expect(workers.body.workers.find((w: any) => w.name === "slotted")).toMatchObject({ slots: 2 });
  });

  it("refuses a worker's differing definition of another worker's workflow, and only that workflow", async () => {
    await api("GET", "/api/v1/workflows");
    const reply = await env.SPINDLE.register(
      TOKEN,
      registration("thief", [workflowDef("t-echo", [taskDef("t-echo")], "task"), workflowDef("t-thief-own", [taskDef("t-thief-own")], "task")]),
    );
    expect(reply).toMatchObject({ ok: true, value: { workflows: ["t-thief-own"], refused: [{ workflow: "t-echo" }] } });
    if (reply.ok) expect(reply.value.refused[0]!.reason).toContain("differs from the one registered by worker 'test'");
    // t-echo still runs on its worker.
    expect((await api("POST", "/api/v1/workflows/t-echo/runs", { input: { x: 1 } })).status).toBe(202);
  });

  it("keeps the declared crons of a workflow a worker is refused for out of the schedule", async () => {
    await api("GET", "/api/v1/workflows");
    const reply = await env.SPINDLE.register(
      TOKEN,
      registration("cron-thief", [
        { ...workflowDef("t-echo", [taskDef("t-echo")], "task"), onCrons: ["17 3 * * *"] },
        { ...workflowDef("t-cron-thief-own", [taskDef("t-cron-thief-own")], "task"), onCrons: ["19 3 * * *"] },
      ]),
    );
    expect(reply).toMatchObject({ ok: true, value: { workflows: ["t-cron-thief-own"], refused: [{ workflow: "t-echo" }] } });
    const own = await api("GET", "/api/v1/crons?workflow=t-cron-thief-own");
    expect(own.body.crons).toEqual([expect.objectContaining({ expression: "19 3 * * *", source: "declared" })]);
    const echo = await api("GET", "/api/v1/crons?workflow=t-echo");
    expect(echo.body.crons.map((c: any) => c.expression)).not.toContain("17 3 * * *");
  });

  it("keeps a shared workflow's declared cron when one of the workers sharing it drops the workflow", async () => {
    const shared = { ...workflowDef("t-cron-shared", [taskDef("t-cron-shared")], "task"), onCrons: ["23 4 * * *"] };
    const own = (name: string) => workflowDef(`t-own-${name}`, [taskDef(`t-own-${name}`)], "task");
    for (const name of ["cron-share-a", "cron-share-b"]) {
      expect(await env.SPINDLE.register(TOKEN, registration(name, [shared, own(name)]))).toMatchObject({ ok: true, value: { refused: [] } });
    }
    const before = await api("GET", "/api/v1/crons?workflow=t-cron-shared");
    expect(before.body.crons).toEqual([expect.objectContaining({ expression: "23 4 * * *", source: "declared" })]);
    // Whichever of the two holds the cron's row drops the workflow: the other still declares it.
    for (const name of ["cron-share-a", "cron-share-b"]) {
      expect(await env.SPINDLE.register(TOKEN, registration(name, [own(name)]))).toMatchObject({ ok: true });
      const after = await api("GET", "/api/v1/crons?workflow=t-cron-shared");
      const stillShared = name === "cron-share-a";
      expect(after.body.crons.map((c: any) => c.expression)).toEqual(stillShared ? ["23 4 * * *"] : []);
    }
  });

  it("refuses an invalid DAG with the reason", async () => {
    const reply = await env.SPINDLE.register(TOKEN, registration("cyclic", [workflowDef("t-cycle", [taskDef("p", ["q"]), taskDef("q", ["p"])])]));
    expect(reply.ok).toBe(false);
    if (!reply.ok) expect(reply.error.message).toContain("dependency cycle: p -> q -> p");
    expect((await api("POST", "/api/v1/workflows/t-cycle/runs", { input: {} })).status).toBe(404);
  });

  it("refuses a malformed registration naming the field", async () => {
    const reply = await env.SPINDLE.register(TOKEN, { ...registration("bad", []), slots: -1 });
    expect(reply.ok).toBe(false);
    if (!reply.ok) expect(reply.error.fields?.[0]?.path).toBe("registration.slots");
  });
});
