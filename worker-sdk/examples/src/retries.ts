import { NonRetryableError } from "@spindle/worker-sdk";
import { spindle } from "./spindle";

/** Fails twice, then succeeds on its third attempt. */
export const retries = spindle.task({
  name: "retries",
  retries: 3,
  fn: (_input, ctx) => {
    if (ctx.retryCount() < 2) throw new Error(`intentional failure on attempt ${ctx.retryCount() + 1}`);
    return { retryCount: ctx.retryCount() };
  },
});

/** Has retries left, but a NonRetryableError fails it at once. */
export const nonRetryable = spindle.task({
  name: "non-retryable",
  retries: 3,
  fn: () => {
    throw new NonRetryableError("not retried");
  },
});
