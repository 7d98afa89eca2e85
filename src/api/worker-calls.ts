import type {
  CheckpointRequest,
  CronCreate,
  CronFilter,
  EngineCall,
  EventFilter,
  EventPush,
  FilterCreate,
  LogLine,
  RateLimitDuration,
  Reply,
  RunFilter,
  ScheduleCreate,
  ScheduleFilter,
  TriggerRequest,
} from "@spindle/worker-sdk/protocol";
import { ReplayGuard, SIGNATURE_HEADERS, valueLimitExceeded, verifyRequest } from "@spindle/worker-sdk/protocol";
import { SpindleError, toErrorData } from "../core/errors";
import { tenantForTokenHash, tokenOfTenant } from "../core/tenants";
import type { Env } from "../env";
import type { DispatchRef } from "../run/workflow-run";
import { maxBodyBytes } from "./body-limits";
import { EngineService } from "./service";

/** Nonces this isolate has accepted within the signature window. */
const guard = new ReplayGuard();

const METHODS: Record<EngineCall["method"], (s: EngineService, args: unknown[]) => Promise<unknown>> = {
  trigger: (s, [req]) => s.trigger(req as TriggerRequest),
  triggerMany: (s, [reqs]) => s.triggerMany(reqs as TriggerRequest[]),
  getRun: (s, [runId]) => s.getRun(runId as string),
  waitForRun: (s, [runId, waitMs]) => s.waitForRun(runId as string, waitMs as number),
  listRuns: (s, [filter]) => s.listRuns(filter as RunFilter),
  cancelRun: (s, [runId]) => s.cancelRun(runId as string),
  replayRun: (s, [runId]) => s.replayRun(runId as string),
  watchTask: (s, [runId, ref]) => s.watchTask(runId as string, ref as DispatchRef),
  checkpoint: (s, [runId, req]) => s.checkpoint(runId as string, req as CheckpointRequest),
  putStream: (s, [runId, ref, first, chunks]) => s.putStream(runId as string, ref as DispatchRef, first as number, chunks as string[]),
  appendLogs: async (s, [runId, ref, first, lines]) => (await s.appendLogs(runId as string, ref as DispatchRef, first as number, lines as LogLine[]), null),
  pushEvent: (s, [event]) => s.pushEvent(event as EventPush),
  pushEvents: (s, [events]) => s.pushEvents(events as EventPush[]),
  listEvents: (s, [filter]) => s.triggers.listEvents((filter ?? {}) as EventFilter),
  getEvent: (s, [eventId]) => s.triggers.getEvent(eventId as string),
  createFilter: (s, [filter]) => s.triggers.createFilter(filter as FilterCreate),
  listFilters: (s, [filter]) => s.triggers.listFilters((filter ?? {}) as { workflow?: string; limit?: number; cursor?: string }),
  deleteFilter: (s, [id]) => s.triggers.deleteFilter(id as string),
  createCron: (s, [workflow, cron]) => s.triggers.createCron(workflow as string, cron as CronCreate),
  listCrons: (s, [filter]) => s.triggers.listCrons((filter ?? {}) as CronFilter),
  deleteCron: (s, [id]) => s.triggers.deleteCron(id as string),
  createSchedule: (s, [workflow, schedule]) => s.triggers.createSchedule(workflow as string, schedule as ScheduleCreate),
  listSchedules: (s, [filter]) => s.triggers.listSchedules((filter ?? {}) as ScheduleFilter),
  getSchedule: (s, [id]) => s.triggers.getSchedule(id as string),
  deleteSchedule: (s, [id]) => s.triggers.deleteSchedule(id as string),
  upsertRateLimit: (s, [key, limit, duration]) => s.upsertRateLimit(key as string, limit as number, duration as RateLimitDuration),
  listRateLimits: (s) => s.rateLimits(),
};

/**
 * A call from a worker served over HTTPS: what the Engine entrypoint does for a bound worker,
 * authenticated by the request's signature (the tenant is the one whose key signed it) instead of
 * a bearer token. Answers a `Reply` like the RPC does; a bad signature is a 401.
 */
export async function workerCall(env: Env, request: Request): Promise<Response> {
  const body = await request.text();
  if (body.length > maxBodyBytes(env)) return Response.json({ error: { code: "request.too_large", message: "the call is over the body limit" } }, { status: 413 });
  const keyHash = request.headers.get(SIGNATURE_HEADERS.key) ?? "";
  const tenant = await tenantForTokenHash(env, keyHash);
  const token = tenant ? tokenOfTenant(env, tenant) : null;
  if (!tenant || !token) return Response.json({ error: { code: "signature.invalid", message: "the request is not signed with a tenant's key" } }, { status: 401 });
  const verified = await verifyRequest(token, request.headers, body, guard);
  if (!verified.ok) return Response.json({ error: { code: verified.code, message: verified.message } }, { status: 401 });
  let reply: Reply<unknown>;
  try {
    const call = JSON.parse(body) as EngineCall;
    const run = Object.hasOwn(METHODS, call?.method) ? METHODS[call.method] : undefined;
    if (!run || !Array.isArray(call.args)) throw new SpindleError("request.invalid", "method: not an engine call");
    const exceeded = valueLimitExceeded(call.args, maxBodyBytes(env));
    if (exceeded) throw new SpindleError(exceeded.code, exceeded.message);
    reply = { ok: true, value: await run(new EngineService(env, tenant), call.args) };
  } catch (err) {
    reply = { ok: false, error: toErrorData(err instanceof SyntaxError ? new SpindleError("request.invalid_json", "the body is not JSON") : err) };
  }
  return Response.json(reply);
}
