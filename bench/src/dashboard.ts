import type { Reply, TriggerRequest, TriggerResult } from "@spindle/worker-sdk/protocol";

export interface DashboardEnv {
  SPINDLE: {
    triggerMany(token: string, reqs: TriggerRequest[]): Promise<Reply<TriggerResult[]>>;
    fetch(input: string, init?: RequestInit): Promise<Response>;
  };
  SPINDLE_API_TOKEN?: string;
}

/** Runs made per call: a bulk trigger of more can take minutes on a small, busy machine. */
const SEED_BATCH = 250;

/**
 * The dashboard's runs page with many runs in the tenant, in two steps the runner calls (each
 * answers in seconds: a runner's HTTP call must not wait minutes for its headers):
 *
 * - `seed(n, expect)`: what the runs page counts now (`total`, and `going`: queued or running), and,
 *   if the tenant has fewer than `n` runs and the index already lists the `expect` runs of the
 *   previous batch, triggers the next batch of real runs of `simple` (at most SEED_BATCH, one bulk call).
 * - `measure(samples)`: loads the first page `samples` times, one after another.
 *
 * Both load the page signed in, the way a browser asks for it: through the engine's HTTP app over
 * the service binding (the same code `wrangler dev` serves at `/`).
 */
export async function seedRuns(env: DashboardEnv, n: number, expect: number): Promise<{ total: number; going: number; triggered: number }> {
  const now = counts(await load(env));
  if (now.total >= n || now.total < expect) return { ...now, triggered: 0 };
  const k = Math.min(SEED_BATCH, n - now.total);
  const reply = await env.SPINDLE.triggerMany(env.SPINDLE_API_TOKEN!, Array.from({ length: k }, () => ({ workflow: "simple", input: { Message: "Hello World" } })));
  if (!reply.ok) throw new Error(`triggerMany: ${reply.error.code}: ${reply.error.message}`);
  return { ...now, triggered: k };
}

export async function measureRunsPage(env: DashboardEnv, samples: number): Promise<{ runs: number; samples: number[] }> {
  const times: number[] = [];
  let html = "";
  for (let i = 0; i < samples; i++) {
    const t = Date.now();
    html = await load(env);
    times.push(Date.now() - t);
  }
  return { runs: counts(html).total, samples: times };
}

async function load(env: DashboardEnv): Promise<string> {
  const res = await env.SPINDLE.fetch("https://spindle.internal/", { headers: { cookie: `spindle_session=${env.SPINDLE_API_TOKEN}` } });
  const html = await res.text();
  if (!res.ok || !html.includes("</html>")) throw new Error(`the runs page answered ${res.status}: ${html.slice(0, 300)}`);
  return html;
}

/** What the runs page says it holds: every run, and those queued or running. */
function counts(html: string): { total: number; going: number } {
  const of = (label: string) => Number(new RegExp(`aria-label="(\\d+) ${label}"`).exec(html)?.[1] ?? "0");
  return { total: Number(/<strong>(\d+)<\/strong> matching/.exec(html)?.[1] ?? "0"), going: of("QUEUED") + of("RUNNING") };
}
