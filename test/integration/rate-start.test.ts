import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { advanceClock } from "../../src/core/clock";
import { flowLimitsName, flowShardOf, type RateNeed } from "../../src/core/flow";
import { RATE_UNIT_MARGIN_MS, RATE_UNIT_PENDING_MS } from "../../src/flow/limits-store";
import { api, result, trigger } from "./helpers";

const TENANT = "default";
const rate = (key: string, holder: string): RateNeed => ({ kind: "rate", key, holder, units: 1, dynamic: null });
const flow = (key: string) => env.FLOW.getByName(flowLimitsName(TENANT, flowShardOf(rate(key, "x"))));
const take = async (key: string, holder: string) =>
  (await flow(key).acquire(TENANT, "tq:test", [{ runId: holder, queuedAt: Date.now(), needs: [rate(key, holder)] }]))[0]!;

/** Runs `fn` with the engine's clock moved on by `ms`, then moves it back. */
async function later<T>(ms: number, fn: () => Promise<T>): Promise<T> {
  advanceClock(ms);
  try {
    return await fn();
  } finally {
    advanceClock(-ms);
  }
}

describe("a rate unit's window runs from its task's start", () => {
  it("counts a unit from admission until `duration` after its start, however late the start", async () => {
    const key = `rs-${crypto.randomUUID()}`;
    await api("PUT", `/api/v1/rate-limits/${key}`, { limit: 1, duration: "second" });
    expect(await take(key, "h1")).toMatchObject({ granted: true });
    // Its dispatch takes 5 s (a loaded machine): the unit is still taken, waiting for its start.
    const startedAt = Date.now() + 5_000;
    await later(5_000, async () => {
      expect(await take(key, "h2")).toMatchObject({ granted: false, reason: expect.stringContaining("exhausted") });
      await flow(key).started(TENANT, [{ key, holder: "h1" }], startedAt);
    });
    // Half a second after h1 started: a second start now would make two in one second.
    await later(5_500, async () => {
      const refused = await take(key, "h2");
      expect(refused).toMatchObject({ granted: false });
      if (!refused.granted) expect(refused.retryAt).toBe(startedAt + 1_000 + RATE_UNIT_MARGIN_MS);
    });
    // Once `duration` (and the start's margin) has passed since h1's start, h2 is admitted.
    await later(5_000 + 1_000 + RATE_UNIT_MARGIN_MS + 10, async () => {
      expect(await take(key, "h2")).toMatchObject({ granted: true });
    });
  });

  it("keeps a unit whose start is never told for a minute past its duration, then gives it back", async () => {
    const key = `rs-${crypto.randomUUID()}`;
    await api("PUT", `/api/v1/rate-limits/${key}`, { limit: 1, duration: "second" });
    expect(await take(key, "p1")).toMatchObject({ granted: true });
    await later(2_000, async () => expect(await take(key, "p2")).toMatchObject({ granted: false }));
    await later(1_000 + RATE_UNIT_PENDING_MS + 10, async () => expect(await take(key, "p2")).toMatchObject({ granted: true }));
  });

  it("is told the start by the run: a rate-limited task's unit carries its start time", async () => {
    await api("PUT", "/api/v1/rate-limits/f-static-api", { limit: 100, duration: "minute" });
    const runId = await trigger("f-rate-static", {});
    const run = await result(runId);
    expect(run.status).toBe("COMPLETED");
    const startedAt = Date.parse(run.tasks[0]!.attempts[0]!.startedAt!);
    const holder = `${runId}/f-rate-static/1`;
    // The notice goes through the run's outbox: wait until it has landed.
    const row = await vi.waitUntil(
      () =>
        runInDurableObject(flow("f-static-api"), (_instance, state) => {
          const found = state.storage.sql.exec<{ at: number; started_at: number | null }>("SELECT at, started_at FROM rate_units WHERE key = ? AND holder = ?", "f-static-api", holder).toArray()[0];
          return found?.started_at ? found : false;
        }),
      { timeout: 10_000 },
    );
    expect(row.started_at).toBe(startedAt);
    expect(row.started_at).toBeGreaterThanOrEqual(row.at);
  });
});
