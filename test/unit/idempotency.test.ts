import { describe, expect, it } from "vitest";
import { canonicalJson, checkIdempotencyKey, fingerprint, idempotencyConflict, idempotencyShard, IDEMPOTENCY_SHARDS } from "../../src/core/idempotency";
import { httpStatusOf } from "../../src/core/errors";

describe("idempotency keys", () => {
  it("fingerprint a request the same whatever the order of its object keys", async () => {
    const a = { workflow: "w", input: { b: [1, { y: 2, x: 1 }], a: null }, additionalMetadata: { k: "v" } };
    const b = { additionalMetadata: { k: "v" }, input: { a: null, b: [1, { x: 1, y: 2 }] }, workflow: "w" };
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    expect(await fingerprint(a)).toBe(await fingerprint(b));
  });

  it("fingerprint different requests differently", async () => {
    const base = await fingerprint({ workflow: "w", input: { n: 1 } });
    expect(await fingerprint({ workflow: "w", input: { n: 2 } })).not.toBe(base);
    expect(await fingerprint({ workflow: "v", input: { n: 1 } })).not.toBe(base);
    expect(await fingerprint({ workflow: "w", input: { n: "1" } })).not.toBe(base);
    expect(await fingerprint({ workflow: "w", input: [{ n: 1 }] })).not.toBe(base);
  });

  it("write canonical JSON as JSON.stringify would, keys sorted", () => {
    const value = { z: undefined, s: "a\"b", d: new Date(0), list: [undefined, 1.5, true], nested: { b: 1, a: 2 } };
    expect(JSON.parse(canonicalJson(value))).toEqual(JSON.parse(JSON.stringify(value)));
    expect(canonicalJson(value)).toBe('{"d":"1970-01-01T00:00:00.000Z","list":[null,1.5,true],"nested":{"a":2,"b":1},"s":"a\\"b"}');
  });

  it("refuse an empty, long or non-ASCII key, naming where it came from", () => {
    expect(checkIdempotencyKey("order-4711", "header.Idempotency-Key")).toBe("order-4711");
    for (const bad of ["", "x".repeat(257), "caf\u00e9", "tab\there", 42]) {
      expect(() => checkIdempotencyKey(bad, "runs[2].idempotencyKey")).toThrowError(
        expect.objectContaining({ code: "request.invalid", fields: [expect.objectContaining({ path: "runs[2].idempotencyKey" })] }),
      );
    }
  });

  it("answer a conflict with 409 naming the key", () => {
    const err = idempotencyConflict("order-4711", "header.Idempotency-Key");
    expect(httpStatusOf(err.code)).toBe(409);
    expect(err.message).toContain("'order-4711'");
    expect(err.fields?.[0]?.path).toBe("header.Idempotency-Key");
  });

  it("spread keys over every shard", () => {
    const shards = new Set(Array.from({ length: 200 }, (_, i) => idempotencyShard("run", `k${i}`)));
    expect(shards.size).toBe(IDEMPOTENCY_SHARDS);
    expect([...shards].every((s) => s >= 0 && s < IDEMPOTENCY_SHARDS)).toBe(true);
  });
});
