import { z } from "zod";
import { Or, ParentCondition, SleepCondition, UserEventCondition } from "@spindle/worker-sdk";
import { spindle } from "./spindle";

/** Sleeps 5 s without holding a slot. */
export const durableSleep = spindle.durableTask({
  name: "durable-sleep",
  fn: async (_input, ctx) => {
    const { durationMs } = await ctx.sleepFor("5s");
    return { sleptMs: durationMs };
  },
});

/** Waits for a `user:update` event about this run's user, and returns its payload. */
export const durableEvent = spindle.durableTask({
  name: "durable-event",
  input: z.object({ userId: z.string() }),
  fn: async (input, ctx) => {
    return ctx.waitForEvent("user:update", `input.userId == ${JSON.stringify(input.userId)}`);
  },
});

/** An approval, or 10 s passing, whichever comes first. */
export const durableOr = spindle.durableTask({
  name: "durable-or",
  fn: async (_input, ctx) => {
    const fired = await ctx.waitFor([Or({ eventKey: "user:approve" }, { sleepFor: "10s" })]);
    return { fired: "user:approve" in fired ? "event" : "sleep", result: fired };
  },
});

/** Returns its index, after working `ms` if given. */
export const fanoutChild = spindle.task({
  name: "fanout-child",
  input: z.object({ index: z.number(), ms: z.number().int().min(0).max(60_000).optional() }),
  fn: async (input) => {
    if (input.ms) await new Promise((resolve) => setTimeout(resolve, input.ms));
    return { value: input.index };
  },
});

/** Spawns N children (each working `childMs` if given) and sums their outputs; evicted while they run. */
export const durableFanout = spindle.durableTask({
  name: "durable-fanout",
  executionTimeout: "5m",
  input: z.object({ N: z.number().int().min(0).max(10_000), childMs: z.number().int().min(0).max(60_000).optional() }),
  fn: async (input, ctx) => {
    const children = Array.from({ length: input.N }, (_, index) => ({ task: fanoutChild, input: input.childMs ? { index, ms: input.childMs } : { index } }));
    const outputs = await ctx.spawnChildren(children);
    return { sum: outputs.reduce((s, o) => s + o.value, 0) };
  },
});

/**
 * Waits up to a day for the user to finish onboarding (an event scoped to the user), then sends a
 * follow-up, or skips it if they never did. The send is a memo: a replay never sends twice.
 */
export const welcomeEmail = spindle.durableTask({
  name: "welcome-email",
  input: z.object({ userId: z.string(), email: z.string() }),
  fn: async (input, ctx) => {
    const fired = await ctx.waitFor([Or({ eventKey: "user:onboarded", scope: input.userId }, { sleepFor: "24h" })]);
    if (!("user:onboarded" in fired)) return { followUp: "skipped", reason: "not onboarded within a day" };
    const sent = await ctx.memo(async () => {
      ctx.logger.info(`sending the follow-up to ${input.email}`);
      return { to: input.email, at: new Date().toISOString() };
    });
    return { followUp: "sent", ...sent };
  },
});

/** A DAG that branches on a random number with skipIf, then waits for an event or a sleep. */
export const dagConditions = spindle.workflow({ name: "dag-conditions" });

const start = dagConditions.task({
  name: "start",
  fn: () => ({ random_number: Math.floor(Math.random() * 100) + 1 }),
});

const high = dagConditions.task({
  name: "high",
  parents: [start],
  skipIf: [new ParentCondition({ parent: start, expression: "output.random_number <= 50" })],
  fn: (_input, ctx) => ({ branch: "high", n: ctx.parentOutput(start).random_number }),
});

const low = dagConditions.task({
  name: "low",
  parents: [start],
  skipIf: [new ParentCondition({ parent: start, expression: "output.random_number > 50" })],
  fn: (_input, ctx) => ({ branch: "low", n: ctx.parentOutput(start).random_number }),
});

dagConditions.task({
  name: "finish",
  parents: [high, low],
  waitFor: [Or(new SleepCondition("10s"), new UserEventCondition("dag:continue"))],
  fn: (_input, ctx) => ({ took: ctx.wasSkipped(high) ? "low" : "high" }),
});
