import { describe, expect, it } from "vitest";
import { SpindleError } from "../../src/core/errors";
import { DEFAULT_MAX_PAYLOAD_BYTES, jsonBytes, limitsOf, refuseOversized, sizeProblem } from "../../src/core/limits";

describe("size limits", () => {
  it("takes the payload limit from SPINDLE_MAX_PAYLOAD_BYTES, never above the ceiling", () => {
    expect(limitsOf({}).maxPayloadBytes).toBe(DEFAULT_MAX_PAYLOAD_BYTES);
    expect(limitsOf({ SPINDLE_MAX_PAYLOAD_BYTES: "1000" }).maxPayloadBytes).toBe(1000);
    expect(limitsOf({ SPINDLE_MAX_PAYLOAD_BYTES: String(10 * DEFAULT_MAX_PAYLOAD_BYTES) }).maxPayloadBytes).toBe(DEFAULT_MAX_PAYLOAD_BYTES);
    expect(limitsOf({ SPINDLE_MAX_PAYLOAD_BYTES: "lots" }).maxPayloadBytes).toBe(DEFAULT_MAX_PAYLOAD_BYTES);
    expect(limitsOf({ SPINDLE_MAX_PAYLOAD_BYTES: "-5" }).maxPayloadBytes).toBe(DEFAULT_MAX_PAYLOAD_BYTES);
  });

  it("measures the UTF-8 bytes of the JSON", () => {
    expect(jsonBytes({ a: "é" })).toBe(JSON.stringify({ a: "é" }).length + 1);
    expect(jsonBytes(undefined)).toBe(4);
    expect(sizeProblem("input", "é".repeat(600), 1000)).toEqual({ path: "input", message: "is 1202 bytes; the limit is 1000 bytes" });
    expect(sizeProblem("input", "e".repeat(600), 1000)).toBeNull();
    expect(sizeProblem("input", null, 1)).toBeNull();
  });

  it("refuses with payload.too_large naming every field over its limit", () => {
    expect(() => refuseOversized([null])).not.toThrow();
    const err = (() => {
      try {
        refuseOversized([sizeProblem("input", "xx", 1), null, sizeProblem("additionalMetadata", { k: "v" }, 2)]);
      } catch (e) {
        return e as SpindleError;
      }
      throw new Error("not refused");
    })();
    expect(err.code).toBe("payload.too_large");
    expect(err.fields?.map((f) => f.path)).toEqual(["input", "additionalMetadata"]);
  });
});
