import { spindle } from "./spindle";

/** Puts 10 chunks on its run's stream, 200 ms apart, logging each: watch them arrive on the run's page. */
export const stream = spindle.task({
  name: "stream",
  fn: async (_input, ctx) => {
    for (let i = 0; i < 10; i++) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 200));
      await ctx.putStream(`chunk ${i}`);
      ctx.logger.info(`put chunk ${i}`);
    }
    return { chunks: 10 };
  },
});
