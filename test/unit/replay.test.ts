import { describe, expect, it } from "vitest";
import { NonDeterminismError } from "../../worker-sdk/src/errors";
import type { CheckpointRecord } from "../../worker-sdk/src/protocol";
import { ReplayLog } from "../../worker-sdk/src/replay";

const memo = (seq: number, key: string, value: unknown, occurrence = 0): CheckpointRecord => ({
  seq,
  kind: "memo",
  key,
  occurrence,
  status: "resolved",
  result: { value },
});

describe("replay matching", () => {
  it("gives each call its own record whatever order the calls come in", () => {
    const log = new ReplayLog([memo(0, "memo:a", "A"), memo(1, "memo:b", "B"), memo(2, "memo:c", "C")]);
    expect(log.match("memo", "memo:c").record?.result).toEqual({ value: "C" });
    expect(log.match("memo", "memo:a").record?.result).toEqual({ value: "A" });
    expect(log.match("memo", "memo:b").record?.result).toEqual({ value: "B" });
    expect(log.replayed).toBe(true);
    expect(log.divergence()).toBeNull();
  });

  it("matches repeats of one call by occurrence, and the kind is part of the identity", () => {
    const log = new ReplayLog([memo(0, "now", 1), memo(1, "memo:x", "x"), memo(2, "now", 2, 1)]);
    expect(log.match("sleep", "now")).toMatchObject({ record: null, seq: 3, occurrence: 0 });
    expect(log.match("memo", "now")).toMatchObject({ seq: 0, occurrence: 0 });
    expect(log.match("memo", "now")).toMatchObject({ seq: 2, occurrence: 1 });
    expect(log.match("memo", "now")).toMatchObject({ record: null, seq: 4, occurrence: 2 });
  });

  it("gives a new call a position past every recorded one, even while records are still to come", () => {
    const log = new ReplayLog([memo(0, "memo:a", 1), memo(5, "memo:b", 2)]);
    expect(log.match("memo", "memo:new")).toMatchObject({ record: null, seq: 6, occurrence: 0 });
    expect(log.match("memo", "memo:a").seq).toBe(0);
    expect(log.match("memo", "memo:other")).toMatchObject({ record: null, seq: 7 });
    expect(log.replayed).toBe(false);
    expect(log.match("memo", "memo:b").seq).toBe(5);
    expect(log.divergence()).toBeNull();
  });

  it("names the first recorded call never made again, and the first new call, when the task returns", () => {
    const log = new ReplayLog([memo(0, "memo:charge", 1), { seq: 1, kind: "sleep", key: "sleepFor:1000", occurrence: 0, status: "resolved", result: { value: {} } }]);
    log.match("memo", "memo:refund");
    log.match("sleep", "sleepFor:1000");
    const err = log.divergence();
    expect(err).toBeInstanceOf(NonDeterminismError);
    expect(err!.seq).toBe(0);
    expect(err!.recorded).toBe("memo(memo:charge)");
    expect(err!.called).toBe("memo(memo:refund) (checkpoint 2)");
    expect(err!.code).toBe("replay.non_determinism");
    expect(err!.message).toBe(
      "non-deterministic replay at checkpoint 0: the log recorded memo(memo:charge) but the task returned without making that call again; it called memo(memo:refund) (checkpoint 2) instead",
    );
  });

  it("says so when a task returns early without making any new call", () => {
    const log = new ReplayLog([memo(0, "memo:a", 1), memo(1, "memo:a", 2, 1)]);
    log.match("memo", "memo:a");
    expect(log.divergence()!.message).toContain("at checkpoint 1: the log recorded memo(memo:a) #1 but the task returned without making that call again; it called nothing new instead");
  });

  it("starts a task without a log at position 0", () => {
    const log = new ReplayLog([]);
    expect(log.match("memo", "memo:a")).toMatchObject({ seq: 0, occurrence: 0, record: null });
    expect(log.match("memo", "memo:a")).toMatchObject({ seq: 1, occurrence: 1, record: null });
    expect(log.divergence()).toBeNull();
  });
});

describe("replay of a log recorded before memo identities", () => {
  // What the old SDK wrote for `memo(fn)` and `memo(fn, [1])`: `memo:` and the digest of the deps.
  const OLD_NULL = `memo:${"a1".repeat(12)}`;
  const OLD_ONE = `memo:${"b2".repeat(12)}`;
  const sleep = (seq: number): CheckpointRecord => ({ seq, kind: "sleep", key: "sleepFor:1000", occurrence: 0, status: "resolved", result: { value: { durationMs: 1000 } } });

  it("gives each memo the old record at its own position when its old key is the recorded one", () => {
    const log = new ReplayLog([memo(0, OLD_NULL, "A"), sleep(1), memo(2, OLD_NULL, "B", 1), memo(3, OLD_ONE, "C")]);
    expect(log.hasLegacyMemos).toBe(true);
    expect(log.match("memo", "memo#first", OLD_NULL)).toMatchObject({ seq: 0, record: { result: { value: "A" } } });
    expect(log.match("sleep", "sleepFor:1000").seq).toBe(1);
    expect(log.match("memo", "memo#second", OLD_NULL)).toMatchObject({ seq: 2, record: { result: { value: "B" } } });
    expect(log.match("memo", "memo:named", OLD_ONE)).toMatchObject({ seq: 3, record: { result: { value: "C" } } });
    expect(log.match("memo", "memo#new", OLD_NULL)).toMatchObject({ seq: 4, record: null });
    expect(log.divergence()).toBeNull();
  });

  it("never hands an old record to a call at another position or with other deps: the task diverges instead", () => {
    const log = new ReplayLog([memo(0, OLD_NULL, "A"), memo(1, OLD_ONE, "B")]);
    expect(log.match("memo", "memo#x", OLD_ONE)).toMatchObject({ seq: 2, record: null });
    expect(log.match("memo", "memo#y", OLD_NULL)).toMatchObject({ seq: 3, record: null });
    expect(log.divergence()).toBeInstanceOf(NonDeterminismError);
  });

  it("looks for old records only in a log that has some", () => {
    expect(new ReplayLog([memo(0, "memo:send-email", 1), memo(1, "memo#0123456789abcdef01234567", 2)]).hasLegacyMemos).toBe(false);
  });
});
