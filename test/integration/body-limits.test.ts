import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { SpindleError } from "@spindle/worker-sdk";
import { DEFAULT_MAX_BODY_BYTES } from "../../src/api/body-limits";
import { api, TOKEN } from "./helpers";
import { spindle } from "../worker/workflows";

/** Bad JSON of any depth or size gets a 4xx naming the problem, and creates nothing. */
const nested = (levels: number) => `${'{"a":'.repeat(levels)}1${"}".repeat(levels)}`;
const busEvents = (key: string) =>
  runInDurableObject(env.EVENTS.getByName(`events:default:${key}`), (_i, state) => {
    const exists = state.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'events'").toArray().length > 0;
    return exists ? Number(state.storage.sql.exec("SELECT COUNT(*) AS n FROM events").one().n) : 0;
  });

async function post(path: string, body: BodyInit, headers: Record<string, string> = {}) {
  const res = await exports.default.fetch(`http://spindle.test${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json", ...headers },
    body,
  });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) };
}

describe("request bodies at the edge", () => {
  it("answers JSON nested 100,000 levels deep with 400 on every route, and records nothing", async () => {
    const key = `limits:${crypto.randomUUID()}`;
    const deep = nested(100_000);
    const event = await post("/api/v1/events", `{"key":"${key}","payload":${deep}}`);
    expect(event.status).toBe(400);
    expect(event.body.error).toMatchObject({ code: "request.too_deep", message: expect.stringMatching(/deeper than 128 levels/) });
    const tag = crypto.randomUUID();
    const trigger = await post("/api/v1/workflows/t-echo/runs", `{"input":${deep},"additionalMetadata":{"tag":"${tag}"}}`);
    expect(trigger.status).toBe(400);
    expect(trigger.body.error.code).toBe("request.too_deep");
    // What the same requests record when they are fine: one event, one run.
    expect((await post("/api/v1/events", JSON.stringify({ key, payload: nested(100) }))).status).toBe(200);
    expect(await busEvents(key)).toBe(1);
    expect((await post("/api/v1/workflows/t-echo/runs", JSON.stringify({ input: { n: 1 }, additionalMetadata: { tag } }))).status).toBe(202);
    await vi.waitUntil(async () => (await api("GET", `/api/v1/runs?metadata=tag:${tag}`)).body.runs.length > 0, { timeout: 10_000, interval: 50 });
    expect((await api("GET", `/api/v1/runs?metadata=tag:${tag}`)).body.runs).toHaveLength(1);
  });

  it("answers a 40 MiB body with 413 from its Content-Length, and one streamed without a length while it streams", async () => {
    const key = `limits:${crypto.randomUUID()}`;
    const big = JSON.stringify({ key, payload: "x".repeat(40 * 1024 * 1024) });
    const declared = await post("/api/v1/events", big);
    expect(declared.status).toBe(413);
    expect(declared.body.error).toMatchObject({ code: "request.too_large", message: expect.stringContaining(`${DEFAULT_MAX_BODY_BYTES} bytes`) });

    let sent = 0;
    const chunk = new TextEncoder().encode("x".repeat(1024 * 1024));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(`{"key":"${key}","payload":"`));
      },
      pull(controller) {
        // 40 MiB in all, unless the reader stops early.
        if (sent >= 40) return controller.close();
        sent++;
        controller.enqueue(chunk);
      },
    });
    const streamed = await post("/api/v1/events", stream);
    expect(streamed.status).toBe(413);
    expect(streamed.body.error.code).toBe("request.too_large");
    expect(sent).toBeLessThan(40);
    expect((await post("/api/v1/events", JSON.stringify({ key, payload: "small" }))).status).toBe(200);
    expect(await busEvents(key)).toBe(1);
  });

  it("refuses a too-deep value over RPC with a typed error, in the SDK and in the engine", async () => {
    const key = `limits:${crypto.randomUUID()}`;
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = { a: deep };
    const err = await spindle.events.push(key, deep).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpindleError);
    expect((err as SpindleError).code).toBe("request.too_deep");
    // Past the SDK, the engine checks too (another client may not).
    let tooDeep: unknown = 1;
    for (let i = 0; i < 200; i++) tooDeep = [tooDeep];
    const reply = await env.SPINDLE.pushEvent(TOKEN, { key, payload: tooDeep });
    expect(reply).toMatchObject({ ok: false, error: { code: "request.too_deep" } });
    const large = await env.SPINDLE.pushEvent(TOKEN, { key, payload: "x".repeat(DEFAULT_MAX_BODY_BYTES + 1) });
    expect(large).toMatchObject({ ok: false, error: { code: "request.too_large" } });
    expect((await spindle.events.push(key, { fine: true })).eventId).toMatch(/^[0-9A-Z]{26}$/);
    expect(await busEvents(key)).toBe(1);
  });
});
