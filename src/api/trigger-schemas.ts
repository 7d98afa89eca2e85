import { z } from "@hono/zod-openapi";

/** Request and response shapes of the trigger routes: filters, crons, schedules, webhooks, the event log. */

const MetadataSchema = z.record(z.string(), z.string()).openapi({ example: { customer: "acme" } });
const isoDate = z.string().refine((s) => !Number.isNaN(Date.parse(s)), "must be an ISO 8601 date-time");
const limit = z.coerce.number().int().min(1).max(500).optional();

export const PageQuery = z.object({ limit, cursor: z.string().optional() });

export const IdParams = z.object({
  id: z.string().min(1).openapi({ param: { name: "id", in: "path" }, example: "01JH8X7Q2K3M4N5P6Q7R8S9T0V" }),
});

export const EventIdParams = z.object({
  eventId: z.string().min(1).openapi({ param: { name: "eventId", in: "path" }, example: "01JH8X7Q2K3M4N5P6Q7R8S9T0V" }),
});

export const TriggeredRunSchema = z.object({ workflow: z.string(), runId: z.string() }).openapi("TriggeredRun");

export const EventPushResultSchema = z
  .object({
    eventId: z.string(),
    runs: z.array(TriggeredRunSchema).openapi({ description: "One run of every workflow whose `onEvents` match the key and whose filters let the event through." }),
  })
  .openapi("EventPushed");

export const EventViewSchema = z
  .object({
    eventId: z.string(),
    key: z.string(),
    payload: z.unknown(),
    additionalMetadata: MetadataSchema,
    scope: z.string().nullable(),
    createdAt: z.string(),
    runs: z.array(TriggeredRunSchema),
    refused: z.array(
      z.object({
        workflow: z.string(),
        error: z.object({ code: z.string(), message: z.string(), fields: z.array(z.object({ path: z.string(), message: z.string() })).optional() }),
      }),
    ).openapi({ description: "Matching workflows the event did not start, and why (its payload fails the workflow's input schema)." }),
    woke: z.array(z.object({ runId: z.string(), task: z.string() })).openapi({ description: "Waiting tasks the event woke." }),
  })
  .openapi("Event");

export const EventListQuery = z.object({
  key: z.string().optional(),
  since: isoDate.optional(),
  until: isoDate.optional(),
  limit,
  cursor: z.string().optional(),
});

export const EventListSchema = z.object({ events: z.array(EventViewSchema), nextCursor: z.string().nullable() }).openapi("EventList");

export const FilterBodySchema = z
  .object({
    workflow: z.string().min(1),
    expression: z.string().min(1).openapi({ example: "input.amount > 100 && payload.tier == 'gold'" }),
    scope: z.string().min(1).max(256).optional(),
    payload: z.unknown().optional().openapi({ description: "Given to the runs this filter lets through (`ctx.filterPayload()`), and to its expression as `payload`." }),
  })
  .strict()
  .openapi("CreateFilter");

export const FilterSchema = z
  .object({
    id: z.string(),
    workflow: z.string(),
    expression: z.string(),
    scope: z.string().nullable(),
    payload: z.unknown(),
    declared: z.boolean(),
    createdAt: z.string(),
  })
  .openapi("Filter");

export const FilterListQuery = PageQuery.extend({ workflow: z.string().optional() });
export const FilterListSchema = z.object({ filters: z.array(FilterSchema), nextCursor: z.string().nullable() }).openapi("FilterList");

export const CronBodySchema = z
  .object({
    name: z.string().min(1).max(128),
    expression: z.string().min(1).openapi({ example: "0 * * * *", description: "Five fields, six with seconds, or a name such as `@hourly`." }),
    input: z.unknown().optional(),
    timezone: z.string().min(1).optional().openapi({ example: "Europe/Berlin", description: "An IANA time zone; default UTC." }),
    additionalMetadata: MetadataSchema.optional(),
  })
  .strict()
  .openapi("CreateCron");

export const CronCreatedSchema = z.object({ id: z.string(), name: z.string(), expression: z.string(), nextRunAt: z.string().nullable() }).openapi("CronCreated");

export const CronSchema = z
  .object({
    id: z.string(),
    workflow: z.string(),
    name: z.string(),
    expression: z.string(),
    timezone: z.string(),
    input: z.unknown(),
    additionalMetadata: MetadataSchema,
    source: z.enum(["declared", "api"]),
    nextRunAt: z.string().nullable(),
    lastRunAt: z.string().nullable(),
    createdAt: z.string(),
  })
  .openapi("Cron");

export const CronListQuery = PageQuery.extend({ workflow: z.string().optional() });
export const CronListSchema = z.object({ crons: z.array(CronSchema), nextCursor: z.string().nullable() }).openapi("CronList");

export const ScheduleBodySchema = z
  .object({
    at: z.string().openapi({ example: "2030-01-01T09:00:00Z", description: "When to start the run: an ISO 8601 date-time in the future." }),
    input: z.unknown().optional(),
    additionalMetadata: MetadataSchema.optional(),
  })
  .strict()
  .openapi("CreateSchedule");

export const ScheduleCreatedSchema = z.object({ scheduleId: z.string(), at: z.string() }).openapi("ScheduleCreated");

export const ScheduleStatusSchema = z.enum(["SCHEDULED", "FIRED", "FAILED"]);

export const ScheduleSchema = z
  .object({
    scheduleId: z.string(),
    workflow: z.string(),
    at: z.string(),
    input: z.unknown(),
    additionalMetadata: MetadataSchema,
    status: ScheduleStatusSchema,
    runId: z.string().nullable(),
    error: z.string().nullable(),
    createdAt: z.string(),
    firedAt: z.string().nullable(),
  })
  .openapi("Schedule");

export const ScheduleListQuery = PageQuery.extend({ workflow: z.string().optional(), status: ScheduleStatusSchema.optional() });
export const ScheduleListSchema = z.object({ schedules: z.array(ScheduleSchema), nextCursor: z.string().nullable() }).openapi("ScheduleList");

const SignatureSchema = z
  .object({
    header: z.string().min(1).openapi({ example: "X-Hub-Signature-256" }),
    algorithm: z.literal("hmac-sha256"),
    encoding: z.enum(["hex", "base64"]),
    prefix: z.string().optional().openapi({ example: "sha256=" }),
    timestamped: z.boolean().optional().openapi({ description: "Stripe style: the header is `t=<unix seconds>,v1=<signature>` over `<t>.<body>`." }),
    toleranceSeconds: z.number().int().min(1).max(86_400).optional().openapi({ description: "Timestamped only: older (or later) deliveries are refused. Default 300." }),
  })
  .strict();

export const WebhookBodySchema = z
  .object({
    eventKey: z.string().min(1).max(256).openapi({ example: "github:push" }),
    secret: z.string().min(8).max(1024),
    signature: SignatureSchema,
  })
  .strict()
  .openapi("PutWebhook");

export const WebhookSchema = z
  .object({ name: z.string(), eventKey: z.string(), signature: SignatureSchema, url: z.string().openapi({ description: "Where the sender posts, relative to the engine." }) })
  .openapi("Webhook");

export const WebhookNameParams = z.object({ name: z.string().min(1).openapi({ param: { name: "name", in: "path" }, example: "github" }) });
export const WebhookDeliveryParams = z.object({
  tenant: z.string().min(1).openapi({ param: { name: "tenant", in: "path" }, example: "default" }),
  name: z.string().min(1).openapi({ param: { name: "name", in: "path" }, example: "github" }),
});
