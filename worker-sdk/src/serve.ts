import { SpindleError } from "./errors.js";
import { executeAssignment } from "./execute.js";
import type { EngineCall, Reply, WorkerRequest, WorkerRegistration } from "./protocol.js";
import { ENGINE_CALLS_PATH, ENGINE_URL_HEADER } from "./protocol.js";
import type { Runnable } from "./runnable.js";
import { ReplayGuard, signRequest, verifyRequest } from "./signing.js";
import type {
  CheckpointReply,
  CheckpointRequest,
  CronCreate,
  CronFilter,
  CronList,
  CronView,
  EventFilter,
  EventList,
  EventPush,
  EventPushResult,
  EventView,
  FilterCreate,
  FilterList,
  FilterView,
  LogLine,
  RateLimitDuration,
  RateLimitView,
  RunFilter,
  RunList,
  RunView,
  ScheduleCreate,
  ScheduleFilter,
  ScheduleList,
  ScheduleView,
  TriggerRequest,
  TriggerResult,
  WatchResult,
} from "./protocol.js";
import { streamHeaders, streamPath, type DispatchRef, type EngineClient, type FilterListFilter } from "./client.js";

/** A standard fetch handler: a Worker's default export, or what any fetch-based server calls. */
export interface ServedWorker {
  fetch(request: Request): Promise<Response>;
}

/**
 * The worker as the engine reaches it over HTTPS: every request must be signed with the tenant's
 * key (see `signing.ts`); `describe` answers the registration, `execute` runs one attempt and
 * answers its outcome. The task's own calls to the engine (checkpoints, watching for
 * cancellation, children) go back signed to the URL the engine names in each request (or the
 * `url` given to `Spindle.init`).
 */
export function createServedWorker(
  registration: WorkerRegistration,
  runnables: ReadonlyMap<string, Runnable<unknown, unknown>>,
  token: () => string,
  engineUrl: () => string | undefined,
  fetcher?: typeof fetch,
): ServedWorker {
  const guard = new ReplayGuard();
  return {
    async fetch(request: Request): Promise<Response> {
      if (request.method === "GET") {
        return Response.json({ worker: registration.name, workflows: registration.workflows.map((w) => w.name) });
      }
      if (request.method !== "POST") return Response.json({ error: { code: "route.method_not_allowed", message: "POST or GET" } }, { status: 405, headers: { allow: "GET, POST" } });
      const secret = token();
      const body = await request.text();
      const verified = await verifyRequest(secret, request.headers, body, guard);
      if (!verified.ok) return Response.json({ error: { code: verified.code, message: verified.message } }, { status: 401 });
      let message: WorkerRequest;
      try {
        message = JSON.parse(body) as WorkerRequest;
      } catch {
        return Response.json({ error: { code: "request.invalid_json", message: "the body is not JSON" } }, { status: 400 });
      }
      if (message.op === "describe") return Response.json({ registration });
      if (message.op === "execute") {
        const base = engineUrl() ?? request.headers.get(ENGINE_URL_HEADER) ?? undefined;
        const client = new SignedEngineClient(base, secret, fetcher);
        return Response.json(await executeAssignment(runnables, message.assignment, () => client));
      }
      return Response.json({ error: { code: "request.invalid", message: "op: expected 'describe' or 'execute'" } }, { status: 400 });
    },
  };
}

/** The engine's operations a task needs, as signed calls over HTTPS. */
export class SignedEngineClient implements EngineClient {
  constructor(
    private readonly base: string | undefined,
    private readonly token: string,
    private readonly fetcher: typeof fetch = (input, init) => fetch(input, init),
  ) {}

  trigger(req: TriggerRequest) {
    return this.call<TriggerResult>("trigger", [req]);
  }
  triggerMany(reqs: TriggerRequest[]) {
    return this.call<TriggerResult[]>("triggerMany", [reqs]);
  }
  getRun(runId: string) {
    return this.call<RunView>("getRun", [runId]);
  }
  waitForRun(runId: string, waitMs: number) {
    return this.call<RunView>("waitForRun", [runId, waitMs]);
  }
  listRuns(filter: RunFilter) {
    return this.call<RunList>("listRuns", [filter]);
  }
  cancelRun(runId: string) {
    return this.call<RunView>("cancelRun", [runId]);
  }
  replayRun(runId: string) {
    return this.call<RunView>("replayRun", [runId]);
  }
  watchTask(runId: string, ref: DispatchRef) {
    return this.call<WatchResult>("watchTask", [runId, ref]);
  }
  checkpoint(runId: string, req: CheckpointRequest) {
    return this.call<CheckpointReply>("checkpoint", [runId, req]);
  }
  putStream(runId: string, ref: DispatchRef, first: number, chunks: string[]) {
    return this.call<{ offset: number }>("putStream", [runId, ref, first, chunks]);
  }
  async appendLogs(runId: string, ref: DispatchRef, first: number, lines: LogLine[]) {
    await this.call<null>("appendLogs", [runId, ref, first, lines]);
  }
  openStream(runId: string, lastEventId: string | null): Promise<Response> {
    if (!this.base) throw new SpindleError("config.missing_url", "no engine URL to read the stream from: pass { url } to Spindle.init()");
    return this.fetcher(`${this.base.replace(/\/+$/, "")}${streamPath(runId)}`, { headers: streamHeaders(this.token, lastEventId) });
  }
  pushEvent(event: EventPush) {
    return this.call<EventPushResult>("pushEvent", [event]);
  }
  pushEvents(events: EventPush[]) {
    return this.call<EventPushResult[]>("pushEvents", [events]);
  }
  listEvents(filter: EventFilter) {
    return this.call<EventList>("listEvents", [filter]);
  }
  getEvent(eventId: string) {
    return this.call<EventView>("getEvent", [eventId]);
  }
  createFilter(filter: FilterCreate) {
    return this.call<FilterView>("createFilter", [filter]);
  }
  listFilters(filter: FilterListFilter) {
    return this.call<FilterList>("listFilters", [filter]);
  }
  deleteFilter(id: string) {
    return this.call<FilterView>("deleteFilter", [id]);
  }
  createCron(workflow: string, cron: CronCreate) {
    return this.call<CronView>("createCron", [workflow, cron]);
  }
  listCrons(filter: CronFilter) {
    return this.call<CronList>("listCrons", [filter]);
  }
  deleteCron(id: string) {
    return this.call<CronView>("deleteCron", [id]);
  }
  createSchedule(workflow: string, schedule: ScheduleCreate) {
    return this.call<ScheduleView>("createSchedule", [workflow, schedule]);
  }
  listSchedules(filter: ScheduleFilter) {
    return this.call<ScheduleList>("listSchedules", [filter]);
  }
  getSchedule(id: string) {
    return this.call<ScheduleView>("getSchedule", [id]);
  }
  deleteSchedule(id: string) {
    return this.call<ScheduleView>("deleteSchedule", [id]);
  }
  upsertRateLimit(key: string, limit: number, duration: RateLimitDuration) {
    return this.call<RateLimitView>("upsertRateLimit", [key, limit, duration]);
  }
  listRateLimits() {
    return this.call<RateLimitView[]>("listRateLimits", []);
  }
  register(): Promise<{ workflows: string[] }> {
    throw new SpindleError("config.unsupported", "a served worker is registered by the engine: POST /api/v1/workers {url}");
  }

  private async call<T>(method: EngineCall["method"], args: unknown[]): Promise<T> {
    if (!this.base) throw new SpindleError("config.missing_url", "no engine URL to call back: pass { url } to Spindle.init()");
    const body = JSON.stringify({ method, args } satisfies EngineCall);
    const res = await this.fetcher(`${this.base.replace(/\/+$/, "")}${ENGINE_CALLS_PATH}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(await signRequest(this.token, body)) },
      body,
    });
    const reply = (await res.json().catch(() => null)) as Reply<T> | { error: { code: string; message: string } } | null;
    if (reply && "ok" in reply) {
      if (reply.ok) return reply.value;
      throw SpindleError.fromData(reply.error);
    }
    throw new SpindleError(reply?.error?.code ?? `http.${res.status}`, reply?.error?.message ?? `the engine answered HTTP ${res.status}`);
  }
}
