import { env } from "cloudflare:workers";
import { it } from "vitest";
it("probe throughput", async () => {
  const token = "test-token-default";
  const one = async () => {
    const r: any = await env.SPINDLE.trigger(token, { workflow: "t-echo", input: { a: 1 } });
    const w: any = await env.SPINDLE.waitForRun(token, r.value.runId, 60_000);
    if (w.value.status !== "COMPLETED") throw new Error("not completed");
  };
  for (let i = 0; i < 20; i++) await one();
  for (const n of [300, 300]) {
    const t = Date.now();
    await Promise.all(Array.from({ length: n }, one));
    console.log(`PROBE ${n} runs in ${Date.now() - t} ms = ${(n / ((Date.now() - t) / 1000)).toFixed(1)}/s`);
  }
  const t = Date.now();
  for (let i = 0; i < 30; i++) await one();
  console.log(`PROBE sequential ${((Date.now() - t) / 30).toFixed(1)} ms/run`);
}, 300_000);
