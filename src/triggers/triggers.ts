import { DurableObject } from "cloudflare:workers";
import type { CronView, FilterSpec, FilterView, Reply, ScheduleFilter, ScheduleView } from "@spindle/worker-sdk/protocol";
import { clock, iso } from "../core/clock";
import { SpindleError, toErrorData } from "../core/errors";
import { deterministicUlid, ulid } from "../core/ids";
import { dueTicks, nextTick, type StoredFilter } from "../core/triggers";
import type { Env } from "../env";
import { EngineService } from "../api/service";
import { migrate } from "../storage/migrate";
import { CronStore, cronView, type CronRecord } from "./cron-store";
import { FilterStore } from "./filter-store";
import { ScheduleStore, scheduleView, type ScheduleRecord } from "./schedule-store";
import { TRIGGER_MIGRATIONS } from "./schema";
import { WebhookStore, type WebhookConfig } from "./webhook-store";

/** A tick that runs this long after its time (or after another tick was missed) is marked late. */
export const CRON_LATE_AFTER_MS = 60_000;
/** A schedule or tick whose run could not be created (the engine was unreachable) is tried again after this. */
export const TRIGGER_RETRY_MS = 5_000;

/** What a worker's registration declares: crons from `onCrons`, filters from `defaultFilters`. */
export interface DeclaredTriggers {
  crons: { workflow: string; expression: string; input: unknown }[];
  filters: { id: string; workflow: string; spec: FilterSpec }[];
}

const ok = <T>(value: T): Reply<T> => ({ ok: true, value });
const fail = (err: unknown): Reply<never> => ({ ok: false, error: toErrorData(err) });

/**
 * A tenant's triggers besides direct calls: event filters, crons, one-time schedules and webhook
 * receivers. Every timer is this object's alarm, pointed by `arm()` at the earliest tick or
 * schedule after every write. Firing is exactly-once by construction: the run of a tick or a
 * schedule has an id derived from what it fires (cron id and tick time; the schedule's run id,
 * chosen when it was created), and creating a run is idempotent per id; the row is moved on only
 * after the run exists, and only if it still owes what was fired. So an alarm that fires twice, or
 * dies between creating the run and recording it, starts the run once.
 */
export class Triggers extends DurableObject<Env> {
  private readonly filters: FilterStore;
  private readonly crons: CronStore;
  private readonly schedules: ScheduleStore;
  private readonly webhooks: WebhookStore;
  /** The firing in progress: a delete waits for it, so nothing it fires starts after the delete answers. */
  private firing: Promise<void> = Promise.resolve();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const sql = ctx.storage.sql;
    this.filters = new FilterStore(sql);
    this.crons = new CronStore(sql);
    this.schedules = new ScheduleStore(sql);
    this.webhooks = new WebhookStore(sql);
    void ctx.blockConcurrencyWhile(async () => {
      migrate(ctx.storage, TRIGGER_MIGRATIONS);
    });
  }

  // --- filters -------------------------------------------------------------------------------

  async createFilter(tenant: string, id: string, workflow: string, spec: FilterSpec): Promise<FilterView> {
    this.ensureConfig(tenant);
    this.filters.insert(id, workflow, spec, clock.now());
    return this.filters.get(id)!;
  }

  async deleteFilter(id: string): Promise<Reply<FilterView>> {
    const found = this.filters.get(id);
    if (!found) return fail(new SpindleError("filter.not_found", `filter '${id}' was not found`));
    if (found.declared) return fail(new SpindleError("filter.conflict", `filter '${id}' is declared by workflow '${found.workflow}' (defaultFilters); remove it from the code`));
    this.filters.delete(id);
    return ok(found);
  }

  async listFilters(workflow: string | undefined, limit: number, cursor: string | undefined): Promise<FilterView[]> {
    return this.filters.list(workflow, limit, cursor);
  }

  async filtersFor(workflows: string[]): Promise<Record<string, StoredFilter[]>> {
    return this.filters.forWorkflows(workflows);
  }

  // --- crons ---------------------------------------------------------------------------------

  /** `cron` has been checked (expression, zone, input); its next tick is computed here. */
  async createCron(tenant: string, cron: Omit<CronRecord, "nextAt" | "lastRunAt" | "createdAt">): Promise<Reply<CronView>> {
    this.ensureConfig(tenant);
    const now = clock.now();
    const record: CronRecord = { ...cron, nextAt: nextTick(cron.expression, cron.timezone, now), lastRunAt: null, createdAt: now };
    if (!this.crons.insert(record)) {
      return fail(new SpindleError("cron.conflict", `workflow '${cron.workflow}' already has a cron named '${cron.name}'`));
    }
    await this.arm();
    return ok(cronView(record));
  }

  async getCron(id: string): Promise<CronView | null> {
    const c = this.crons.get(id);
    return c ? cronView(c) : null;
  }

  async deleteCron(id: string): Promise<Reply<CronView>> {
    await this.firing;
    const found = this.crons.get(id);
    if (!found) return fail(new SpindleError("cron.not_found", `cron '${id}' was not found`));
    if (found.source === "declared") {
      return fail(new SpindleError("cron.conflict", `cron '${id}' is declared by workflow '${found.workflow}' (onCrons); remove it from the code`));
    }
    this.crons.delete(id);
    await this.arm();
    return ok(cronView(found));
  }

  async listCrons(workflow: string | undefined, limit: number, cursor: string | undefined): Promise<CronView[]> {
    return this.crons.list(workflow, limit, cursor).map(cronView);
  }

  /**
   * A worker's registration: its declared crons and filters become exactly what it declares. A
   * cron already known keeps its next tick; one no longer declared stops.
   */
  async syncDeclared(tenant: string, worker: string, declared: DeclaredTriggers): Promise<void> {
    this.ensureConfig(tenant);
    const now = clock.now();
    this.ctx.storage.transactionSync(() => {
      const wanted = new Map(declared.crons.map((c) => [`${c.workflow}\u0000${c.expression}`, c]));
      for (const existing of this.crons.declaredBy(worker)) {
        const still = wanted.get(`${existing.workflow}\u0000${existing.expression}`);
        if (!still) this.crons.delete(existing.id);
        else if (JSON.stringify(still.input ?? null) !== JSON.stringify(existing.input ?? null)) this.crons.updateDeclaredInput(existing.id, still.input);
      }
      for (const c of declared.crons) {
        if (this.crons.byName(c.workflow, c.expression)) continue;
        this.crons.insert({
          id: ulid(now),
          workflow: c.workflow,
          name: c.expression,
          expression: c.expression,
          timezone: "UTC",
          input: c.input ?? null,
          metadata: {},
          source: "declared",
          worker,
          nextAt: nextTick(c.expression, "UTC", now),
          lastRunAt: null,
          createdAt: now,
        });
      }
      this.filters.syncDeclared(worker, declared.filters, now);
    });
    await this.arm();
  }

  // --- schedules -----------------------------------------------------------------------------

  async createSchedule(tenant: string, schedule: ScheduleRecord): Promise<ScheduleView> {
    this.ensureConfig(tenant);
    this.schedules.insert(schedule);
    await this.arm();
    return scheduleView(this.schedules.get(schedule.id)!);
  }

  async getSchedule(id: string): Promise<ScheduleView | null> {
    const s = this.schedules.get(id);
    return s ? scheduleView(s) : null;
  }

  async deleteSchedule(id: string): Promise<Reply<ScheduleView>> {
    await this.firing;
    const found = this.schedules.get(id);
    if (!found) return fail(new SpindleError("schedule.not_found", `schedule '${id}' was not found`));
    if (!this.schedules.deleteScheduled(id)) {
      return fail(new SpindleError("schedule.conflict", `schedule '${id}' has already fired (${found.status}); its run is ${found.runId}`));
    }
    await this.arm();
    return ok(scheduleView(found));
  }

  async listSchedules(filter: ScheduleFilter, limit: number): Promise<ScheduleView[]> {
    return this.schedules.list(filter, limit, filter.cursor).map(scheduleView);
  }

  // --- webhooks ------------------------------------------------------------------------------

  async putWebhook(tenant: string, config: WebhookConfig): Promise<void> {
    this.ensureConfig(tenant);
    this.webhooks.put(config, clock.now());
  }

  async getWebhook(name: string): Promise<WebhookConfig | null> {
    return this.webhooks.get(name);
  }

  async listWebhooks(): Promise<Omit<WebhookConfig, "secret">[]> {
    return this.webhooks.list();
  }

  async deleteWebhook(name: string): Promise<boolean> {
    return this.webhooks.delete(name);
  }

  // --- firing --------------------------------------------------------------------------------

  override async alarm(): Promise<void> {
    const run = this.firing.then(() => this.fireDue());
    this.firing = run.catch(() => undefined);
    await run;
  }

  private async fireDue(): Promise<void> {
    const tenant = this.ctx.storage.sql.exec<{ tenant: string }>("SELECT tenant FROM config WHERE id = 1").toArray()[0]?.tenant;
    if (!tenant) return;
    const service = new EngineService(this.env, tenant);
    const now = clock.now();
    await Promise.all([...this.schedules.due(now).map((s) => this.fireSchedule(service, s, now)), ...this.crons.due(now).map((c) => this.fireCron(service, tenant, c, now))]);
    await this.arm();
  }

  private async fireSchedule(service: EngineService, s: ScheduleRecord, now: number): Promise<void> {
    try {
      await service.startTriggered({
        workflow: s.workflow,
        input: s.input,
        additionalMetadata: { ...s.metadata, scheduleId: s.id },
        runId: s.runId,
        trigger: { kind: "schedule", scheduleId: s.id, scheduledAt: iso(s.at)! },
      });
      this.schedules.fired(s.id, clock.now());
    } catch (err) {
      const error = toErrorData(err);
      // A workflow that is gone cannot be started later either; anything else is tried again.
      if (error.code === "workflow.not_found" || error.code === "input.invalid") this.schedules.failed(s.id, `${error.code}: ${error.message}`, now);
      else this.schedules.retryLater(s.id, `${error.code}: ${error.message}`, now + TRIGGER_RETRY_MS);
    }
  }

  private async fireCron(service: EngineService, tenant: string, c: CronRecord, now: number): Promise<void> {
    const ticks = dueTicks(c.expression, c.timezone, c.nextAt!, now);
    if (!ticks) return;
    try {
      if (c.source === "declared") {
        // Declared crons follow the code: one the worker no longer declares stops here.
        const current = await service.currentDefinition(c.workflow);
        if (!current?.definition.onCrons?.includes(c.expression)) {
          this.crons.delete(c.id);
          return;
        }
      }
      const late = ticks.count > 1 || now - ticks.latest > CRON_LATE_AFTER_MS;
      const scheduledAt = iso(ticks.latest)!;
      const metadata: Record<string, string> = { ...c.metadata, cron: c.name, scheduledAt };
      if (late) metadata.late = "true";
      await service.startTriggered({
        workflow: c.workflow,
        input: c.input,
        additionalMetadata: metadata,
        runId: await deterministicUlid(ticks.latest, `${tenant}/cron/${c.id}/${ticks.latest}`),
        trigger: { kind: "cron", cronId: c.id, name: c.name, scheduledAt, late, missedTicks: ticks.count - 1 },
      });
      this.crons.ticked(c.id, c.nextAt!, ticks.latest, ticks.next);
    } catch (err) {
      // The tick stays owed; the alarm comes back for it (the same tick, so the same run id).
      console.error(`cron ${c.id} (${c.workflow}) could not start its run`, err);
    }
  }

  /**
   * Points the alarm at the earliest owed tick or schedule. After a firing every due row has moved
   * on, so one still in the past failed to start its run: it is tried again after TRIGGER_RETRY_MS.
   */
  private async arm(): Promise<void> {
    const candidates = [this.crons.nextDue(), this.schedules.nextDue()].filter((x): x is number => x !== null);
    if (candidates.length === 0) {
      await this.ctx.storage.deleteAlarm();
      return;
    }
    const now = clock.now();
    const next = Math.min(...candidates);
    await this.ctx.storage.setAlarm(next > now ? next : now + TRIGGER_RETRY_MS);
  }

  private ensureConfig(tenant: string): void {
    this.ctx.storage.sql.exec("INSERT INTO config (id, tenant) VALUES (1, ?) ON CONFLICT (id) DO NOTHING", tenant);
  }
}

