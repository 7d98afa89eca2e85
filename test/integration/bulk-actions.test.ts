import { describe, expect, it, vi } from "vitest";
import { api, getRun, OTHER_TOKEN, result, trigger } from "./helpers";
import { openGate, replayable } from "../worker/streams";

const listed = async (query: string) => (await api("GET", `/api/v1/runs?${query}`)).body.runs.map((r: any) => r.runId) as string[];

describe("bulk cancel and replay", () => {
  it("cancels every run a filter matches that is still going, and answers how many", async () => {
    const batch = crypto.randomUUID();
    const going = await Promise.all([1, 2, 3].map(() => trigger("t-hold", null, { additionalMetadata: { batch } })));
    const ended = await trigger("t-echo", {}, { additionalMetadata: { batch } });
    await result(ended);
    const untouched = await trigger("t-hold", null, { additionalMetadata: { batch: "another" } });
    // The filter reads the runs index, which hears of new runs through each run's outbox.
    await vi.waitUntil(async () => (await listed(`metadata=batch:${batch}`)).length === 4, { timeout: 10_000 });
    const res = await api("POST", "/api/v1/runs/cancel", { filter: { metadata: { batch } } });
    expect(res.status).toBe(200);
    expect(res.body.affected).toBe(3);
    expect([...res.body.runIds].sort()).toEqual([...going].sort());
    for (const id of going) expect((await getRun(id)).status).toBe("CANCELLED");
    expect((await getRun(ended)).status).toBe("COMPLETED");
    expect((await getRun(untouched)).status).not.toBe("CANCELLED");
    openGate(`hold:${untouched}`);
  });

  it("cancels listed runs; ended, unknown and other tenants' runs count for nothing", async () => {
    const a = await trigger("t-hold", null);
    const done = await trigger("t-echo", {});
    await result(done);
    const unknown = "01JH8X7Q2K3M4N5P6Q7R8S9T0V";
    const theirs = await api("POST", "/api/v1/runs/cancel", { runIds: [a] }, { token: OTHER_TOKEN });
    expect(theirs.body).toEqual({ affected: 0, runIds: [] });
    expect((await getRun(a)).status).not.toBe("CANCELLED");
    const res = await api("POST", "/api/v1/runs/cancel", { runIds: [a, done, unknown, a] });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ affected: 1, runIds: [a] });
    expect((await getRun(a)).status).toBe("CANCELLED");
  });

  it("replays the failed and cancelled runs of a filter by workflow and status", async () => {
    const failed = await Promise.all([1, 2].map(() => trigger("t-fail-once", null)));
    for (const id of failed) expect((await result(id)).status).toBe("FAILED");
    await vi.waitUntil(async () => (await listed("workflow=t-fail-once&status=FAILED&limit=500")).filter((id) => failed.includes(id)).length === 2, { timeout: 10_000 });
    for (const id of failed) replayable.add(id);
    const res = await api("POST", "/api/v1/runs/replay", { filter: { workflow: "t-fail-once", status: "FAILED" } });
    expect(res.status).toBe(200);
    expect(res.body.affected).toBeGreaterThanOrEqual(2);
    expect(res.body.runIds).toEqual(expect.arrayContaining(failed));
    for (const id of failed) expect((await result(id)).status).toBe("COMPLETED");
  });

  it("replays listed runs; a completed run has nothing to replay", async () => {
    const failed = await trigger("t-fail-once", null);
    const completed = await trigger("t-echo", {});
    await result(failed);
    await result(completed);
    replayable.add(failed);
    const res = await api("POST", "/api/v1/runs/replay", { runIds: [failed, completed] });
    expect(res.body).toEqual({ affected: 1, runIds: [failed] });
    expect((await result(failed)).status).toBe("COMPLETED");
  });

  it("refuses a body without a selection, or with both, naming the field and changing nothing", async () => {
    const a = await trigger("t-hold", null);
    for (const body of [{}, { runIds: [a], filter: {} }]) {
      const res = await api("POST", "/api/v1/runs/cancel", body);
      expect(res.status).toBe(400);
      expect(res.body.error.fields[0].path).toBe("body.runIds");
    }
    const badId = await api("POST", "/api/v1/runs/cancel", { runIds: [a, "nope"] });
    expect(badId.status).toBe(400);
    expect(badId.body.error.fields).toEqual([{ path: "body.runIds.1", message: "not a run id" }]);
    const badStatus = await api("POST", "/api/v1/runs/replay", { filter: { status: "DONE" } });
    expect(badStatus.status).toBe(400);
    expect(badStatus.body.error.fields[0].path).toMatch(/^body\.filter\.status/);
    const badField = await api("POST", "/api/v1/runs/cancel", { filter: { colour: "red" } });
    expect(badField.status).toBe(400);
    expect((await getRun(a)).status).not.toBe("CANCELLED");
    openGate(`hold:${a}`);
    expect((await result(a)).status).toBe("COMPLETED");
  });
});
