import { describe, expect, it } from "vitest";
import type { ConditionData } from "@spindle/worker-sdk/protocol";
import { matches } from "../../src/core/cel";
import { evaluate, leafId, leaves, validateConditions } from "../../src/core/conditions";
import { SpindleError } from "../../src/core/errors";

const orList: ConditionData[] = [
  { kind: "or", conditions: [{ kind: "event", eventKey: "approve" }, { kind: "sleep", durationMs: 10_000 }] },
];
const andList: ConditionData[] = [
  { kind: "event", eventKey: "left" },
  { kind: "event", eventKey: "right", key: "R" },
];

describe("evaluate", () => {
  it("holds an Or group on its first satisfied leaf, reporting it by key", () => {
    expect(evaluate(orList, new Map())).toEqual({ holds: false, fired: {} });
    expect(evaluate(orList, new Map([[leafId(0, 1), { durationMs: 10_000 }]]))).toEqual({ holds: true, fired: { sleep: { durationMs: 10_000 } } });
    expect(evaluate(orList, new Map([[leafId(0, 0), { ok: 1 }]]))).toEqual({ holds: true, fired: { approve: { ok: 1 } } });
  });
  it("needs every entry of an AND list", () => {
    expect(evaluate(andList, new Map([[leafId(0, 0), 1]])).holds).toBe(false);
    expect(evaluate(andList, new Map([[leafId(0, 0), 1], [leafId(1, 0), 2]]))).toEqual({ holds: true, fired: { left: 1, R: 2 } });
  });
  it("holds an empty list at once", () => {
    expect(evaluate([], new Map()).holds).toBe(true);
  });
  it("addresses every leaf", () => {
    expect(leaves([...orList, ...andList]).map((l) => [l.group, l.leaf])).toEqual([
      [0, 0],
      [0, 1],
      [1, 0],
      [2, 0],
    ]);
  });
});

describe("CEL filters", () => {
  it("match on the payload as input and the metadata as additional_metadata", () => {
    const ctx = { input: { userId: "u1", n: 5 }, additional_metadata: { source: "api" } };
    expect(matches('input.userId == "u1" && input.n > 3', ctx)).toBe(true);
    expect(matches('additional_metadata.source == "api"', ctx)).toBe(true);
    expect(matches('input.userId == "u2"', ctx)).toBe(false);
    expect(matches(undefined, ctx)).toBe(true);
  });
  it("treat an evaluation error or a non-boolean as no match", () => {
    expect(matches("input.missing == 1", { input: {} })).toBe(false);
    expect(matches("input.n", { input: { n: 1 } })).toBe(false);
  });
  it("refuse an expression that does not parse, with the parser's message", () => {
    expect(() => validateConditions([{ kind: "event", eventKey: "k", expression: "input.x ==" }], "waitFor")).toThrow(SpindleError);
    expect(() => validateConditions([{ kind: "event", eventKey: "k", expression: "input.x ==" }], "waitFor")).toThrow(/waitFor\[0\]: CEL expression "input.x ==" does not parse: .+/);
    expect(() => validateConditions([{ kind: "parent", parent: "p", expression: "true" }], "skipIf", ["q"])).toThrow(/'p' is not a parent/);
    expect(() => validateConditions([{ kind: "event", eventKey: "k", lookbackMs: 25 * 3_600_000 }], "waitFor")).toThrow(/lookback is at most 24h/);
  });
});
