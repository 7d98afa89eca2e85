import { describe, expect, it } from "vitest";
import { FlowLimits } from "../../src/flow/flow-limits";
import { flowLog } from "../worker/flow";
import { maxOverlap } from "../support/overlap";
import { result, trigger } from "./helpers";

const of = (workflow: string, ids: string[]) => {
  const wanted = new Set(ids);
  return flowLog.filter((e) => e.workflow === workflow && wanted.has(e.runId));
};

describe("flow control under load", () => {
  it("500 round-robin runs over 10 keys: never more than 2 of a key at once, every key started in its first turn, all complete", async () => {
    const keys = Array.from({ length: 10 }, (_, i) => `load-rr-${i}`);
    // Queued key by key (AAAA…BBBB…), so a first-come-first-served queue would starve the last keys.
    const inputs = keys.flatMap((group) => Array.from({ length: 50 }, () => ({ group, ms: 60 })));
    const ids: string[] = [];
    for (let i = 0; i < inputs.length; i += 100) ids.push(...(await Promise.all(inputs.slice(i, i + 100).map((input) => trigger("f-rr", input)))));
    const runs = await Promise.all(ids.map((id) => result(id, { timeoutMs: 120_000 })));
    expect(runs.filter((r) => r.status !== "COMPLETED")).toEqual([]);
    const entries = of("f-rr", ids);
    expect(entries).toHaveLength(500);
    const overlap = maxOverlap(entries);
    for (const key of keys) expect(overlap.get(key), key).toBe(2);
    // Each key's first start comes before any key's third (its first turn is the first round of turns).
    const byKey = new Map(keys.map((k) => [k, entries.filter((e) => e.keys[0] === k).map((e) => e.startedAt).sort((a, b) => a - b)]));
    const firstThird = Math.min(...[...byKey.values()].map((starts) => starts[2]!));
    for (const [key, starts] of byKey) expect(starts[0], key).toBeLessThanOrEqual(firstThird);
  }, 180_000);

  it("300 runs under a concurrency key and a rate limit at once: no deadlock, neither limit exceeded", async () => {
    const groups = Array.from({ length: 10 }, (_, i) => `load-both-${i}`);
    const ids: string[] = [];
    for (let i = 0; i < 300; i += 100) {
      ids.push(...(await Promise.all(Array.from({ length: 100 }, (_, j) => trigger("f-both", { group: groups[(i + j) % 10], ms: 50 })))));
    }
    const runs = await Promise.all(ids.map((id) => result(id, { timeoutMs: 120_000 })));
    expect(runs.filter((r) => r.status !== "COMPLETED")).toEqual([]);
    const entries = of("f-both", ids);
    const overlap = maxOverlap(entries);
    for (const g of groups) expect(overlap.get(g), g).toBeLessThanOrEqual(3);
    // 40 per second: no two-second window holds more than 80 starts.
    const starts = entries.map((e) => e.startedAt).sort((a, b) => a - b);
    for (let i = 80; i < starts.length; i++) expect(starts[i]! - starts[i - 80]!).toBeGreaterThanOrEqual(2000);
  }, 180_000);

  it("loses no run and over-admits nothing when the objects holding the limits are reset mid-load", async () => {
    type Internals = { ctx: DurableObjectState; acquire: FlowLimits["acquire"] };
    const proto = FlowLimits.prototype as unknown as Internals;
    const original = proto.acquire;
    let calls = 0;
    let resets = 0;
    proto.acquire = async function (this: Internals, ...args: Parameters<FlowLimits["acquire"]>) {
      calls++;
      if (calls % 7 === 3) {
        // Reset before anything is taken.
        resets++;
        this.ctx.abort("injected: flow object reset before admission");
      }
      const results = await original.apply(this, args);
      if (calls % 7 === 5) {
        // Reset after the grants are on disk, before the queue hears of them: a lost reply.
        resets++;
        await this.ctx.storage.sync();
        this.ctx.abort("injected: flow object reset after admission");
      }
      return results;
    };
    try {
      const keys = Array.from({ length: 5 }, (_, i) => `evict-${i}`);
      const ids = await Promise.all(Array.from({ length: 150 }, (_, i) => trigger("f-rr", { group: keys[i % 5], ms: 40 })));
      const runs = await Promise.all(ids.map((id) => result(id, { timeoutMs: 120_000 })));
      expect(resets).toBeGreaterThan(5);
      expect(runs.filter((r) => r.status !== "COMPLETED")).toEqual([]);
      const entries = of("f-rr", ids);
      expect(entries).toHaveLength(150);
      const overlap = maxOverlap(entries);
      for (const key of keys) expect(overlap.get(key), key).toBeLessThanOrEqual(2);
    } finally {
      proto.acquire = original;
    }
  }, 180_000);
});
