import type { Assignment, TaskOutcome, WorkerRegistration, WorkerRequest } from "@spindle/worker-sdk/protocol";
import { ENGINE_URL_HEADER, signRequest } from "@spindle/worker-sdk/protocol";
import { SpindleError } from "../core/errors";
import { tokenOfTenant } from "../core/tenants";
import type { Env } from "../env";

/**
 * The engine's side of the HTTPS transport: a signed POST to a worker served with
 * `spindle.serve()`. A refusal (the worker does not accept the signature: it holds another
 * tenant's token) and a failure to reach it are told apart, so the registry can say which.
 */
export class WorkerCallError extends SpindleError {
  constructor(
    readonly kind: "refused" | "unreachable",
    message: string,
  ) {
    super(kind === "refused" ? "worker.refused" : "worker.unreachable", message);
  }
}

export interface HttpsEndpoint {
  url: string;
  /** Where the worker calls the engine back (the origin it was registered through). */
  engineUrl: string | null;
}

async function call<T>(env: Env, tenant: string, endpoint: HttpsEndpoint, message: WorkerRequest, timeoutMs: number): Promise<T> {
  const token = tokenOfTenant(env, tenant);
  if (!token) throw new WorkerCallError("refused", `tenant '${tenant}' has no token to sign with`);
  const body = JSON.stringify(message);
  const headers: Record<string, string> = { "content-type": "application/json", ...(await signRequest(token, body)) };
  if (endpoint.engineUrl) headers[ENGINE_URL_HEADER] = endpoint.engineUrl;
  // HTTPS_OUTBOUND, when bound, carries these requests instead of the public internet (e.g. a
  // worker reached through a tunnel or, in the workerd tests, the served worker's entrypoint).
  const outbound = env.HTTPS_OUTBOUND ?? { fetch: (input: string, init: RequestInit) => fetch(input, init) };
  let res: Response;
  try {
    res = await outbound.fetch(endpoint.url, { method: "POST", headers, body, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw new WorkerCallError("unreachable", `could not reach ${endpoint.url}: ${(err as Error).message}`);
  }
  const text = await res.text();
  let payload: unknown = null;
  try {
    payload = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON: reported below */
  }
  if (res.status === 401 || res.status === 403) {
    const detail = (payload as { error?: { message?: string } } | null)?.error?.message ?? `HTTP ${res.status}`;
    throw new WorkerCallError("refused", `the worker at ${endpoint.url} refused the engine's signature (${detail}): its SPINDLE_API_TOKEN is not this tenant's token`);
  }
  if (!res.ok || payload === null) {
    throw new WorkerCallError("unreachable", `the worker at ${endpoint.url} answered HTTP ${res.status}${payload === null ? " without JSON" : ""}`);
  }
  return payload as T;
}

export const DESCRIBE_TIMEOUT_MS = 5_000;

export async function describeOverHttps(env: Env, tenant: string, endpoint: HttpsEndpoint): Promise<WorkerRegistration> {
  const reply = await call<{ registration?: WorkerRegistration }>(env, tenant, endpoint, { op: "describe" }, DESCRIBE_TIMEOUT_MS);
  if (!reply.registration) throw new WorkerCallError("unreachable", `the worker at ${endpoint.url} answered describe without a registration`);
  return reply.registration;
}

/** Runs one attempt; bounded by the attempt's execution timeout plus a margin for the trip. */
export function executeOverHttps(env: Env, tenant: string, endpoint: HttpsEndpoint, assignment: Assignment): Promise<TaskOutcome> {
  return call<TaskOutcome>(env, tenant, endpoint, { op: "execute", assignment }, assignment.executionTimeoutMs + 30_000);
}
