import { describe, expect, it } from "vitest";
import { Rounds } from "../../src/core/rounds";

describe("Rounds", () => {
  it("never runs two rounds at once, and runs one more for calls made during a round", async () => {
    let active = 0;
    let maxActive = 0;
    let rounds = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const r = new Rounds(async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      rounds++;
      if (rounds === 1) await gate;
      active--;
      return false;
    });
    const first = r.run();
    // Three calls while the first round is held: they ask for one more round, not three.
    await Promise.all([r.run(), r.run(), r.run()]);
    release();
    await first;
    expect(maxActive).toBe(1);
    expect(rounds).toBe(2);
  });

  it("goes round again while a round says there is more", async () => {
    let left = 3;
    const r = new Rounds(async () => --left > 0);
    await r.run();
    expect(left).toBe(0);
  });
});
