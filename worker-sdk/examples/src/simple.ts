import { z } from "zod";
import { spindle } from "./spindle";

export const simple = spindle.task({
  name: "simple",
  input: z.object({ Message: z.string() }),
  fn: (input) => ({ TransformedMessage: input.Message.toLowerCase() }),
});
