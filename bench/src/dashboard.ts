import type { Reply, TriggerRequest, TriggerResult } from "@spindle/worker-sdk/protocol";

export interface DashboardEnv {
  SPINDLE: {
    triggerMany(token: string, reqs: TriggerRequest[]): Promise<Reply<TriggerResult[]>>;
    fetch(input: string, init?: RequestInit): Promise<Response>;
  };
  SPINDLE_API_TOKEN?: string;
}

/** How long the runs made for the measurement may take to finish before it starts. */
const SETTLE_TIMEOUT_MS = 900_000;

/**
 * The dashboard's runs page with `n` runs in the tenant: tops the tenant up to `n` real runs of
 * `simple` (1,000 per bulk trigger), waits until none is queued or running, then times `samples`
 * loads of the first page, signed in, the way a browser asks for it (through the engine's HTTP
 * app, over the service binding: the same code `wrangler dev` serves at `/`).
 */
export async function dashboardBench(env: DashboardEnv, n: number, samples: number): Promise<{ runs: number; seedMs: number; samples: number[] }> {
  const token = env.SPINDLE_API_TOKEN!;
  const load = async () => {
    const res = await env.SPINDLE.fetch("https://spindle.internal/", { headers: { cookie: `spindle_session=${token}` } });
    const html = await res.text();
    if (!res.ok || !html.includes("</html>")) throw new Error(`the runs page answered ${res.status}: ${html.slice(0, 300)}`);
    return html;
  };
  const counts = (html: string) => {
    const of = (label: string) => Number(new RegExp(`aria-label="(\\d+) ${label}"`).exec(html)?.[1] ?? "0");
    return { total: Number(/<strong>(\d+)<\/strong> matching/.exec(html)?.[1] ?? "0"), going: of("QUEUED") + of("RUNNING") };
  };
  const t0 = Date.now();
  let now = counts(await load());
  while (now.total < n) {
    const k = Math.min(1_000, n - now.total);
    const reply = await env.SPINDLE.triggerMany(token, Array.from({ length: k }, () => ({ workflow: "simple", input: { Message: "Hello World" } })));
    if (!reply.ok) throw new Error(`triggerMany: ${reply.error.code}: ${reply.error.message}`);
    const want = now.total + k;
    const deadline = Date.now() + SETTLE_TIMEOUT_MS;
    while ((now = counts(await load())).total < want) {
      if (Date.now() > deadline) throw new Error(`the index lists ${now.total} runs, not ${want}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  while ((now = counts(await load())).going > 0) {
    if (Date.now() > deadline) throw new Error(`${now.going} runs still going`);
    await new Promise((r) => setTimeout(r, 1_000));
  }
  const seedMs = Date.now() - t0;
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t = Date.now();
    await load();
    times.push(Date.now() - t);
  }
  return { runs: now.total, seedMs, samples: times };
}
