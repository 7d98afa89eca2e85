import { describe, expect, it } from "vitest";
import { checkCron, decideFilters, dueTicks, eventKeyMatches, nextTick, workflowsForEvent } from "../../src/core/triggers";

describe("event key patterns", () => {
  it("matches a trailing * against any suffix and anything else exactly", () => {
    expect(eventKeyMatches("order:*", "order:created")).toBe(true);
    expect(eventKeyMatches("order:*", "order:")).toBe(true);
    expect(eventKeyMatches("order:*", "orders")).toBe(false);
    expect(eventKeyMatches("*", "anything")).toBe(true);
    expect(eventKeyMatches("user:created", "user:created")).toBe(true);
    expect(eventKeyMatches("user:created", "user:created:v2")).toBe(false);
    expect(eventKeyMatches("user:*:x", "user:a:x")).toBe(false);
  });

  it("finds every workflow an event starts, in name order", () => {
    const wfs = [{ name: "b", onEvents: ["order:*"] }, { name: "a", onEvents: ["order:paid"] }, { name: "c" }];
    expect(workflowsForEvent(wfs, "order:paid").map((w) => w.name)).toEqual(["a", "b"]);
    expect(workflowsForEvent(wfs, "user:created")).toEqual([]);
  });
});

describe("filters", () => {
  const event = (scope: string | null, payload: unknown, metadata: Record<string, string> = {}) => ({ scope, payload, metadata });

  it("runs a workflow no filter applies to, and one whose applying filter holds, with that filter", () => {
    const filters = [{ id: "1", expression: "input.n > payload.min", scope: "s", payload: { min: 5 } }];
    expect(decideFilters(filters, event("other", { n: 1 }))).toEqual({ run: true, errors: [] });
    expect(decideFilters(filters, event(null, { n: 1 }))).toEqual({ run: true, errors: [] });
    expect(decideFilters(filters, event("s", { n: 1 }))).toEqual({ run: false, errors: [] });
    expect(decideFilters(filters, event("s", { n: 9 }))).toMatchObject({ run: true, filter: { id: "1" } });
  });

  it("applies a filter without a scope to every event, reads additional_metadata, and counts an error as not holding", () => {
    const filters = [
      { id: "1", expression: "input.missing.deeper" },
      { id: "2", expression: "additional_metadata.tier == 'gold'" },
    ];
    const decided = decideFilters(filters, event(null, {}, { tier: "gold" }));
    expect(decided).toMatchObject({ run: true, filter: { id: "2" } });
    expect(decided.errors).toEqual([expect.stringMatching(/^filter 1: /)]);
    expect(decideFilters(filters, event("x", {}, { tier: "tin" })).run).toBe(false);
  });
});

describe("cron ticks", () => {
  const at = (iso: string) => Date.parse(iso);

  it("parses five fields, six with seconds and names, and refuses the rest with croner's message", () => {
    expect(() => checkCron("*/5 * * * *", "UTC", { expression: "e", timezone: "z" })).not.toThrow();
    expect(() => checkCron("*/2 * * * * *", "UTC", { expression: "e", timezone: "z" })).not.toThrow();
    expect(() => checkCron("@hourly", "Asia/Tokyo", { expression: "e", timezone: "z" })).not.toThrow();
    expect(() => checkCron("0 * * *", "UTC", { expression: "e", timezone: "z" })).toThrow(/^e: .*five, six, or seven/);
    expect(() => checkCron("0 * * * *", "Nowhere/City", { expression: "e", timezone: "z" })).toThrow(/^z: /);
  });

  it("runs missed ticks once, as the latest, counting them", () => {
    const due = at("2026-01-01T10:00:00Z");
    expect(dueTicks("0 * * * *", "UTC", due, at("2026-01-01T09:59:59Z"))).toBeNull();
    expect(dueTicks("0 * * * *", "UTC", due, at("2026-01-01T10:00:01Z"))).toEqual({ latest: due, count: 1, next: at("2026-01-01T11:00:00Z") });
    expect(dueTicks("0 * * * *", "UTC", due, at("2026-01-01T12:30:00Z"))).toEqual({ latest: at("2026-01-01T12:00:00Z"), count: 3, next: at("2026-01-01T13:00:00Z") });
  });

  it("keeps wall-clock time in its zone across DST", () => {
    expect(nextTick("0 9 * * *", "Europe/Berlin", at("2026-03-28T12:00:00Z"))).toBe(at("2026-03-29T07:00:00Z"));
    expect(nextTick("0 9 * * *", "Europe/Berlin", at("2026-03-27T12:00:00Z"))).toBe(at("2026-03-28T08:00:00Z"));
    // New York leaves daylight time at 06:00Z on 1 November 2026.
    expect(nextTick("0 9 * * *", "America/New_York", at("2026-10-31T12:00:00Z"))).toBe(at("2026-10-31T13:00:00Z"));
    expect(nextTick("0 9 * * *", "America/New_York", at("2026-11-01T12:00:00Z"))).toBe(at("2026-11-01T14:00:00Z"));
  });
});
