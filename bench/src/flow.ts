import { z } from "zod";
import { ConcurrencyLimitStrategy, Spindle } from "@spindle/worker-sdk";
import type { Env } from "./index";

/**
 * Flow control's overhead (issue 8): the same one-task job with and without a round-robin
 * concurrency key (`input.group`, maxRuns 5). Both run on the bench worker's pool, so the only
 * difference is the key: its FlowLimits object taken at admission and given back at the end. And
 * the same job on a worker of the same size whose pool is sharded over 4 task queues.
 */
const spindle = Spindle.init();
const input = z.object({ Message: z.string(), group: z.string() });

export const flowRr = spindle.workflow<z.infer<typeof input>>({
  name: "bench-flow-rr",
  input,
  concurrency: { expression: "input.group", maxRuns: 5, limitStrategy: ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN },
});
flowRr.task({ name: "lower", fn: (i) => ({ TransformedMessage: i.Message.toLowerCase() }) });

export const flowPlain = spindle.workflow<z.infer<typeof input>>({ name: "bench-flow-plain", input });
flowPlain.task({ name: "lower", fn: (i) => ({ TransformedMessage: i.Message.toLowerCase() }) });

/** The same as `bench-flow-plain`, on a worker whose pool is served by 4 task queues (25 slots each). */
const flowSharded = spindle.workflow<z.infer<typeof input>>({ name: "bench-flow-sharded", input });
flowSharded.task({ name: "lower", fn: (i) => ({ TransformedMessage: i.Message.toLowerCase() }) });

export class BenchShardedWorker extends spindle.worker({ name: "bench-sharded", slots: 100, queueShards: 4, workflows: [flowSharded] }) {}

const WORKFLOW = { rr: "bench-flow-rr", plain: "bench-flow-plain", sharded: "bench-flow-sharded" } as const;
export type FlowVariant = keyof typeof WORKFLOW;
export const FLOW_VARIANTS = Object.keys(WORKFLOW) as FlowVariant[];

/** `n` runs triggered at once over `keys` groups; the time from the first trigger to the last result. */
export async function flowBench(env: Env, variant: FlowVariant, n: number, keys: number): Promise<{ elapsedMs: number; errors: string[] }> {
  const token = env.SPINDLE_API_TOKEN ?? "";
  const t0 = Date.now();
  const errors: string[] = [];
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      try {
        const r = await env.SPINDLE.trigger(token, { workflow: WORKFLOW[variant], input: { Message: "Hello World", group: `k${i % keys}` } });
        if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
        for (;;) {
          const w = await env.SPINDLE.waitForRun(token, r.value.runId, 60_000);
          if (!w.ok) throw new Error(`${w.error.code}: ${w.error.message}`);
          if (w.value.status === "COMPLETED") return;
          if (w.value.status === "FAILED" || w.value.status === "CANCELLED") throw new Error(`run ${w.value.runId} ${w.value.status}`);
          if (Date.now() - t0 > 300_000) throw new Error(`run ${w.value.runId} still ${w.value.status}`);
        }
      } catch (err) {
        errors.push(String((err as Error)?.message ?? err));
      }
    }),
  );
  return { elapsedMs: Date.now() - t0, errors };
}
