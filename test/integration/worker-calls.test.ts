import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { SignedEngineClient } from "../../worker-sdk/src/serve";
import { api } from "./helpers";

/**
 * A worker served over HTTPS reaches the engine through signed calls (`/worker/v1/calls`): the
 * same operations a bound worker's RPC has, triggers and rate limits included. The requests go
 * through the ENGINE_HTTP binding: real signed HTTP requests to the engine's fetch handler.
 */
const engineFetch: typeof fetch = (input, init) => (env as unknown as { ENGINE_HTTP: Fetcher }).ENGINE_HTTP.fetch(new Request(input, init));
const signed = (token: string) => new SignedEngineClient("http://spindle.test", token, engineFetch);

describe("signed calls from a served worker", () => {
  it("defines and lists rate limits, as the HTTP API then shows", async () => {
    const client = signed("test-token-default");
    const key = `signed-${crypto.randomUUID()}`;
    expect(await client.upsertRateLimit(key, 5, "minute")).toMatchObject({ key, kind: "static", limit: 5, duration: "minute", unitsLeft: 5 });
    expect((await client.listRateLimits()).find((r) => r.key === key)).toMatchObject({ limit: 5 });
    const listed = await api("GET", "/api/v1/rate-limits");
    expect(listed.body.rateLimits.find((r: { key: string }) => r.key === key)).toMatchObject({ limit: 5, duration: "minute" });
  });

  it("creates, reads and deletes a one-time schedule", async () => {
    const client = signed("test-token-default");
    const at = new Date(Date.now() + 3_600_000).toISOString();
    const created = await client.createSchedule("t-echo", { at, input: { m: 1 } });
    expect(created).toMatchObject({ workflow: "t-echo", status: "SCHEDULED", input: { m: 1 } });
    expect(await client.getSchedule(created.scheduleId)).toMatchObject({ scheduleId: created.scheduleId, at });
    expect((await client.listSchedules({ workflow: "t-echo" })).schedules.map((s) => s.scheduleId)).toContain(created.scheduleId);
    await client.deleteSchedule(created.scheduleId);
    expect((await client.listSchedules({ workflow: "t-echo" })).schedules.map((s) => s.scheduleId)).not.toContain(created.scheduleId);
  });

  it("pushes an event and reads it back from the event log", async () => {
    const client = signed("test-token-default");
    const key = `signed:${crypto.randomUUID()}`;
    const pushed = await client.pushEvent({ key, payload: { n: 1 } });
    expect(pushed).toMatchObject({ eventId: expect.any(String), runs: [] });
    expect(await client.getEvent(pushed.eventId)).toMatchObject({ eventId: pushed.eventId, key, payload: { n: 1 } });
  });

  it("refuses a call signed with a token no tenant holds, changing nothing", async () => {
    const key = `signed-stranger-${crypto.randomUUID()}`;
    await expect(signed("test-token-default").listRateLimits()).resolves.toBeInstanceOf(Array);
    await expect(signed("a-token-of-no-tenant-at-all").upsertRateLimit(key, 1, "second")).rejects.toMatchObject({ code: "signature.invalid" });
    const listed = await api("GET", "/api/v1/rate-limits");
    expect(listed.body.rateLimits.map((r: { key: string }) => r.key)).not.toContain(key);
  });
});
