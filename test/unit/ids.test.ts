import { describe, expect, it } from "vitest";
import { deterministicUlid, isUlid, ulid, ulidTime } from "../../src/core/ids";

describe("run ids", () => {
  it("sort by creation time and encode it", () => {
    const early = ulid(1_700_000_000_000);
    const late = ulid(1_700_000_000_001);
    expect(isUlid(early)).toBe(true);
    expect(early < late).toBe(true);
    expect(ulidTime(early)).toBe(1_700_000_000_000);
  });
  it("derive the same child id from the same parent link, and another from another", async () => {
    const a = await deterministicUlid(1_700_000_000_000, "run/task/1/0");
    expect(await deterministicUlid(1_700_000_000_000, "run/task/1/0")).toBe(a);
    expect(await deterministicUlid(1_700_000_000_000, "run/task/1/1")).not.toBe(a);
    expect(isUlid(a)).toBe(true);
  });
  it("refuse what is not a run id", () => {
    expect(isUlid("not-a-run-id")).toBe(false);
    expect(isUlid("01JH8X7Q2K3M4N5P6Q7R8S9T0U")).toBe(false); // U is not in the alphabet
  });
});
