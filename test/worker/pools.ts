import { spindle, count } from "./workflows";

/** Tasks on small slot pools, to see slots and priorities at work. */
export const inFlight = { now: 0, max: 0 };
export const order: string[] = [];
/** Tags whose held task may finish. Plain values: a promise's resolver cannot cross request contexts. */
export const opened = new Set<string>();

export const slotted = spindle.task({
  name: "t-slotted",
  fn: async (input: { ms: number }) => {
    inFlight.now++;
    inFlight.max = Math.max(inFlight.max, inFlight.now);
    await new Promise((r) => setTimeout(r, input.ms));
    inFlight.now--;
    return { ok: true };
  },
});

/** Runs one at a time; each waits until the test opens its gate (or 10 s pass). */
export const serial = spindle.task({
  name: "t-serial",
  executionTimeout: "30s",
  fn: async (input: { tag: string; hold?: boolean }) => {
    order.push(input.tag);
    count(`t-serial:${input.tag}`);
    const until = Date.now() + 10_000;
    while (input.hold && !opened.has(input.tag) && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    return { tag: input.tag };
  },
});

export const slottedWorker = spindle.worker({ name: "slotted", slots: 2, workflows: [slotted] });
export const serialWorker = spindle.worker({ name: "serial", slots: 1, workflows: [serial] });
