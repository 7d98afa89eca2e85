import { WorkerEntrypoint } from "cloudflare:workers";
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
} from "@spindle/worker-sdk/protocol";
import { valueLimitExceeded } from "@spindle/worker-sdk/protocol";
import { createApp } from "../api/app";
import { maxBodyBytes } from "../api/body-limits";
import { SpindleError, toErrorData } from "../core/errors";
import { tenantForToken } from "../core/tenants";
import { EngineService } from "../api/service";
import type { Env } from "../env";
import type { RegisterReply } from "../registry/registry";
import type { DispatchRef } from "../run/workflow-run";

/**
 * The engine's RPC entrypoint: what the SDK calls over a service binding. Every method takes the
 * caller's API token (the tenant comes from it) and answers with a `Reply`: errors cross the
 * boundary as data with a code, never as thrown classes.
 */
export class Engine extends WorkerEntrypoint<Env> {
  trigger(token: string, req: TriggerRequest): Promise<Reply<TriggerResult>> {
    return this.call(token, (s) => s.trigger(req), req);
  }

  triggerMany(token: string, reqs: TriggerRequest[]): Promise<Reply<TriggerResult[]>> {
    return this.call(token, (s) => s.triggerMany(reqs), reqs);
  }

  getRun(token: string, runId: string): Promise<Reply<RunView>> {
    return this.call(token, (s) => s.getRun(runId));
  }

  waitForRun(token: string, runId: string, waitMs: number): Promise<Reply<RunView>> {
    return this.call(token, (s) => s.waitForRun(runId, waitMs));
  }

  listRuns(token: string, filter: RunFilter): Promise<Reply<RunList>> {
    return this.call(token, (s) => s.listRuns(filter), filter);
  }

  cancelRun(token: string, runId: string): Promise<Reply<RunView>> {
    return this.call(token, (s) => s.cancelRun(runId));
  }

  replayRun(token: string, runId: string): Promise<Reply<RunView>> {
    return this.call(token, (s) => s.replayRun(runId));
  }

  watchTask(token: string, runId: string, ref: DispatchRef): Promise<Reply<WatchResult>> {
    return this.call(token, (s) => s.watchTask(runId, ref));
  }

  checkpoint(token: string, runId: string, req: CheckpointRequest): Promise<Reply<CheckpointReply>> {
    return this.call(token, (s) => s.checkpoint(runId, req), req);
  }

  pushEvent(token: string, event: EventPush): Promise<Reply<EventPushResult>> {
    return this.call(token, (s) => s.pushEvent(event), event);
  }

  pushEvents(token: string, events: EventPush[]): Promise<Reply<EventPushResult[]>> {
    return this.call(token, (s) => s.pushEvents(events), events);
  }

  listEvents(token: string, filter: EventFilter): Promise<Reply<EventList>> {
    return this.call(token, (s) => s.triggers.listEvents(filter ?? {}), filter);
  }

  getEvent(token: string, eventId: string): Promise<Reply<EventView>> {
    return this.call(token, (s) => s.triggers.getEvent(eventId));
  }

  createFilter(token: string, filter: FilterCreate): Promise<Reply<FilterView>> {
    return this.call(token, (s) => s.triggers.createFilter(filter), filter);
  }

  listFilters(token: string, filter: { workflow?: string; limit?: number; cursor?: string }): Promise<Reply<FilterList>> {
    return this.call(token, (s) => s.triggers.listFilters(filter ?? {}), filter);
  }

  deleteFilter(token: string, id: string): Promise<Reply<FilterView>> {
    return this.call(token, (s) => s.triggers.deleteFilter(id));
  }

  createCron(token: string, workflow: string, cron: CronCreate): Promise<Reply<CronView>> {
    return this.call(token, (s) => s.triggers.createCron(workflow, cron), cron);
  }

  listCrons(token: string, filter: CronFilter): Promise<Reply<CronList>> {
    return this.call(token, (s) => s.triggers.listCrons(filter ?? {}), filter);
  }

  deleteCron(token: string, id: string): Promise<Reply<CronView>> {
    return this.call(token, (s) => s.triggers.deleteCron(id));
  }

  createSchedule(token: string, workflow: string, schedule: ScheduleCreate): Promise<Reply<ScheduleView>> {
    return this.call(token, (s) => s.triggers.createSchedule(workflow, schedule), schedule);
  }

  listSchedules(token: string, filter: ScheduleFilter): Promise<Reply<ScheduleList>> {
    return this.call(token, (s) => s.triggers.listSchedules(filter ?? {}), filter);
  }

  getSchedule(token: string, id: string): Promise<Reply<ScheduleView>> {
    return this.call(token, (s) => s.triggers.getSchedule(id));
  }

  deleteSchedule(token: string, id: string): Promise<Reply<ScheduleView>> {
    return this.call(token, (s) => s.triggers.deleteSchedule(id));
  }

  upsertRateLimit(token: string, key: string, limit: number, duration: RateLimitDuration): Promise<Reply<RateLimitView>> {
    return this.call(token, (s) => s.upsertRateLimit(key, limit, duration), key);
  }

  listRateLimits(token: string): Promise<Reply<RateLimitView[]>> {
    return this.call(token, (s) => s.rateLimits());
  }

  /** A task puts chunks on its run's stream; `first` is the place of `chunks[0]` among its attempt's chunks. */
  putStream(token: string, runId: string, ref: DispatchRef, first: number, chunks: string[]): Promise<Reply<{ offset: number }>> {
    return this.call(token, (s) => s.putStream(runId, ref, first, chunks), chunks);
  }

  /** Log lines of a running dispatch, as they are logged; `first` is the place of `lines[0]` among its lines. */
  appendLogs(token: string, runId: string, ref: DispatchRef, first: number, lines: LogLine[]): Promise<Reply<null>> {
    return this.call(token, async (s) => (await s.appendLogs(runId, ref, first, lines), null), lines);
  }

  /**
   * The HTTP API over the binding, for what a reply cannot carry: a run's stream (Server-Sent
   * Events) is read through here by `runRef.stream()`.
   */
  override fetch(request: Request): Promise<Response> {
    return Promise.resolve(app().fetch(request, this.env, this.ctx));
  }

  register(token: string, registration: WorkerRegistration): Promise<Reply<RegisterReply>> {
    return this.call(token, (s) => s.register(registration), registration);
  }

  /** `values`: what the caller sent, refused if it nests too deep or is over the body limit. */
  private async call<T>(token: string, fn: (service: EngineService) => Promise<T>, ...values: unknown[]): Promise<Reply<T>> {
    try {
      for (const value of values) {
        const exceeded = valueLimitExceeded(value, maxBodyBytes(this.env));
        if (exceeded) throw new SpindleError(exceeded.code, exceeded.message);
      }
      const tenant = await tenantForToken(this.env, token);
      if (!tenant) throw new SpindleError("auth.invalid_token", "the API token is not valid");
      return { ok: true, value: await fn(new EngineService(this.env, tenant)) };
    } catch (err) {
      return { ok: false, error: toErrorData(err) };
    }
  }
}

let shared: ReturnType<typeof createApp> | undefined;
const app = () => (shared ??= createApp());
