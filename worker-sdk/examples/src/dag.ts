import { z } from "zod";
import { spindle } from "./spindle";

export const dag = spindle.workflow({
  name: "dag",
  input: z.object({ Message: z.string() }),
});

const toLower = dag.task({
  name: "to-lower",
  fn: (input) => ({ TransformedMessage: input.Message.toLowerCase() }),
});

dag.task({
  name: "reverse",
  parents: [toLower],
  fn: (input, ctx) => {
    const lower = ctx.parentOutput(toLower);
    return { Original: input.Message, Transformed: [...lower.TransformedMessage].reverse().join("") };
  },
});
