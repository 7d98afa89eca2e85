import { execFileSync } from "node:child_process";
import { describe, expect, inject, it } from "vitest";
import { client } from "./dev-server";

const server = inject("devServer");
const api = client(server);

const task = (run: any, name: string) => run.tasks.find((t: any) => t.name === name);

async function untilEvicted(runId: string, name: string) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const run = (await api.call("GET", `/api/v1/runs/${runId}`)).body;
    if (task(run, name)?.evicted) return run;
    if (Date.now() > deadline) throw new Error(`${name} never started waiting: ${JSON.stringify(run)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Pushes an event with curl, as a user would from a shell. */
function curlPush(body: unknown): string {
  return execFileSync(
    "curl",
    ["-s", "-X", "POST", `${server.url}/api/v1/events`, "-H", `Authorization: Bearer ${server.token}`, "-H", "Content-Type: application/json", "-d", JSON.stringify(body)],
    { encoding: "utf8" },
  );
}

describe("durable examples over HTTP, as `npm start` runs them", () => {
  it("durable-event stays waiting when the expression does not match, and completes when it does", async () => {
    const userId = `user-${Date.now()}`;
    const someoneElse = `${userId}-else`;
    const runId = await api.trigger("durable-event", { userId });
    // A second waiter, for whom the first push is meant: once it has woken, the push has been
    // matched against every waiter, so the first one still waiting is a real negative.
    const otherRunId = await api.trigger("durable-event", { userId: someoneElse });
    const waiting = await untilEvicted(runId, "durable-event");
    await untilEvicted(otherRunId, "durable-event");
    expect(waiting.status).toBe("RUNNING");
    expect(task(waiting, "durable-event").waitingFor[0].conditions[0]).toMatchObject({ kind: "event", eventKey: "user:update" });

    expect(JSON.parse(curlPush({ key: "user:update", payload: { userId: someoneElse, name: "X" } }))).toHaveProperty("eventId");
    expect((await api.result(otherRunId)).output).toEqual({ userId: someoneElse, name: "X" });
    const still = (await api.call("GET", `/api/v1/runs/${runId}`)).body;
    expect(still.status).toBe("RUNNING");
    expect(task(still, "durable-event").evicted).toBe(true);

    curlPush({ key: "user:update", payload: { userId, name: "Ada" } });
    const run = await api.result(runId);
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ userId, name: "Ada" });
  });

  it("durable-sleep sleeps 5 s and returns how long", async () => {
    const run = await api.result(await api.trigger("durable-sleep", {}));
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ sleptMs: 5000 });
    expect(Date.parse(run.finishedAt) - Date.parse(run.startedAt)).toBeGreaterThanOrEqual(5000);
  });

  it("durable-or returns that the approval fired", async () => {
    const runId = await api.trigger("durable-or", {});
    await untilEvicted(runId, "durable-or");
    curlPush({ key: "user:approve", payload: { by: "ops" } });
    const run = await api.result(runId);
    expect(run.output).toEqual({ fired: "event", result: { "user:approve": { by: "ops" } } });
  });

  it("durable-fanout sums its children", async () => {
    const run = await api.result(await api.trigger("durable-fanout", { N: 25 }));
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ sum: 300 });
    expect(run.children).toHaveLength(25);
  });

  it("welcome-email sends the follow-up once the user's scoped onboarding event arrives", async () => {
    const userId = `u-${Date.now()}`;
    const anotherUser = `${userId}-another`;
    const runId = await api.trigger("welcome-email", { userId, email: "ada@example.com" });
    // The other user's run wakes on the other scope's event; only then is this one still waiting a negative.
    const otherRunId = await api.trigger("welcome-email", { userId: anotherUser, email: "bob@example.com" });
    await untilEvicted(runId, "welcome-email");
    await untilEvicted(otherRunId, "welcome-email");
    curlPush({ key: "user:onboarded", payload: { step: "done" }, scope: anotherUser });
    expect((await api.result(otherRunId)).output).toMatchObject({ followUp: "sent", to: "bob@example.com" });
    expect((await api.call("GET", `/api/v1/runs/${runId}`)).body.status).toBe("RUNNING");
    curlPush({ key: "user:onboarded", payload: { step: "done" }, scope: userId });
    const run = await api.result(runId);
    expect(run.output).toMatchObject({ followUp: "sent", to: "ada@example.com" });
  });

  it("dag-conditions takes one branch and continues on the event", async () => {
    const runId = await api.trigger("dag-conditions", {});
    const deadline = Date.now() + 30_000;
    for (;;) {
      const run = (await api.call("GET", `/api/v1/runs/${runId}`)).body;
      if (task(run, "finish").waitingFor?.length) break;
      if (Date.now() > deadline) throw new Error("finish never waited");
      await new Promise((r) => setTimeout(r, 100));
    }
    curlPush({ key: "dag:continue", payload: {} });
    const run = await api.result(runId);
    expect(run.status).toBe("COMPLETED");
    const skipped = ["high", "low"].filter((name) => task(run, name).status === "SKIPPED");
    expect(skipped).toHaveLength(1);
    expect(run.output.finish).toEqual({ took: skipped[0] === "high" ? "low" : "high" });
  });
});
