import { z } from "zod";
import { spindle } from "./spindle";

/** A regular task that works for `ms` (stopping early if its run is cancelled). */
export const slowTask = spindle.task({
  name: "slow-task",
  executionTimeout: "2m",
  input: z.object({ ms: z.number().int().min(0).max(60_000) }),
  fn: async (input, ctx) => {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, input.ms);
      ctx.abortSignal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      });
    });
    return { workedMs: input.ms };
  },
});

/**
 * Charges, sleeps without holding a slot, then issues a receipt. Each step with an effect is a
 * memo whose result carries a fresh id, so the output shows which execution of each step counted:
 * a replay after a crash returns the recorded ids and never charges again.
 */
export const durableCheckout = spindle.durableTask({
  name: "durable-checkout",
  input: z.object({ orderId: z.string(), sleepMs: z.number().int().min(0).max(86_400_000) }),
  fn: async (input, ctx) => {
    const charge = await ctx.memo(() => ({ chargeId: crypto.randomUUID(), orderId: input.orderId }), ["charge"]);
    await ctx.sleepFor(input.sleepMs);
    const receipt = await ctx.memo(() => ({ receiptId: crypto.randomUUID(), chargeId: charge.chargeId }), ["receipt"]);
    return { ...charge, ...receipt };
  },
});
