import type {
  CronCreate,
  CronFilter,
  CronList,
  CronView,
  EventFilter,
  EventList,
  EventPushResult,
  EventView,
  FilterCreate,
  FilterList,
  FilterView,
  ScheduleCreate,
  ScheduleFilter,
  ScheduleList,
  ScheduleView,
} from "@spindle/worker-sdk/protocol";
import { clock } from "../core/clock";
import { SpindleError } from "../core/errors";
import { checkInput } from "../core/input-schema";
import { isUlid, sha256Hex, ulid } from "../core/ids";
import { MAX_METADATA_BYTES, limitsOf, refuseOversized, sizeProblem } from "../core/limits";
import { eventBusName, EVENT_INDEX_SHARDS } from "../core/names";
import { checkCron, checkFilterExpression } from "../core/triggers";
import { verifySignature, type SignatureConfig } from "../core/webhook-signature";
import type { Env } from "../env";
import type { WebhookConfig } from "../triggers/webhook-store";
import { eventIndexShard, unwrap, type EngineService } from "./service";

export const DEFAULT_TRIGGER_LIST_LIMIT = 50;
export const MAX_TRIGGER_LIST_LIMIT = 500;

const pageSize = (limit: number | undefined) => Math.min(Math.max(limit ?? DEFAULT_TRIGGER_LIST_LIMIT, 1), MAX_TRIGGER_LIST_LIMIT);

function invalid(path: string, message: string): SpindleError {
  return new SpindleError("request.invalid", `${path}: ${message}`, { fields: [{ path, message }] });
}

/** A page of `limit` out of `limit + 1` fetched: the cursor is the last id shown when there is more. */
function page<T>(items: T[], limit: number, id: (item: T) => string): { items: T[]; nextCursor: string | null } {
  const shown = items.slice(0, limit);
  return { items: shown, nextCursor: items.length > limit ? id(shown[shown.length - 1]!) : null };
}

/**
 * Triggers as the API and the SDK see them: filters, crons, one-time schedules, webhook receivers,
 * and the event log. Everything is checked here, before any object is written.
 */
export class TriggerService {
  constructor(
    private readonly env: Env,
    private readonly tenant: string,
    private readonly engine: EngineService,
  ) {}

  // --- filters -------------------------------------------------------------------------------

  async createFilter(req: FilterCreate, prefix = ""): Promise<FilterView> {
    if (typeof req?.workflow !== "string" || !req.workflow) throw invalid(`${prefix}workflow`, "is required");
    if (typeof req.expression !== "string" || !req.expression) throw invalid(`${prefix}expression`, "is required");
    if (req.scope !== undefined && (typeof req.scope !== "string" || !req.scope)) throw invalid(`${prefix}scope`, "must be a non-empty string");
    checkFilterExpression(req.expression, `${prefix}expression`);
    refuseOversized([sizeProblem(`${prefix}payload`, req.payload, MAX_METADATA_BYTES)]);
    await this.engine.resolve(req.workflow);
    const spec = { expression: req.expression, ...(req.scope ? { scope: req.scope } : {}), ...(req.payload !== undefined ? { payload: req.payload } : {}) };
    return this.engine.triggersObject().createFilter(this.tenant, ulid(clock.now()), req.workflow, spec);
  }

  async listFilters(filter: { workflow?: string; limit?: number; cursor?: string }): Promise<FilterList> {
    const limit = pageSize(filter.limit);
    const { items, nextCursor } = page((await this.engine.triggersObject().listFilters(filter.workflow, limit + 1, filter.cursor)) as FilterView[], limit, (f) => f.id);
    return { filters: items, nextCursor };
  }

  async deleteFilter(id: string): Promise<FilterView> {
    return unwrap(await this.engine.triggersObject().deleteFilter(id));
  }

  // --- crons ---------------------------------------------------------------------------------

  /** `prefix` roots the field paths of errors (`body.` over HTTP). */
  async createCron(workflow: string, req: CronCreate, prefix = ""): Promise<CronView> {
    if (typeof req?.name !== "string" || !req.name || req.name.length > 128) throw invalid(`${prefix}name`, "must be a string of 1 to 128 characters");
    if (typeof req.expression !== "string" || !req.expression) throw invalid(`${prefix}expression`, "is required");
    const timezone = req.timezone ?? "UTC";
    if (typeof timezone !== "string" || !timezone) throw invalid(`${prefix}timezone`, "must be an IANA time zone name");
    checkCron(req.expression, timezone, { expression: `${prefix}expression`, timezone: `${prefix}timezone` });
    const metadata = checkMetadata(req.additionalMetadata, prefix);
    const resolved = await this.engine.resolve(workflow);
    refuseOversized([sizeProblem("input", req.input, limitsOf(this.env).maxPayloadBytes), sizeProblem(`${prefix}additionalMetadata`, metadata, MAX_METADATA_BYTES)]);
    checkInput(resolved.definition.inputSchema, req.input ?? null);
    return unwrap(
      await this.engine.triggersObject().createCron(this.tenant, {
        id: ulid(clock.now()),
        workflow,
        name: req.name,
        expression: req.expression,
        timezone,
        input: req.input ?? null,
        metadata,
        source: "api",
        worker: null,
      }),
    );
  }

  async listCrons(filter: CronFilter): Promise<CronList> {
    const limit = pageSize(filter.limit);
    const { items, nextCursor } = page((await this.engine.triggersObject().listCrons(filter.workflow, limit + 1, filter.cursor)) as CronView[], limit, (c) => c.id);
    return { crons: items, nextCursor };
  }

  async getCron(id: string): Promise<CronView> {
    const found = await this.engine.triggersObject().getCron(id);
    if (!found) throw new SpindleError("cron.not_found", `cron '${id}' was not found`);
    return found;
  }

  async deleteCron(id: string): Promise<CronView> {
    return unwrap(await this.engine.triggersObject().deleteCron(id));
  }

  // --- schedules -----------------------------------------------------------------------------

  /** The input is checked now, against the workflow's schema: a schedule that is accepted can fire. */
  async createSchedule(workflow: string, req: ScheduleCreate, prefix = ""): Promise<ScheduleView> {
    const at = typeof req?.at === "string" ? Date.parse(req.at) : Number.NaN;
    if (Number.isNaN(at)) throw invalid(`${prefix}at`, "must be an ISO 8601 date-time");
    const now = clock.now();
    if (at <= now) throw invalid(`${prefix}at`, `${req.at} is in the past`);
    const metadata = checkMetadata(req.additionalMetadata, prefix);
    const resolved = await this.engine.resolve(workflow);
    refuseOversized([sizeProblem("input", req.input, limitsOf(this.env).maxPayloadBytes), sizeProblem(`${prefix}additionalMetadata`, metadata, MAX_METADATA_BYTES)]);
    checkInput(resolved.definition.inputSchema, req.input ?? null);
    return this.engine.triggersObject().createSchedule(this.tenant, {
      id: ulid(now),
      workflow,
      at,
      input: req.input ?? null,
      metadata,
      status: "SCHEDULED",
      runId: ulid(at),
      error: null,
      retryAt: null,
      createdAt: now,
      firedAt: null,
    });
  }

  async listSchedules(filter: ScheduleFilter): Promise<ScheduleList> {
    if (filter.status !== undefined && !["SCHEDULED", "FIRED", "FAILED"].includes(filter.status)) {
      throw invalid("query.status", `unknown status '${filter.status}'; one of SCHEDULED, FIRED, FAILED`);
    }
    const limit = pageSize(filter.limit);
    const { items, nextCursor } = page((await this.engine.triggersObject().listSchedules(filter, limit + 1)) as ScheduleView[], limit, (s) => s.scheduleId);
    return { schedules: items, nextCursor };
  }

  async getSchedule(id: string): Promise<ScheduleView> {
    const found = await this.engine.triggersObject().getSchedule(id);
    if (!found) throw new SpindleError("schedule.not_found", `schedule '${id}' was not found`);
    return found;
  }

  async deleteSchedule(id: string): Promise<ScheduleView> {
    return unwrap(await this.engine.triggersObject().deleteSchedule(id));
  }

  // --- events --------------------------------------------------------------------------------

  /** Newest first, merged across the index shards; each with the waiting tasks it woke. */
  async listEvents(filter: EventFilter): Promise<EventList> {
    for (const field of ["since", "until"] as const) {
      if (filter[field] !== undefined && Number.isNaN(Date.parse(filter[field]!))) throw invalid(`query.${field}`, "must be an ISO 8601 date-time");
    }
    const limit = pageSize(filter.limit);
    const pages = (await Promise.all(Array.from({ length: EVENT_INDEX_SHARDS }, (_, shard) => this.engine.eventIndex(shard).list(filter, limit + 1)))) as {
      events: Omit<EventView, "woke">[];
      truncated: boolean;
    }[];
    // A shard that stopped early (its page was full of large payloads) may hold events older than
    // its last one: the merged page ends there, and the cursor takes it on from there.
    const stop = pages.filter((p) => p.truncated).map((p) => p.events[p.events.length - 1]!.eventId).sort().pop();
    const merged = pages
      .flatMap((p) => p.events)
      .filter((e) => stop === undefined || e.eventId >= stop)
      .sort((a, b) => (a.eventId < b.eventId ? 1 : a.eventId > b.eventId ? -1 : 0));
    const { items, nextCursor } = page(merged, limit, (e) => e.eventId);
    return { events: await this.withWakes(items), nextCursor: nextCursor ?? (stop !== undefined ? items[items.length - 1]!.eventId : null) };
  }

  async getEvent(eventId: string): Promise<EventView> {
    const found = isUlid(eventId) ? ((await this.engine.eventIndex(eventIndexShard(eventId)).get(eventId)) as Omit<EventView, "woke"> | null) : null;
    if (!found) throw new SpindleError("event.not_found", `event '${eventId}' was not found`);
    return (await this.withWakes([found]))[0]!;
  }

  /** The waiting tasks each event woke, asked of each key's bus once. */
  private async withWakes(events: Omit<EventView, "woke">[]): Promise<EventView[]> {
    const byKey = new Map<string, string[]>();
    for (const e of events) byKey.set(e.key, [...(byKey.get(e.key) ?? []), e.eventId]);
    const woke = new Map<string, { runId: string; task: string }[]>();
    await Promise.all(
      [...byKey].map(async ([key, ids]) => {
        const found = await this.env.EVENTS.getByName(eventBusName(this.tenant, key)).woken(ids);
        for (const [id, list] of Object.entries(found)) woke.set(id, list);
      }),
    );
    return events.map((e) => ({ ...e, woke: woke.get(e.eventId) ?? [] }));
  }

  // --- webhooks ------------------------------------------------------------------------------

  async putWebhook(name: string, config: Omit<WebhookConfig, "name">): Promise<{ name: string; eventKey: string; signature: SignatureConfig; url: string }> {
    if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/.test(name)) throw invalid("path.name", "letters, digits, '_' and '-', at most 128");
    await this.engine.triggersObject().putWebhook(this.tenant, { name, ...config });
    return { name, eventKey: config.eventKey, signature: config.signature, url: `/webhooks/${this.tenant}/${name}` };
  }

  async listWebhooks(): Promise<{ name: string; eventKey: string; signature: SignatureConfig; url: string }[]> {
    return (await this.engine.triggersObject().listWebhooks()).map((w) => ({ ...w, url: `/webhooks/${this.tenant}/${w.name}` }));
  }

  async deleteWebhook(name: string): Promise<void> {
    if (!(await this.engine.triggersObject().deleteWebhook(name))) throw new SpindleError("webhook.not_found", `webhook '${name}' was not found`);
  }

  /**
   * A delivery to a webhook receiver: its signature over the raw body is the credential. A good one
   * becomes an event with the receiver's key and the JSON body as payload. A timestamped delivery
   * sent again (a retry by the sender, or a replay within the tolerance) is the same event: its
   * signature is its idempotency key.
   */
  async receiveWebhook(name: string, rawBody: Uint8Array, header: (name: string) => string | null): Promise<EventPushResult> {
    const config = await this.engine.triggersObject().getWebhook(name);
    if (!config) throw new SpindleError("webhook.not_found", `webhook '${name}' was not found`);
    const signature = header(config.signature.header);
    const verdict = await verifySignature(config.signature, config.secret, rawBody, signature, clock.now());
    if (!verdict.ok) throw new SpindleError("webhook.unauthorized", `webhook '${name}': ${verdict.reason}`);
    let payload: unknown;
    try {
      payload = JSON.parse(new TextDecoder().decode(rawBody));
    } catch {
      throw new SpindleError("request.invalid_json", "the webhook body is not valid JSON");
    }
    const idempotencyKey = config.signature.timestamped ? `webhook:${name}:${(await sha256Hex(signature!)).slice(0, 32)}` : undefined;
    return this.engine.pushEvent({ key: config.eventKey, payload, additionalMetadata: { webhook: name }, ...(idempotencyKey ? { idempotencyKey } : {}) });
  }
}

function checkMetadata(metadata: unknown, prefix = ""): Record<string, string> {
  if (metadata === undefined || metadata === null) return {};
  if (typeof metadata !== "object" || Array.isArray(metadata)) throw invalid(`${prefix}additionalMetadata`, "must be an object of strings");
  for (const [k, v] of Object.entries(metadata)) if (typeof v !== "string") throw invalid(`${prefix}additionalMetadata.${k}`, "must be a string");
  return metadata as Record<string, string>;
}
