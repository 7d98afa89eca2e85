import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { OTHER_TOKEN, result, runStub, TOKEN, trigger } from "./helpers";
import { openGate } from "../worker/streams";

/** Opens a live channel the way a browser does, and collects what it hears. */
async function listen(path: string, token = TOKEN) {
  const res = await exports.default.fetch(`http://spindle.test${path}`, { headers: { upgrade: "websocket", authorization: `Bearer ${token}` } });
  expect(res.status).toBe(101);
  const ws = res.webSocket!;
  const messages: any[] = [];
  ws.addEventListener("message", (e) => {
    messages.push(JSON.parse(e.data as string));
  });
  ws.accept();
  return { ws, messages, close: () => ws.close(1000, "done") };
}

const RUN_INDEX_SHARDS = 4;

describe("a run's live channel", () => {
  it("is a WebSocket the run's object holds with the hibernation API, told of each change", async () => {
    const runId = await trigger("t-hold", null);
    const live = await listen(`/api/v1/live/runs/${runId}`);
    await vi.waitUntil(() => live.messages.length > 0, { timeout: 5_000 });
    expect(live.messages[0]).toMatchObject({ type: "hello", runId });
    // Accepted with acceptWebSocket: the object can be evicted while it waits, and the socket stays.
    expect(await runInDurableObject(runStub(runId), (_run, state) => state.getWebSockets().length)).toBe(1);
    openGate(`hold:${runId}`);
    await vi.waitUntil(() => live.messages.some((m) => m.type === "changed" && m.status === "COMPLETED"), { timeout: 10_000 });
    live.close();
    await vi.waitUntil(async () => (await runInDurableObject(runStub(runId), (_run, state) => state.getWebSockets().length)) === 0, { timeout: 5_000 });
  });

  it("catches a page up when it reconnects: the hello says where the run is now", async () => {
    const runId = await trigger("t-hold", null);
    const first = await listen(`/api/v1/live/runs/${runId}`);
    await vi.waitUntil(() => first.messages.length > 0, { timeout: 5_000 });
    expect(first.messages[0].status).not.toBe("COMPLETED");
    first.close();
    // While no one listens, the run ends.
    openGate(`hold:${runId}`);
    await result(runId);
    const again = await listen(`/api/v1/live/runs/${runId}`);
    await vi.waitUntil(() => again.messages.length > 0, { timeout: 5_000 });
    expect(again.messages[0]).toMatchObject({ type: "hello", runId, status: "COMPLETED" });
    again.close();
  });

  it("tells of each stream chunk, with the stream's length", async () => {
    const runId = await trigger("t-stream", { n: 3, pauseAt: 1 });
    const live = await listen(`/api/v1/live/runs/${runId}`);
    openGate(`stream:${runId}`);
    await vi.waitUntil(() => live.messages.some((m) => m.streamLength === 3), { timeout: 10_000 });
    live.close();
  });

  it("is not opened for another tenant's run, nor without a WebSocket upgrade", async () => {
    const runId = await trigger("t-hold", null);
    const res = await exports.default.fetch(`http://spindle.test/api/v1/live/runs/${runId}`, { headers: { upgrade: "websocket", authorization: `Bearer ${OTHER_TOKEN}` } });
    expect(res.status).toBe(404);
    const plain = await exports.default.fetch(`http://spindle.test/api/v1/live/runs/${runId}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(plain.status).toBe(426);
    openGate(`hold:${runId}`);
  });
});

describe("the runs list's live channel", () => {
  it("tells each tenant's pages of their own runs as they are created and change status", async () => {
    const mine = await Promise.all(Array.from({ length: RUN_INDEX_SHARDS }, (_, shard) => listen(`/api/v1/live/index/${shard}`)));
    const theirs = await Promise.all(Array.from({ length: RUN_INDEX_SHARDS }, (_, shard) => listen(`/api/v1/live/index/${shard}`, OTHER_TOKEN)));
    const heard = (listeners: typeof mine, runId: string, status: string) =>
      listeners.some((l) => l.messages.some((m) => m.type === "runs" && m.runs.some((r: any) => r.runId === runId && r.status === status)));
    const runId = await trigger("t-echo", { n: 1 });
    // The other tenant has no workflows: its index hears of a run the way a run reports itself.
    const otherRunId = "01JH8X7Q2K3M4N5P6Q7R8S9T0W";
    await env.RUN_INDEX.getByName("index:other:0").upsert({
      runId: otherRunId,
      workflow: "elsewhere",
      status: "COMPLETED",
      metadata: {},
      createdAt: Date.now(),
      finishedAt: Date.now(),
      parent: null,
      version: 1,
    });
    await result(runId);
    await vi.waitUntil(() => heard(mine, runId, "COMPLETED"), { timeout: 10_000 });
    expect(mine.some((l) => l.messages.some((m) => m.type === "runs" && m.runs.some((r: any) => r.runId === runId && r.workflow === "t-echo")))).toBe(true);
    await vi.waitUntil(() => heard(theirs, otherRunId, "COMPLETED"), { timeout: 10_000 });
    // Each tenant heard its own run: neither heard the other's.
    expect(theirs.some((l) => l.messages.some((m) => m.type === "runs" && m.runs.some((r: any) => r.runId === runId)))).toBe(false);
    expect(mine.some((l) => l.messages.some((m) => m.type === "runs" && m.runs.some((r: any) => r.runId === otherRunId)))).toBe(false);
    for (const l of [...mine, ...theirs]) l.close();
  });

  it("refuses a shard that does not exist", async () => {
    const res = await exports.default.fetch(`http://spindle.test/api/v1/live/index/${RUN_INDEX_SHARDS}`, { headers: { upgrade: "websocket", authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(400);
  });
});
