import { z } from "@hono/zod-openapi";
import { CONCURRENCY_LIMIT_STRATEGIES, RATE_LIMIT_DURATIONS, type ConcurrencyKeyView, type RateLimitView } from "@spindle/worker-sdk/protocol";

/** Request and response shapes of the HTTP API; the OpenAPI document is generated from these. */

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: "input.invalid" }),
      message: z.string(),
      fields: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    }),
  })
  .openapi("Error");

const ErrorDataSchema = z
  .object({
    code: z.string(),
    name: z.string(),
    message: z.string(),
    retryable: z.boolean(),
    stack: z.string().optional(),
    task: z.string().optional(),
  })
  .openapi("TaskError");

export const RunStatusSchema = z.enum(["QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"]).openapi("RunStatus");
const TaskStatusSchema = z.enum(["PENDING", "QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "SKIPPED"]);

const MetadataSchema = z.record(z.string(), z.string()).openapi({ example: { customer: "acme" } });

export const TriggerBodySchema = z
  .object({
    input: z.unknown().optional().openapi({ example: { Message: "Hello World" } }),
    additionalMetadata: MetadataSchema.optional(),
    priority: z.number().int().min(1).max(3).optional(),
  })
  .strict()
  .openapi("TriggerRun");

export const TriggerResultSchema = z.object({ runId: z.string(), status: RunStatusSchema }).openapi("TriggerResult");

const TaskSchema = z
  .object({
    name: z.string(),
    taskRunId: z.string(),
    kind: z.enum(["task", "durable"]),
    role: z.enum(["on_failure", "on_success"]).nullable(),
    parents: z.array(z.string()),
    status: TaskStatusSchema,
    retryCount: z.number(),
    attempt: z.number(),
    output: z.unknown(),
    error: ErrorDataSchema.nullable(),
    queuedAt: z.string().nullable(),
    startedAt: z.string().nullable(),
    finishedAt: z.string().nullable(),
    durationMs: z.number().nullable(),
    queuedReason: z.string().nullable(),
    logs: z.array(z.object({ attempt: z.number(), at: z.number(), level: z.enum(["info", "warn", "error"]), message: z.string() })),
    attempts: z.array(
      z.object({
        attempt: z.number(),
        retryCount: z.number(),
        status: TaskStatusSchema,
        startedAt: z.string().nullable(),
        finishedAt: z.string().nullable(),
        error: ErrorDataSchema.nullable(),
      }),
    ),
    lostDispatches: z.array(z.object({ attempt: z.number(), invocation: z.number(), at: z.string(), reason: z.string() })),
    evicted: z.boolean().optional(),
    waitingFor: z.unknown().optional(),
    conditionErrors: z.array(z.string()).optional(),
    eventLog: z.array(z.unknown()).optional(),
  })
  .openapi("Task");

const ParentSchema = z.object({ runId: z.string(), taskName: z.string() }).nullable();

export const RunSchema = z
  .object({
    runId: z.string(),
    workflow: z.string(),
    status: RunStatusSchema,
    input: z.unknown(),
    output: z.unknown(),
    error: ErrorDataSchema.nullable(),
    additionalMetadata: MetadataSchema,
    priority: z.number(),
    createdAt: z.string(),
    startedAt: z.string().nullable(),
    finishedAt: z.string().nullable(),
    parent: ParentSchema,
    children: z.array(z.string()),
    trigger: z
      .unknown()
      .optional()
      .openapi({
        description:
          "What started the run when it was not a direct call: `{ kind: \"event\", eventId, eventKey, filterId?, filterPayload? }`, `{ kind: \"cron\", cronId, name, scheduledAt, late, missedTicks }` or `{ kind: \"schedule\", scheduleId, scheduledAt }`.",
      }),
    tasks: z.array(TaskSchema),
    deadLetters: z
      .array(
        z
          .object({
            kind: z.string().openapi({ example: "child_ended" }),
            target: z.string(),
            payload: z.unknown(),
            tries: z.number(),
            error: z.string().openapi({ description: "The last failure." }),
            at: z.string(),
          })
          .openapi("DeadLetter"),
      )
      .optional()
      .openapi({
        description:
          "Messages this run owed another object (a dispatch, its report to its parent run, an event subscription, an index update) that failed every one of their tries. They are kept here, never sent again; a task that waited on one has failed with code `delivery.dead_letter` naming it.",
      }),
  })
  .openapi("Run");

export const RunListSchema = z
  .object({
    runs: z.array(
      z.object({
        runId: z.string(),
        workflow: z.string(),
        status: RunStatusSchema,
        additionalMetadata: MetadataSchema,
        createdAt: z.string(),
        finishedAt: z.string().nullable(),
        parent: ParentSchema,
      }),
    ),
    nextCursor: z.string().nullable(),
  })
  .openapi("RunList");

export const RunIdParams = z.object({
  runId: z.string().openapi({ param: { name: "runId", in: "path" }, example: "01JH8X7Q2K3M4N5P6Q7R8S9T0V" }),
});

export const WorkflowNameParams = z.object({
  name: z.string().min(1).openapi({ param: { name: "name", in: "path" }, example: "simple" }),
});

/**
 * For the OpenAPI document only: routes read the header with `c.req.header()` (Hono hands header
 * validators lower-cased names) and the service checks it, naming `header.Idempotency-Key`.
 */
export const IdempotencyHeaders = z.object({
  "Idempotency-Key": z
    .string()
    .optional()
    .openapi({
      param: { name: "Idempotency-Key", in: "header" },
      description:
        "1 to 256 printable ASCII characters. A request repeated with the same key within 24 hours answers like the first (the same id) and creates nothing; the same key with a different body is 409.",
      example: "order-4711",
    }),
});

export const WaitQuery = z.object({
  wait: z.coerce.number().min(0).max(60).optional().openapi({ description: "Seconds to wait for the run to end (at most 60)." }),
});

const isoDate = z.string().refine((s) => !Number.isNaN(Date.parse(s)), "must be an ISO 8601 date-time");

export const ListQuery = z.object({
  workflow: z.string().optional(),
  status: z
    .string()
    .optional()
    .openapi({ description: "One status or a comma-separated list.", example: "FAILED,CANCELLED" }),
  since: isoDate.optional(),
  until: isoDate.optional(),
  limit: z.coerce.number().int().min(1).max(500).optional(),
  cursor: z.string().optional(),
  metadata: z
    .union([z.string(), z.array(z.string())])
    .optional()
    .openapi({ description: "`key:value`; repeat to require several.", example: "customer:acme" }),
});

export const WorkflowListSchema = z
  .object({
    workflows: z.array(
      z.object({
        name: z.string(),
        kind: z.enum(["task", "workflow"]),
        worker: z.string(),
        description: z.string().optional(),
        inputSchema: z.record(z.string(), z.unknown()).optional(),
        tasks: z.array(z.object({ name: z.string(), kind: z.enum(["task", "durable"]), parents: z.array(z.string()) }).passthrough()),
      }),
    ),
  })
  .openapi("WorkflowList");

export const WorkerSchema = z
  .object({
    name: z.string(),
    transport: z.enum(["binding", "https"]),
    status: z.enum(["active", "refused", "unreachable"]),
    reason: z.string().nullable().openapi({ description: "Why the worker is not active (or a note: one of its workflows was refused)" }),
    url: z.string().nullable(),
    binding: z.string().nullable(),
    slots: z.number(),
    durableSlots: z.number(),
    slotsInUse: z.object({ regular: z.number(), durable: z.number() }),
    workflows: z.array(z.object({ name: z.string(), status: z.enum(["active", "refused"]), reason: z.string().nullable() })),
    registeredAt: z.string(),
    lastSeenAt: z.string().nullable(),
  })
  .openapi("Worker");

export const WorkerListSchema = z.object({ workers: z.array(WorkerSchema) }).openapi("WorkerList");

export const RegisterWorkerBodySchema = z
  .object({
    url: z
      .string()
      .url()
      .refine((u) => /^https?:\/\//.test(u), "must be an http(s) URL")
      .openapi({ example: "https://my-worker.example.workers.dev" }),
  })
  .openapi("RegisterWorker");

export const EventBodySchema = z
  .object({
    key: z.string().min(1).max(256).openapi({ example: "user:update" }),
    payload: z.unknown().optional().openapi({ example: { userId: "u-1" } }),
    additionalMetadata: MetadataSchema.optional(),
    scope: z.string().min(1).max(256).optional().openapi({ description: "Only waiters with this scope (or none) match." }),
  })
  .strict()
  .openapi("PushEvent");

/** The most items one bulk request takes. */
export const MAX_BULK_ITEMS = 1000;

const idempotencyKeyField = z.string().optional().openapi({ description: "Like the Idempotency-Key header, per item." });

export const BulkTriggerBodySchema = z
  .object({
    runs: z
      .array(TriggerBodySchema.extend({ workflow: z.string().min(1), idempotencyKey: idempotencyKeyField }).strict())
      .min(1)
      .max(MAX_BULK_ITEMS),
  })
  .strict()
  .openapi("BulkTriggerRuns");

export const BulkTriggerResultSchema = z.object({ runs: z.array(TriggerResultSchema) }).openapi("BulkTriggerResult");

export const BulkEventBodySchema = z
  .object({ events: z.array(EventBodySchema.extend({ idempotencyKey: idempotencyKeyField }).strict()).min(1).max(MAX_BULK_ITEMS) })
  .strict()
  .openapi("BulkPushEvents");

export const RateLimitKeyParams = z.object({
  key: z.string().min(1).max(256).openapi({ param: { name: "key", in: "path" }, example: "external-api" }),
});

export const RateLimitBodySchema = z
  .object({
    limit: z.number().int().min(1).max(1_000_000_000).openapi({ example: 10 }),
    duration: z.enum(RATE_LIMIT_DURATIONS).openapi({ example: "minute" }),
  })
  .strict()
  .openapi("RateLimitDefinition");

export const RateLimitSchema = z
  .object({
    key: z.string(),
    kind: z.enum(["static", "dynamic"]),
    limit: z.number(),
    duration: z.enum(RATE_LIMIT_DURATIONS),
    unitsLeft: z.number(),
    nextRefillAt: z.string().nullable().openapi({ description: "When the oldest unit in use comes back (null: none in use)." }),
  })
  .openapi("RateLimit") satisfies z.ZodType<RateLimitView>;

export const RateLimitListSchema = z.object({ rateLimits: z.array(RateLimitSchema) }).openapi("RateLimitList");

export const ConcurrencyKeySchema = z
  .object({
    key: z.string(),
    workflow: z.string(),
    task: z.string().nullable().openapi({ description: "The task that declared the key; null for a workflow-level key." }),
    limitStrategy: z.enum(CONCURRENCY_LIMIT_STRATEGIES),
    running: z.number(),
    queued: z.number().openapi({ description: "Runs waiting for this key (not those waiting only for a slot)." }),
    maxRuns: z.number(),
  })
  .openapi("ConcurrencyKey") satisfies z.ZodType<ConcurrencyKeyView>;

export const ConcurrencyListSchema = z.object({ concurrency: z.array(ConcurrencyKeySchema) }).openapi("ConcurrencyList");

export const StreamQuery = z.object({
  offset: z.coerce
    .number()
    .int()
    .min(0)
    .optional()
    .openapi({ description: "The first chunk to send (from 0). A `Last-Event-ID` header (the last offset received) wins over it." }),
});

const BulkFilterSchema = z
  .object({
    workflow: z.string().min(1).optional(),
    status: z.union([RunStatusSchema, z.array(RunStatusSchema)]).optional(),
    since: isoDate.optional(),
    until: isoDate.optional(),
    metadata: z.record(z.string(), z.string()).optional(),
  })
  .strict();

export const BulkActionBodySchema = z
  .object({
    runIds: z.array(z.string()).min(1).max(1000).optional(),
    filter: BulkFilterSchema.optional(),
  })
  .strict()
  .superRefine((body, ctx) => {
    if ((body.runIds === undefined) === (body.filter === undefined)) {
      ctx.addIssue({ code: "custom", path: ["runIds"], message: "give either runIds or filter (the list's filters), not both or neither" });
    }
  })
  .openapi("BulkAction");

export const BulkActionResultSchema = z
  .object({
    affected: z.number().openapi({ description: "How many runs were cancelled (or replayed)." }),
    runIds: z.array(z.string()).openapi({ description: "Those runs." }),
  })
  .openapi("BulkActionResult");
