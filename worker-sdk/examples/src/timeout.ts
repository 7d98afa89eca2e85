import { spindle } from "./spindle";

/** Sleeps 30 s, ignoring its abort signal: the engine still fails the attempt after 2 s. */
export const timeout = spindle.task({
  name: "timeout",
  executionTimeout: "2s",
  fn: async () => {
    await new Promise((resolve) => setTimeout(resolve, 30_000));
    return { finished: true };
  },
});

/** Waits up to a minute on its abort signal; cancelling the run ends it at once. */
export const cancellation = spindle.task({
  name: "cancellation",
  executionTimeout: "2m",
  fn: async (_input, ctx) => {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 60_000);
      ctx.abortSignal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      });
    });
    return { cancelled: ctx.abortSignal.aborted };
  },
});
