import { describe, expect, it } from "vitest";
import { CEL_EVALUATION_BUDGET, checkExpression, evaluateFilter } from "../../src/core/cel";

describe("CEL under a budget", () => {
  it("runs matches on RE2: a pattern that backtracks exponentially answers at once", () => {
    const s = `${"a".repeat(5_000)}b`;
    const result = evaluateFilter("input.s.matches('^(a+)+$')", { input: { s } });
    expect(result).toMatchObject({ matched: false });
    expect(result.error).toBeUndefined();
    expect(evaluateFilter("input.s.matches('^(a+)+b$')", { input: { s } }).matched).toBe(true);
    // Partial match, as CEL specifies.
    expect(evaluateFilter("input.s.matches('ab')", { input: { s } }).matched).toBe(true);
  });

  it("refuses a literal pattern RE2 cannot run when the expression is declared", () => {
    expect(() => checkExpression("input.s.matches('(?=a)b')")).toThrow(/not valid RE2 syntax/);
    expect(() => checkExpression("input.s.matches('(a)\\\\1')")).toThrow(/not valid RE2 syntax/);
  });

  it("a dynamic pattern RE2 refuses is an evaluation error, shown", () => {
    const result = evaluateFilter("input.s.matches(input.p)", { input: { s: "x", p: "(?=x)" } });
    expect(result.matched).toBe(false);
    expect(result.error).toMatch(/invalid RE2 pattern/);
  });

  it("stops a cubic comprehension at the budget and says so", () => {
    const list = Array.from({ length: 600 }, (_, i) => i);
    const result = evaluateFilter("input.list.map(x, input.list.map(y, input.list.map(z, x + y + z))).size() > 0", { input: { list } });
    expect(result.matched).toBe(false);
    expect(result.error).toMatch(/cost budget/);
    expect(result.cost).toBeLessThanOrEqual(CEL_EVALUATION_BUDGET + 10_000);
  });

  it("charges the size of what an operator consumes: a large string searched in a loop runs out", () => {
    const s = "x".repeat(1_000_000);
    const list = Array.from({ length: 10_000 }, (_, i) => i);
    const result = evaluateFilter("input.list.all(i, !input.s.contains('y'))", { input: { s, list } });
    expect(result.error).toMatch(/cost budget/);
    // Once, it is cheap.
    expect(evaluateFilter("!input.s.contains('y')", { input: { s } })).toMatchObject({ matched: true });
  });

  it("a string doubled through nested binds cannot grow past the budget", () => {
    let expr = "size(v) > 0";
    for (let i = 0; i < 40; i++) expr = `cel.bind(v, v + v, ${expr})`;
    expr = `cel.bind(v, input.s, ${expr})`;
    const result = evaluateFilter(expr, { input: { s: "x".repeat(1024) } });
    expect(result.error).toMatch(/cost budget/);
  });

  it("ordinary filters pass well within the budget", () => {
    const list = Array.from({ length: 1_000 }, (_, i) => ({ id: i, tags: ["a", "b"] }));
    const result = evaluateFilter("input.items.exists(x, x.id == 999 && 'b' in x.tags) && input.n > 3", { input: { items: list, n: 4 } });
    expect(result).toMatchObject({ matched: true });
    expect(result.cost).toBeLessThan(CEL_EVALUATION_BUDGET / 10);
  });

  it("mixes ints and doubles in arithmetic: JSON numbers are doubles", () => {
    expect(evaluateFilter("input.a + 1 == 3", { input: { a: 2 } }).matched).toBe(true);
    expect(evaluateFilter("1 + input.a == 3.0", { input: { a: 2 } }).matched).toBe(true);
    expect(evaluateFilter("input.a * 2 - 1 > 2", { input: { a: 2 } }).matched).toBe(true);
    expect(evaluateFilter("input.a / 2 == 1", { input: { a: 2 } }).matched).toBe(true);
  });

  it("an expression that errors or is not a bool does not match, and says why", () => {
    expect(evaluateFilter("input.missing == 1", { input: {} }).error).toMatch(/No such key: missing/);
    expect(evaluateFilter("input.n", { input: { n: 1 } }).error).toMatch(/not a bool/);
    expect(evaluateFilter("input.s + 1 == 2", { input: { s: "x" } }).error).toMatch(/no such overload/);
  });

  it("meters every node, the root included (the hook into cel-js's evaluator works)", () => {
    expect(evaluateFilter("true", {}).cost).toBeGreaterThan(0);
    expect(evaluateFilter("[1, 2, 3].all(x, x > 0)", {}).cost).toBeGreaterThanOrEqual(9);
    expect(evaluateFilter("'aaab'.matches('^(a+)+$')", {})).toMatchObject({ matched: false });
  });

  it("consumes a list of 300,000 elements without overflowing the stack", () => {
    const list = Array.from({ length: 300_000 }, (_, i) => i);
    expect(evaluateFilter("299999.0 in input.l", { input: { l: list } })).toMatchObject({ matched: true });
  });

  it("an expression that can no longer be compiled is a non-match with its reason, not a throw", () => {
    const result = evaluateFilter("input.s.matches('(?=a)')", { input: { s: "a" } });
    expect(result.matched).toBe(false);
    expect(result.error).toMatch(/not valid RE2 syntax/);
  });

  it("an empty expression matches", () => {
    expect(evaluateFilter(undefined, {})).toMatchObject({ matched: true });
    expect(evaluateFilter("  ", {})).toMatchObject({ matched: true });
  });
});
