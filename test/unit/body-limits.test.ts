import { describe, expect, it } from "vitest";
import { MAX_VALUE_DEPTH, valueLimitExceeded } from "@spindle/worker-sdk/protocol";
import { checkJsonDepth } from "../../src/api/body-limits";

describe("JSON depth and size limits", () => {
  it("counts nesting in the text, not brackets inside strings", () => {
    const deep = (n: number) => `${"[".repeat(n)}1${"]".repeat(n)}`;
    expect(() => checkJsonDepth(deep(128), 128)).not.toThrow();
    expect(() => checkJsonDepth(deep(129), 128)).toThrow(/deeper than 128 levels/);
    expect(() => checkJsonDepth(`{"a":"${"[".repeat(1000)}\\"[[["}`, 2)).not.toThrow();
    expect(() => checkJsonDepth(`["\\\\",[[1]]]`, 2)).toThrow(/deeper than 2/);
  });

  it("measures a value without recursion, and stops at the first limit passed", () => {
    let v: unknown = 1;
    for (let i = 0; i < 1_000_000; i++) v = { a: v };
    expect(valueLimitExceeded(v, 1_000)).toMatchObject({ code: "request.too_deep" });
    expect(valueLimitExceeded({ s: "x".repeat(2_000) }, 1_000)).toMatchObject({ code: "request.too_large" });
    let ok: unknown = "leaf";
    for (let i = 0; i < MAX_VALUE_DEPTH; i++) ok = [ok];
    expect(valueLimitExceeded(ok, 1_000_000)).toBeNull();
    expect(valueLimitExceeded([ok], 1_000_000)).toMatchObject({ code: "request.too_deep" });
  });
});
