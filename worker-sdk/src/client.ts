import { SpindleError } from "./errors.js";
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
  ScheduleCreate,
  ScheduleFilter,
  ScheduleList,
  ScheduleView,
  RateLimitDuration,
  RateLimitView,
  LogLine,
  Reply,
  RunFilter,
  RunList,
  RunView,
  TriggerRequest,
  TriggerResult,
  WatchResult,
  WorkerRegistration,
} from "./protocol.js";
import { MAX_RPC_BYTES, valueLimitExceeded } from "./protocol.js";

/** A reference to one dispatch of a task, as the engine knows it. */
export interface DispatchRef {
  task: string;
  attempt: number;
  invocation: number;
}

/**
 * How the SDK talks to the engine: over a service binding (RPC, same account, fastest) or over
 * HTTPS with a bearer token (from anywhere). Both speak the same operations.
 */
export interface EngineClient {
  trigger(req: TriggerRequest): Promise<TriggerResult>;
  triggerMany(reqs: TriggerRequest[]): Promise<TriggerResult[]>;
  getRun(runId: string): Promise<RunView>;
  waitForRun(runId: string, waitMs: number): Promise<RunView>;
  listRuns(filter: RunFilter): Promise<RunList>;
  cancelRun(runId: string): Promise<RunView>;
  replayRun(runId: string): Promise<RunView>;
  watchTask(runId: string, ref: DispatchRef): Promise<WatchResult>;
  register(registration: WorkerRegistration): Promise<{ workflows: string[] }>;
  checkpoint(runId: string, req: CheckpointRequest): Promise<CheckpointReply>;
  pushEvent(event: EventPush): Promise<EventPushResult>;
  pushEvents(events: EventPush[]): Promise<EventPushResult[]>;
  listEvents(filter: EventFilter): Promise<EventList>;
  getEvent(eventId: string): Promise<EventView>;
  createFilter(filter: FilterCreate): Promise<FilterView>;
  listFilters(filter: FilterListFilter): Promise<FilterList>;
  deleteFilter(id: string): Promise<FilterView>;
  createCron(workflow: string, cron: CronCreate): Promise<CronView>;
  listCrons(filter: CronFilter): Promise<CronList>;
  deleteCron(id: string): Promise<CronView>;
  createSchedule(workflow: string, schedule: ScheduleCreate): Promise<ScheduleView>;
  listSchedules(filter: ScheduleFilter): Promise<ScheduleList>;
  getSchedule(id: string): Promise<ScheduleView>;
  deleteSchedule(id: string): Promise<ScheduleView>;
  upsertRateLimit(key: string, limit: number, duration: RateLimitDuration): Promise<RateLimitView>;
  listRateLimits(): Promise<RateLimitView[]>;
  /** Puts chunks on the run's stream: `first` is the place of `chunks[0]` among the chunks the attempt has put. */
  putStream(runId: string, ref: DispatchRef, first: number, chunks: string[]): Promise<{ offset: number }>;
  /** Sends log lines of a running dispatch as they are logged (its outcome carries them too). */
  appendLogs(runId: string, ref: DispatchRef, first: number, lines: LogLine[]): Promise<void>;
  /** Opens the run's stream (Server-Sent Events), after the chunk `lastEventId` if given. */
  openStream(runId: string, lastEventId: string | null): Promise<Response>;
}

export interface FilterListFilter {
  workflow?: string;
  limit?: number;
  cursor?: string;
}

/** The engine's RPC entrypoint as seen through a service binding. */
export interface EngineBinding {
  trigger(token: string, req: TriggerRequest): Promise<Reply<TriggerResult>>;
  triggerMany(token: string, reqs: TriggerRequest[]): Promise<Reply<TriggerResult[]>>;
  getRun(token: string, runId: string): Promise<Reply<RunView>>;
  waitForRun(token: string, runId: string, waitMs: number): Promise<Reply<RunView>>;
  listRuns(token: string, filter: RunFilter): Promise<Reply<RunList>>;
  cancelRun(token: string, runId: string): Promise<Reply<RunView>>;
  replayRun(token: string, runId: string): Promise<Reply<RunView>>;
  watchTask(token: string, runId: string, ref: DispatchRef): Promise<Reply<WatchResult>>;
  register(token: string, registration: WorkerRegistration): Promise<Reply<{ workflows: string[] }>>;
  checkpoint(token: string, runId: string, req: CheckpointRequest): Promise<Reply<CheckpointReply>>;
  pushEvent(token: string, event: EventPush): Promise<Reply<EventPushResult>>;
  pushEvents(token: string, events: EventPush[]): Promise<Reply<EventPushResult[]>>;
  listEvents(token: string, filter: EventFilter): Promise<Reply<EventList>>;
  getEvent(token: string, eventId: string): Promise<Reply<EventView>>;
  createFilter(token: string, filter: FilterCreate): Promise<Reply<FilterView>>;
  listFilters(token: string, filter: FilterListFilter): Promise<Reply<FilterList>>;
  deleteFilter(token: string, id: string): Promise<Reply<FilterView>>;
  createCron(token: string, workflow: string, cron: CronCreate): Promise<Reply<CronView>>;
  listCrons(token: string, filter: CronFilter): Promise<Reply<CronList>>;
  deleteCron(token: string, id: string): Promise<Reply<CronView>>;
  createSchedule(token: string, workflow: string, schedule: ScheduleCreate): Promise<Reply<ScheduleView>>;
  listSchedules(token: string, filter: ScheduleFilter): Promise<Reply<ScheduleList>>;
  getSchedule(token: string, id: string): Promise<Reply<ScheduleView>>;
  deleteSchedule(token: string, id: string): Promise<Reply<ScheduleView>>;
  upsertRateLimit(token: string, key: string, limit: number, duration: RateLimitDuration): Promise<Reply<RateLimitView>>;
  listRateLimits(token: string): Promise<Reply<RateLimitView[]>>;
  putStream(token: string, runId: string, ref: DispatchRef, first: number, chunks: string[]): Promise<Reply<{ offset: number }>>;
  appendLogs(token: string, runId: string, ref: DispatchRef, first: number, lines: LogLine[]): Promise<Reply<null>>;
  /** The engine's HTTP API, through the binding. */
  fetch(input: string, init?: RequestInit): Promise<Response>;
}

/**
 * Refuses, with a typed error, what the RPC could not carry or the engine would refuse: a value
 * nested deeper than MAX_VALUE_DEPTH (serializing it could overflow the stack) or over Cloudflare's
 * 32 MiB RPC limit.
 */
function sendable(value: unknown): void {
  const exceeded = valueLimitExceeded(value, MAX_RPC_BYTES);
  if (exceeded) throw new SpindleError(exceeded.code, exceeded.message);
}

function unwrap<T>(reply: Reply<T>): T {
  if (reply.ok) return reply.value;
  throw SpindleError.fromData(reply.error);
}

export class RpcClient implements EngineClient {
  constructor(
    private readonly binding: EngineBinding,
    private readonly token: string,
  ) {}

  async trigger(req: TriggerRequest) {
    sendable(req);
    return unwrap(await this.binding.trigger(this.token, req));
  }
  async triggerMany(reqs: TriggerRequest[]) {
    sendable(reqs);
    return unwrap(await this.binding.triggerMany(this.token, reqs));
  }
  async getRun(runId: string) {
    return unwrap(await this.binding.getRun(this.token, runId));
  }
  async waitForRun(runId: string, waitMs: number) {
    return unwrap(await this.binding.waitForRun(this.token, runId, waitMs));
  }
  async listRuns(filter: RunFilter) {
    return unwrap(await this.binding.listRuns(this.token, filter));
  }
  async cancelRun(runId: string) {
    return unwrap(await this.binding.cancelRun(this.token, runId));
  }
  async replayRun(runId: string) {
    return unwrap(await this.binding.replayRun(this.token, runId));
  }
  async watchTask(runId: string, ref: DispatchRef) {
    return unwrap(await this.binding.watchTask(this.token, runId, ref));
  }
  async register(registration: WorkerRegistration) {
    sendable(registration);
    return unwrap(await this.binding.register(this.token, registration));
  }
  async checkpoint(runId: string, req: CheckpointRequest) {
    sendable(req);
    return unwrap(await this.binding.checkpoint(this.token, runId, req));
  }
  async pushEvent(event: EventPush) {
    sendable(event);
    return unwrap(await this.binding.pushEvent(this.token, event));
  }
  async pushEvents(events: EventPush[]) {
    sendable(events);
    return unwrap(await this.binding.pushEvents(this.token, events));
  }
  async listEvents(filter: EventFilter) {
    return unwrap(await this.binding.listEvents(this.token, filter));
  }
  async getEvent(eventId: string) {
    return unwrap(await this.binding.getEvent(this.token, eventId));
  }
  async createFilter(filter: FilterCreate) {
    sendable(filter);
    return unwrap(await this.binding.createFilter(this.token, filter));
  }
  async listFilters(filter: FilterListFilter) {
    return unwrap(await this.binding.listFilters(this.token, filter));
  }
  async deleteFilter(id: string) {
    return unwrap(await this.binding.deleteFilter(this.token, id));
  }
  async createCron(workflow: string, cron: CronCreate) {
    sendable(cron);
    return unwrap(await this.binding.createCron(this.token, workflow, cron));
  }
  async listCrons(filter: CronFilter) {
    return unwrap(await this.binding.listCrons(this.token, filter));
  }
  async deleteCron(id: string) {
    return unwrap(await this.binding.deleteCron(this.token, id));
  }
  async createSchedule(workflow: string, schedule: ScheduleCreate) {
    sendable(schedule);
    return unwrap(await this.binding.createSchedule(this.token, workflow, schedule));
  }
  async listSchedules(filter: ScheduleFilter) {
    return unwrap(await this.binding.listSchedules(this.token, filter));
  }
  async getSchedule(id: string) {
    return unwrap(await this.binding.getSchedule(this.token, id));
  }
  async deleteSchedule(id: string) {
    return unwrap(await this.binding.deleteSchedule(this.token, id));
  }
  async upsertRateLimit(key: string, limit: number, duration: RateLimitDuration) {
    return unwrap(await this.binding.upsertRateLimit(this.token, key, limit, duration));
  }
  async listRateLimits() {
    return unwrap(await this.binding.listRateLimits(this.token));
  }
  async putStream(runId: string, ref: DispatchRef, first: number, chunks: string[]) {
    return unwrap(await this.binding.putStream(this.token, runId, ref, first, chunks));
  }
  async appendLogs(runId: string, ref: DispatchRef, first: number, lines: LogLine[]) {
    unwrap(await this.binding.appendLogs(this.token, runId, ref, first, lines));
  }
  openStream(runId: string, lastEventId: string | null) {
    return this.binding.fetch(`https://spindle.internal${streamPath(runId)}`, { headers: streamHeaders(this.token, lastEventId) });
  }
}

export const streamPath = (runId: string) => `/api/v1/runs/${encodeURIComponent(runId)}/stream`;

export function streamHeaders(token: string, lastEventId: string | null): Record<string, string> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: "text/event-stream" };
  if (lastEventId !== null) headers["last-event-id"] = lastEventId;
  return headers;
}

/** The same operations over the engine's HTTP API. Runs tasks' children only through a binding. */
export class HttpClient implements EngineClient {
  private readonly base: string;

  constructor(
    url: string,
    private readonly token: string,
    private readonly fetcher: typeof fetch = (input, init) => fetch(input, init),
  ) {
    this.base = url.replace(/\/+$/, "");
  }

  trigger(req: TriggerRequest): Promise<TriggerResult> {
    if (req.parent) {
      throw new SpindleError("config.unsupported", "child runs are spawned over the SPINDLE service binding, not HTTPS");
    }
    return this.send(
      "POST",
      `/api/v1/workflows/${encodeURIComponent(req.workflow)}/runs`,
      { input: req.input, additionalMetadata: req.additionalMetadata, priority: req.priority },
      req.idempotencyKey,
    );
  }
  async triggerMany(reqs: TriggerRequest[]): Promise<TriggerResult[]> {
    if (reqs.length === 0) return [];
    if (reqs.some((r) => r.parent)) {
      throw new SpindleError("config.unsupported", "child runs are spawned over the SPINDLE service binding, not HTTPS");
    }
    const runs = reqs.map((r) => ({
      workflow: r.workflow,
      input: r.input,
      additionalMetadata: r.additionalMetadata,
      priority: r.priority,
      idempotencyKey: r.idempotencyKey,
    }));
    return (await this.send<{ runs: TriggerResult[] }>("POST", "/api/v1/runs/bulk", { runs })).runs;
  }
  getRun(runId: string): Promise<RunView> {
    return this.send("GET", `/api/v1/runs/${encodeURIComponent(runId)}`);
  }
  waitForRun(runId: string, waitMs: number): Promise<RunView> {
    return this.send("GET", `/api/v1/runs/${encodeURIComponent(runId)}/result?wait=${Math.ceil(waitMs / 1000)}`);
  }
  listRuns(filter: RunFilter): Promise<RunList> {
    const q = new URLSearchParams();
    if (filter.workflow) q.set("workflow", filter.workflow);
    if (filter.status?.length) q.set("status", filter.status.join(","));
    if (filter.since) q.set("since", filter.since);
    if (filter.until) q.set("until", filter.until);
    if (filter.limit) q.set("limit", String(filter.limit));
    if (filter.cursor) q.set("cursor", filter.cursor);
    for (const [k, v] of Object.entries(filter.metadata ?? {})) q.append("metadata", `${k}:${v}`);
    return this.send("GET", `/api/v1/runs?${q}`);
  }
  cancelRun(runId: string): Promise<RunView> {
    return this.send("POST", `/api/v1/runs/${encodeURIComponent(runId)}/cancel`);
  }
  replayRun(runId: string): Promise<RunView> {
    return this.send("POST", `/api/v1/runs/${encodeURIComponent(runId)}/replay`);
  }
  watchTask(): Promise<WatchResult> {
    // Cancellation reaches HTTPS-connected code through its run's status; nothing to watch here.
    return Promise.resolve({ reason: "superseded" });
  }
  register(): Promise<{ workflows: string[] }> {
    throw new SpindleError("config.unsupported", "a worker reached over HTTPS is registered with POST /api/v1/workers {url} (SpindleClient.workers.register); see the README");
  }
  checkpoint(): Promise<CheckpointReply> {
    throw new SpindleError("config.unsupported", "durable tasks run behind a service binding to the engine");
  }
  pushEvent(e: EventPush): Promise<EventPushResult> {
    const body = { key: e.key, payload: e.payload, additionalMetadata: e.additionalMetadata, scope: e.scope };
    return this.send("POST", "/api/v1/events", body, e.idempotencyKey);
  }
  async pushEvents(events: EventPush[]): Promise<EventPushResult[]> {
    if (events.length === 0) return [];
    return (await this.send<{ events: EventPushResult[] }>("POST", "/api/v1/events/bulk", { events })).events;
  }
  listEvents(filter: EventFilter): Promise<EventList> {
    return this.send("GET", `/api/v1/events${query(filter)}`);
  }
  getEvent(eventId: string): Promise<EventView> {
    return this.send("GET", `/api/v1/events/${encodeURIComponent(eventId)}`);
  }
  async createFilter(filter: FilterCreate): Promise<FilterView> {
    return this.send("POST", "/api/v1/filters", filter);
  }
  listFilters(filter: FilterListFilter): Promise<FilterList> {
    return this.send("GET", `/api/v1/filters${query(filter)}`);
  }
  deleteFilter(id: string): Promise<FilterView> {
    return this.send("DELETE", `/api/v1/filters/${encodeURIComponent(id)}`);
  }
  async createCron(workflow: string, cron: CronCreate): Promise<CronView> {
    const created = await this.send<{ id: string }>("POST", `/api/v1/workflows/${encodeURIComponent(workflow)}/crons`, cron);
    return this.send("GET", `/api/v1/crons/${encodeURIComponent(created.id)}`);
  }
  listCrons(filter: CronFilter): Promise<CronList> {
    return this.send("GET", `/api/v1/crons${query(filter)}`);
  }
  deleteCron(id: string): Promise<CronView> {
    return this.send("DELETE", `/api/v1/crons/${encodeURIComponent(id)}`);
  }
  async createSchedule(workflow: string, schedule: ScheduleCreate): Promise<ScheduleView> {
    const created = await this.send<{ scheduleId: string }>("POST", `/api/v1/workflows/${encodeURIComponent(workflow)}/schedules`, schedule);
    return this.getSchedule(created.scheduleId);
  }
  listSchedules(filter: ScheduleFilter): Promise<ScheduleList> {
    return this.send("GET", `/api/v1/schedules${query(filter)}`);
  }
  getSchedule(id: string): Promise<ScheduleView> {
    return this.send("GET", `/api/v1/schedules/${encodeURIComponent(id)}`);
  }
  deleteSchedule(id: string): Promise<ScheduleView> {
    return this.send("DELETE", `/api/v1/schedules/${encodeURIComponent(id)}`);
  }
  async upsertRateLimit(key: string, limit: number, duration: RateLimitDuration): Promise<RateLimitView> {
    return this.send("PUT", `/api/v1/rate-limits/${encodeURIComponent(key)}`, { limit, duration });
  }
  async listRateLimits(): Promise<RateLimitView[]> {
    return (await this.send<{ rateLimits: RateLimitView[] }>("GET", "/api/v1/rate-limits")).rateLimits;
  }
  putStream(): Promise<{ offset: number }> {
    throw new SpindleError("config.unsupported", "tasks put to their run's stream over the SPINDLE service binding, not HTTPS");
  }
  appendLogs(): Promise<void> {
    // Without a binding, a task's log lines reach the engine with its outcome.
    return Promise.resolve();
  }
  openStream(runId: string, lastEventId: string | null): Promise<Response> {
    return this.fetcher(`${this.base}${streamPath(runId)}`, { headers: streamHeaders(this.token, lastEventId) });
  }

  /** One call of the HTTP API; an answer that is not 2xx becomes a `SpindleError` with the engine's code. */
  async send<T>(method: string, path: string, body?: unknown, idempotencyKey?: string): Promise<T> {
    // The size limit is the engine's to set (it answers 413); nesting would overflow JSON.stringify.
    if (body !== undefined) {
      const exceeded = valueLimitExceeded(body, Number.POSITIVE_INFINITY);
      if (exceeded) throw new SpindleError(exceeded.code, exceeded.message);
    }
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (idempotencyKey !== undefined) headers["idempotency-key"] = idempotencyKey;
    let res: Response;
    try {
      res = await this.fetcher(`${this.base}${path}`, { method, headers, body: body !== undefined ? JSON.stringify(body) : undefined });
    } catch (err) {
      throw new SpindleError("engine.unreachable", `could not reach the engine at ${this.base}: ${(err as Error).message}`, { cause: err });
    }
    const payload = (await res.json().catch(() => null)) as { error?: { code: string; message: string; fields?: [] } } | null;
    if (!res.ok) {
      const error = payload?.error ?? { code: `http.${res.status}`, message: `HTTP ${res.status}` };
      throw new SpindleError(error.code, error.message, { fields: error.fields });
    }
    return payload as T;
  }
}

/** A query string of the defined fields (`?a=1&b=x`), or nothing. */
function query(fields: object): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  const text = q.toString();
  return text ? `?${text}` : "";
}
