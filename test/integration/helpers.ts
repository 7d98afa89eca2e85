import { env, exports } from "cloudflare:workers";
import type { RunView } from "@spindle/worker-sdk/protocol";

export const TOKEN = "test-token-default";
export const OTHER_TOKEN = "test-token-other-tenant";

export interface ApiResponse<T = any> {
  status: number;
  body: T;
}

/** Calls the engine's HTTP API in-process, the way any HTTP client would. */
export async function api<T = any>(
  method: string,
  path: string,
  body?: unknown,
  options: { token?: string | null; rawBody?: string; contentType?: string } = {},
): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = {};
  const token = options.token === undefined ? TOKEN : options.token;
  if (token) headers.authorization = `Bearer ${token}`;
  let payload: string | undefined;
  if (options.rawBody !== undefined) payload = options.rawBody;
  else if (body !== undefined) payload = JSON.stringify(body);
  if (payload !== undefined) headers["content-type"] = options.contentType ?? "application/json";
  const res = await exports.default.fetch(`http://spindle.test${path}`, { method, headers, body: payload });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as T) : (null as T) };
}

export async function trigger(
  workflow: string,
  input: unknown,
  extra: { additionalMetadata?: Record<string, string>; priority?: number; token?: string } = {},
): Promise<string> {
  const res = await api<{ runId: string }>(
    "POST",
    `/api/v1/workflows/${workflow}/runs`,
    { input, additionalMetadata: extra.additionalMetadata, priority: extra.priority },
    { token: extra.token },
  );
  if (res.status !== 202) throw new Error(`trigger ${workflow}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.runId;
}

/** Long-polls the run's result until it has ended. */
export async function result(runId: string, options: { token?: string; timeoutMs?: number } = {}): Promise<RunView> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  for (;;) {
    const res = await api<RunView>("GET", `/api/v1/runs/${runId}/result?wait=10`, undefined, { token: options.token });
    if (res.status === 200) return res.body;
    if (res.status !== 202) throw new Error(`result ${runId}: ${res.status} ${JSON.stringify(res.body)}`);
    if (Date.now() > deadline) throw new Error(`run ${runId} still ${res.body.status} after ${options.timeoutMs ?? 30_000}ms`);
  }
}

export async function getRun(runId: string, token?: string): Promise<RunView> {
  const res = await api<RunView>("GET", `/api/v1/runs/${runId}`, undefined, { token });
  if (res.status !== 200) throw new Error(`get ${runId}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

export const task = (run: RunView, name: string) => {
  const t = run.tasks.find((x) => x.name === name);
  if (!t) throw new Error(`run ${run.runId} has no task ${name}`);
  return t;
};

export async function push(key: string, payload: unknown, extra: { scope?: string; additionalMetadata?: Record<string, string> } = {}): Promise<string> {
  const res = await api<{ eventId: string }>("POST", "/api/v1/events", { key, payload, ...extra });
  if (res.status !== 200) throw new Error(`push ${key}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.eventId;
}

export const runStub = (runId: string, tenant = "default") => env.RUNS.getByName(`run:${tenant}:${runId}`);

/** Waits until the run's task satisfies `check` (polling the HTTP API). */
export async function until(runId: string, check: (run: RunView) => boolean, timeoutMs = 10_000): Promise<RunView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const run = await getRun(runId);
    if (check(run)) return run;
    if (Date.now() > deadline) throw new Error(`run ${runId} never reached the expected state; last: ${JSON.stringify(run.tasks.map((t) => [t.name, t.status, t.evicted]))}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
