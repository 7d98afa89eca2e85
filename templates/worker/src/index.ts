import { Spindle } from "@spindle/worker-sdk";
import { z } from "zod";

// The token comes from the SPINDLE_API_TOKEN secret (.dev.vars locally, `wrangler secret put` deployed).
const spindle = Spindle.init();

/** A task: typed input, retries, a timeout. */
export const greet = spindle.task({
  name: "greet",
  input: z.object({ name: z.string() }),
  retries: 2,
  executionTimeout: "30s",
  fn: async ({ name }, ctx) => {
    ctx.logger.info(`greeting ${name}`);
    return { greeting: `Hello, ${name}!` };
  },
});

/** A durable task: it sleeps without holding a slot, and resumes where it left off. */
export const remind = spindle.durableTask({
  name: "remind",
  input: z.object({ name: z.string(), afterSeconds: z.number().int().min(1).max(3600) }),
  fn: async ({ name, afterSeconds }, ctx) => {
    const since = await ctx.memo("since", () => new Date().toISOString());
    await ctx.sleepFor(`${afterSeconds}s`);
    return { reminder: `${name}, it is time (waiting since ${since})` };
  },
});

// The fetch handler the engine calls, signed both ways.
export default spindle.serve({ name: "my-worker", slots: 10, workflows: [greet, remind] });
