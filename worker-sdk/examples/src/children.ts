import { z } from "zod";
import { spindle } from "./spindle";

export const child = spindle.task({
  name: "child",
  input: z.object({ Value: z.number() }),
  fn: (input) => ({ Value: input.Value }),
});

export const childWorkflows = spindle.workflow({
  name: "child-workflows",
  input: z.object({ N: z.number().int().min(0).max(1000) }),
});

childWorkflows.task({
  name: "parent",
  executionTimeout: "5m",
  fn: async (input, ctx) => {
    const outputs = await ctx.bulkRunChildren(
      Array.from({ length: input.N }, (_, i) => ({ task: child, input: { Value: i } })),
    );
    return { Result: outputs.reduce((sum, o) => sum + o.Value, 0) };
  },
});
