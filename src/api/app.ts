import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { getCookie } from "hono/cookie";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ENGINE_CALLS_PATH, type RunStatus } from "@spindle/worker-sdk/protocol";
import { httpStatusOf, SpindleError } from "../core/errors";
import { tenantForToken } from "../core/tenants";
import type { Env } from "../env";
import {
  BulkActionBodySchema,
  BulkActionResultSchema,
  BulkEventBodySchema,
  BulkTriggerBodySchema,
  BulkTriggerResultSchema,
  ErrorSchema,
  EventBodySchema,
  IdempotencyHeaders,
  ConcurrencyListSchema,
  ListQuery,
  RateLimitBodySchema,
  RateLimitKeyParams,
  RateLimitListSchema,
  RateLimitSchema,
  RunIdParams,
  RunListSchema,
  RunSchema,
  StreamQuery,
  TriggerBodySchema,
  TriggerResultSchema,
  WaitQuery,
  RegisterWorkerBodySchema,
  WorkerListSchema,
  WorkerSchema,
  WorkflowListSchema,
  WorkflowNameParams,
} from "./schemas";
import { bodyLimits } from "./body-limits";
import { registerTriggerRoutes } from "./trigger-routes";
import { EventPushResultSchema } from "./trigger-schemas";
import { allowedMethods, corsOrigins } from "./http-rules";
import { workerCall } from "./worker-calls";
import { EngineService, type RunSelection } from "./service";
import { dashboard, SESSION_COOKIE } from "../dashboard/routes";
import { RUN_INDEX_SHARDS } from "../core/names";
import { resumeOffset } from "../core/sse";

const OPENAPI_PATH = "/api/v1/openapi.json";

export type AppEnv = { Bindings: Env; Variables: { service: EngineService } };

export const errorResponses = {
  400: { description: "Bad request: the message names the failing field (or the body is not JSON, or nests too deep)", content: { "application/json": { schema: ErrorSchema } } },
  401: { description: "Missing or unknown bearer token", content: { "application/json": { schema: ErrorSchema } } },
  404: { description: "Not found", content: { "application/json": { schema: ErrorSchema } } },
  413: { description: "The request body is over the size limit", content: { "application/json": { schema: ErrorSchema } } },
} as const;

const idempotencyConflict = {
  409: { description: "The Idempotency-Key was used with a different request in the last 24 hours", content: { "application/json": { schema: ErrorSchema } } },
} as const;

/** A trigger conflicts with an earlier one's key, or names a workflow whose workers cannot run it. */
const triggerConflict = {
  409: {
    description:
      "`workflow.unavailable`: the workflow is known but its workers are refused or unreachable (the message says why); `idempotency.conflict`: the Idempotency-Key was used with a different request in the last 24 hours",
    content: { "application/json": { schema: ErrorSchema } },
  },
} as const;

/** Routes that take a payload (an input, an event) refuse one over the size limit. */
export const tooLarge = {
  413: {
    description: "A field is over its size limit (`payload.too_large`; `fields` names it and the limit, see the README's Limits)",
    content: { "application/json": { schema: ErrorSchema } },
  },
} as const;

/** Every route that takes a body refuses one that is not JSON. */
export const notJson = {
  415: { description: "The body is not JSON (`Content-Type: application/json`)", content: { "application/json": { schema: ErrorSchema } } },
} as const;

/** A route of the public API: named, and behind the bearer scheme. */
export function route<const R extends Parameters<typeof createRoute>[0]>(operationId: string, config: R) {
  const responses = config.method === "get" ? config.responses : { ...crossOrigin, ...config.responses };
  return createRoute({ ...config, responses, operationId, security: [{ bearer: [] }] });
}

/** A write sent with the dashboard's session cookie from another origin (see `auth`). */
const crossOrigin = {
  403: { description: "Signed in by the dashboard's session cookie but sent from another origin (`auth.cross_origin`)", content: { "application/json": { schema: ErrorSchema } } },
} as const;

export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

/** Validation failures of params, query and body all become one 400 shape naming the field. */
function validationHook(result: { success: boolean; error?: z.ZodError; target?: string }) {
  if (result.success || !result.error) return;
  const where = result.target === "json" ? "body" : result.target === "param" ? "path" : (result.target ?? "request");
  const fields = result.error.issues.map((i) => ({
    path: [where, ...i.path.map(String)].join("."),
    message: i.message,
  }));
  throw new SpindleError("request.invalid", fields.map((f) => `${f.path}: ${f.message}`).join("; "), { fields });
}

/** Bodies must be JSON; say so plainly instead of validating an empty object. */
const jsonOnly: MiddlewareHandler = async (c, next) => {
  const type = c.req.header("content-type") ?? "";
  const length = c.req.header("content-length");
  const hasBody = length !== undefined ? length !== "0" : c.req.raw.body !== null;
  if (hasBody && !/^application\/([\w.-]+\+)?json/i.test(type)) {
    throw new SpindleError("request.unsupported_media_type", "the request body must be JSON (Content-Type: application/json)");
  }
  await next();
};

/**
 * The tenant comes from the bearer token, or from the dashboard's session cookie (which holds the
 * same token). A request signed in by cookie that changes something must come from the dashboard's
 * own origin (with SameSite=Strict, a second guard against cross-site requests).
 */
const auth: MiddlewareHandler<AppEnv> = async (c, next) => {
  const header = c.req.header("authorization");
  let token = /^Bearer\s+(.+)$/i.exec(header ?? "")?.[1]?.trim();
  if (!token && !header) {
    token = getCookie(c, SESSION_COOKIE);
    const origin = c.req.header("origin");
    if (token && c.req.method !== "GET" && origin !== new URL(c.req.url).origin) {
      throw new SpindleError("auth.cross_origin", "a request signed in by the dashboard's cookie must come from the dashboard's own pages");
    }
  }
  if (!token) throw new SpindleError("auth.missing_token", "missing bearer token: send 'Authorization: Bearer <token>'");
  const tenant = await tenantForToken(c.env, token);
  if (!tenant) throw new SpindleError("auth.invalid_token", "the bearer token is not valid");
  c.set("service", new EngineService(c.env, tenant));
  await next();
};

export function createApp(): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  app.onError((err, c) => errorResponse(c, err));
  app.notFound((c) => {
    // A path that exists under other methods answers 405 with what it allows.
    const allowed = allowedMethods(app, c.req.path);
    if (allowed.length) {
      c.header("allow", allowed.join(", "));
      return errorResponse(c, new SpindleError("route.method_not_allowed", `${c.req.method} is not allowed on ${c.req.path}; use ${allowed.join(" or ")}`));
    }
    return errorResponse(c, new SpindleError("route.not_found", `no route ${c.req.method} ${c.req.path}`));
  });

  // CORS is off unless SPINDLE_CORS_ORIGINS names the origins (or `*`) that browsers may call from.
  app.use("/api/v1/*", async (c, next) => {
    const origins = corsOrigins(c.env.SPINDLE_CORS_ORIGINS);
    if (!origins) return next();
    return cors({
      origin: origins === "*" ? "*" : (origin) => (origins.includes(origin) ? origin : null),
      allowMethods: ["GET", "POST", "OPTIONS"],
      allowHeaders: ["authorization", "content-type", "idempotency-key"],
      maxAge: 600,
    })(c, next);
  });

  // Signed calls from workers served over HTTPS (what a service binding's RPC carries otherwise).
  app.post(ENGINE_CALLS_PATH, (c) => workerCall(c.env, c.req.raw));

  app.route("/", dashboard());

  app.use("/api/v1/*", (c, next) => (c.req.path === OPENAPI_PATH ? next() : auth(c, next)));
  app.use("/api/v1/*", async (c, next) => (c.req.method === "POST" ? jsonOnly(c, next) : next()));
  app.use("/api/v1/*", bodyLimits);

  app.openapi(
    route("triggerRun", {
      method: "post",
      path: "/api/v1/workflows/{name}/runs",
      summary: "Trigger a run of a workflow or standalone task",
      description:
        "Answers 202 with the run's id at once. With `wait=SECONDS` it waits for the run to end and answers like the result route: 200 with the run once it has ended, 202 with the run if it is still going.",
      request: {
        params: WorkflowNameParams,
        query: WaitQuery,
        headers: IdempotencyHeaders,
        body: { required: false, content: { "application/json": { schema: TriggerBodySchema } } },
      },
      responses: {
        202: json(TriggerResultSchema.or(RunSchema), "The run was created (with `wait`: the run, still going)"),
        200: json(RunSchema, "With `wait`: the run, ended"),
        ...tooLarge,
        ...notJson,
        ...errorResponses,
        ...triggerConflict,
      },
    }),
    async (c) => {
      const { name } = c.req.valid("param");
      const { wait } = c.req.valid("query");
      const body = hasJson(c) ? c.req.valid("json") : {};
      const result = await c.var.service.trigger(
        {
          workflow: name,
          input: body.input ?? null,
          additionalMetadata: body.additionalMetadata,
          priority: body.priority,
          idempotencyKey: c.req.header("idempotency-key"),
        },
        "header.Idempotency-Key",
      );
      if (!wait) return c.json(result, 202);
      const run = await c.var.service.waitForRun(result.runId, Math.round(wait * 1000));
      return isEnded(run.status) ? c.json(run, 200) : c.json(run, 202);
    },
  );

  app.openapi(
    route("getRun", {
      method: "get",
      path: "/api/v1/runs/{runId}",
      summary: "Get a run with its tasks, attempts, outputs and logs",
      request: { params: RunIdParams },
      responses: { 200: json(RunSchema, "The run"), ...errorResponses },
    }),
    async (c) => c.json(await c.var.service.getRun(c.req.valid("param").runId), 200),
  );

  app.openapi(
    route("getRunResult", {
      method: "get",
      path: "/api/v1/runs/{runId}/result",
      summary: "Wait for a run to end (long poll)",
      description: "200 with the run once it has ended; 202 with the run if it is still going when the wait is over.",
      request: { params: RunIdParams, query: WaitQuery },
      responses: { 200: json(RunSchema, "The run has ended"), 202: json(RunSchema, "The run is still going"), ...errorResponses },
    }),
    async (c) => {
      const { runId } = c.req.valid("param");
      const { wait } = c.req.valid("query");
      const run = await c.var.service.waitForRun(runId, Math.round((wait ?? 0) * 1000));
      return isEnded(run.status) ? c.json(run, 200) : c.json(run, 202);
    },
  );

  app.openapi(
    route("listRuns", {
      method: "get",
      path: "/api/v1/runs",
      summary: "List runs, newest first",
      request: { query: ListQuery },
      responses: { 200: json(RunListSchema, "A page of runs"), ...errorResponses },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const statuses = q.status?.split(",").map((s) => s.trim().toUpperCase()) ?? [];
      const known = new Set(["QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"]);
      const bad = statuses.find((s) => !known.has(s));
      if (bad) {
        throw new SpindleError("request.invalid", `query.status: unknown status '${bad}'`, {
          fields: [{ path: "query.status", message: `unknown status '${bad}'` }],
        });
      }
      const metadata: Record<string, string> = {};
      for (const pair of [q.metadata ?? []].flat()) {
        const at = pair.indexOf(":");
        if (at <= 0) {
          throw new SpindleError("request.invalid", "query.metadata: expected key:value", {
            fields: [{ path: "query.metadata", message: "expected key:value" }],
          });
        }
        metadata[pair.slice(0, at)] = pair.slice(at + 1);
      }
      const list = await c.var.service.listRuns({
        workflow: q.workflow,
        status: statuses as RunStatus[],
        since: q.since,
        until: q.until,
        limit: q.limit,
        cursor: q.cursor,
        metadata,
      });
      return c.json(list, 200);
    },
  );

  app.openapi(
    route("cancelRun", {
      method: "post",
      path: "/api/v1/runs/{runId}/cancel",
      summary: "Cancel a run: queued tasks never start, running ones are aborted",
      request: { params: RunIdParams },
      responses: { 200: json(RunSchema, "The run after cancellation"), ...notJson, ...errorResponses },
    }),
    async (c) => c.json(await c.var.service.cancelRun(c.req.valid("param").runId), 200),
  );

  app.openapi(
    route("replayRun", {
      method: "post",
      path: "/api/v1/runs/{runId}/replay",
      summary: "Re-run a finished run's failed and cancelled tasks and what depends on them",
      request: { params: RunIdParams },
      responses: {
        200: json(RunSchema, "The run, running again"),
        409: json(ErrorSchema, "The run is still going, or has nothing to replay"),
        ...notJson,
        ...errorResponses,
      },
    }),
    async (c) => c.json(await c.var.service.replayRun(c.req.valid("param").runId), 200),
  );

  for (const action of ["cancel", "replay"] as const) {
    app.openapi(
      route(action === "cancel" ? "cancelRuns" : "replayRuns", {
        method: "post",
        path: `/api/v1/runs/${action}`,
        summary: action === "cancel" ? "Cancel many runs: these ids, or every run a filter matches" : "Replay many runs: these ids, or every run a filter matches",
        description:
          (action === "cancel" ? "Cancels the selected runs that are still going (QUEUED, RUNNING)." : "Replays the selected runs that FAILED or were CANCELLED.") +
          " Give `runIds` (at most 1000) or `filter` (the list's filters: workflow, status, since, until, metadata); a filter acts on at most 1000 runs per call (call again for more). Answers how many were affected, and which.",
        request: { body: { required: true, content: { "application/json": { schema: BulkActionBodySchema } } } },
        responses: {
          200: json(BulkActionResultSchema, "The runs acted on"),
          ...notJson,
          ...errorResponses,
        },
      }),
      async (c) => {
        const body = c.req.valid("json");
        const selection: RunSelection = body.runIds
          ? { runIds: body.runIds }
          : { filter: { ...body.filter, status: body.filter?.status === undefined ? undefined : [body.filter.status].flat() } };
        const result = action === "cancel" ? await c.var.service.cancelRuns(selection) : await c.var.service.replayRuns(selection);
        return c.json(result, 200);
      },
    );
  }

  app.openapi(
    route("streamRun", {
      method: "get",
      path: "/api/v1/runs/{runId}/stream",
      summary: "A run's stream, as Server-Sent Events",
      description:
        "Every chunk the run's tasks put with `ctx.putStream`, in order, as an event whose `id` is the chunk's offset (from 0) and whose `data` is the chunk; chunks put later are sent as they come. Once the run has ended and every chunk was sent, an `end` event (`data`: `{status, length}`) closes the stream. To resume after a disconnect, send `Last-Event-ID` (the last offset received) or `?offset=` (the first offset wanted): nothing is lost or repeated.",
      request: { params: RunIdParams, query: StreamQuery },
      responses: {
        200: { description: "The stream", content: { "text/event-stream": { schema: { type: "string" } } } },
        ...errorResponses,
      },
    }),
    async (c) => {
      const { runId } = c.req.valid("param");
      const from = resumeOffset(c.req.header("last-event-id"), c.req.valid("query").offset);
      if (from === null) {
        throw new SpindleError("request.invalid", "header.Last-Event-ID: must be the offset of a chunk", {
          fields: [{ path: "header.Last-Event-ID", message: "must be the offset of a chunk" }],
        });
      }
      return c.var.service.openStream(runId, from) as unknown as never;
    },
  );

  // Live channels: WebSockets the objects accept with the hibernation API (an idle one costs nothing).
  const upgrade = {
    101: { description: "Switching to a WebSocket: a `hello` first, then one message per change" },
    426: { description: "Not a WebSocket upgrade", content: { "application/json": { schema: ErrorSchema } } },
  } as const;
  const requireUpgrade = (c: Context) => {
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") throw new SpindleError("request.upgrade_required", "this route speaks WebSocket: send 'Upgrade: websocket'");
  };
  app.openapi(
    route("watchRun", {
      method: "get",
      path: "/api/v1/live/runs/{runId}",
      summary: "Watch a run (WebSocket)",
      description:
        "The run's object tells its watchers of each change, at most every 100 ms: `{type: \"changed\", runId, status, streamLength}`, after a first `{type: \"hello\", …}` that says where the run is now (a page that reconnects reads the run again). Send `ping` to hear `pong` (answered without waking the object).",
      request: { params: RunIdParams },
      responses: { ...upgrade, ...errorResponses },
    }),
    async (c) => {
      requireUpgrade(c);
      return c.var.service.watchRun(c.req.valid("param").runId, c.req.raw) as unknown as never;
    },
  );
  app.openapi(
    route("watchRuns", {
      method: "get",
      path: "/api/v1/live/index/{shard}",
      summary: "Watch the runs list (WebSocket, one per index shard)",
      description: `The runs index is sharded by run id (${RUN_INDEX_SHARDS} shards, 0 to ${RUN_INDEX_SHARDS - 1}); a runs page opens one socket per shard. Each tells of the runs created or changed in it: \`{type: "runs", runs: RunSummary[]}\`, after a first \`{type: "hello"}\`.`,
      request: { params: z.object({ shard: z.coerce.number().int().min(0).max(RUN_INDEX_SHARDS - 1).openapi({ param: { name: "shard", in: "path" } }) }) },
      responses: { ...upgrade, ...errorResponses },
    }),
    async (c) => {
      requireUpgrade(c);
      return c.var.service.watchRuns(c.req.valid("param").shard, c.req.raw) as unknown as never;
    },
  );

  app.openapi(
    route("pushEvent", {
      method: "post",
      path: "/api/v1/events",
      summary: "Push an event: it starts the workflows whose onEvents match its key and wakes every task waiting for it",
      request: { headers: IdempotencyHeaders, body: { required: true, content: { "application/json": { schema: EventBodySchema } } } },
      responses: {
        200: json(EventPushResultSchema, "The event was recorded, its runs started and its waiters woken"),
        ...tooLarge,
        ...notJson,
        ...errorResponses,
        ...idempotencyConflict,
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const result = await c.var.service.pushEvent(
        {
          key: body.key,
          payload: body.payload ?? null,
          additionalMetadata: body.additionalMetadata,
          scope: body.scope,
          idempotencyKey: c.req.header("idempotency-key"),
        },
        "header.Idempotency-Key",
      );
      return c.json(result, 200);
    },
  );

  app.openapi(
    route("triggerRuns", {
      method: "post",
      path: "/api/v1/runs/bulk",
      summary: "Trigger many runs: every one or none",
      description:
        "Every item is checked, and every `idempotencyKey` reserved, before any run is created. Send a batch that failed half-way again with the same keys to finish it.",
      request: { body: { required: true, content: { "application/json": { schema: BulkTriggerBodySchema } } } },
      responses: { 202: json(BulkTriggerResultSchema, "The runs, in order"), ...notJson, ...errorResponses, ...triggerConflict },
    }),
    async (c) => {
      const { runs } = c.req.valid("json");
      const results = await c.var.service.triggerMany(
        runs.map((r) => ({ workflow: r.workflow, input: r.input ?? null, additionalMetadata: r.additionalMetadata, priority: r.priority, idempotencyKey: r.idempotencyKey })),
      );
      return c.json({ runs: results }, 202);
    },
  );

  app.openapi(
    route("pushEvents", {
      method: "post",
      path: "/api/v1/events/bulk",
      summary: "Push many events: every one or none",
      request: { body: { required: true, content: { "application/json": { schema: BulkEventBodySchema } } } },
      responses: { 200: json(z.object({ events: z.array(EventPushResultSchema) }).openapi("BulkEventsPushed"), "The events and their runs, in order"), ...notJson, ...errorResponses, ...idempotencyConflict },
    }),
    async (c) => {
      const { events } = c.req.valid("json");
      const results = await c.var.service.pushEvents(events.map((e) => ({ ...e, payload: e.payload ?? null })));
      return c.json({ events: results }, 200);
    },
  );

  app.openapi(
    route("listWorkflows", {
      method: "get",
      path: "/api/v1/workflows",
      summary: "Registered workflows and standalone tasks",
      responses: { 200: json(WorkflowListSchema, "The tenant's workflows"), ...errorResponses },
    }),
    async (c) => c.json({ workflows: await c.var.service.workflows() }, 200),
  );

  app.openapi(
    route("listWorkers", {
      method: "get",
      path: "/api/v1/workers",
      summary: "Registered workers and their slot pools",
      responses: { 200: json(WorkerListSchema, "The tenant's workers"), ...errorResponses },
    }),
    async (c) => c.json({ workers: await c.var.service.workers() }, 200),
  );

  registerTriggerRoutes(app);
  app.openapi(
    route("upsertRateLimit", {
      method: "put",
      path: "/api/v1/rate-limits/{key}",
      summary: "Define (or change) a static rate limit",
      description: "Tasks name it with `rateLimits: [{ staticKey }]`; a task that names a key not defined here waits, saying so.",
      request: { params: RateLimitKeyParams, body: { required: true, content: { "application/json": { schema: RateLimitBodySchema } } } },
      responses: { 200: json(RateLimitSchema, "The rate limit as it stands"), ...errorResponses },
    }),
    async (c) => {
      const { key } = c.req.valid("param");
      const { limit, duration } = c.req.valid("json");
      return c.json(await c.var.service.upsertRateLimit(key, limit, duration), 200);
    },
  );

  app.openapi(
    route("listRateLimits", {
      method: "get",
      path: "/api/v1/rate-limits",
      summary: "Rate limits: static ones, and dynamic ones in use",
      responses: { 200: json(RateLimitListSchema, "Each key with its limit, duration, units left and next refill"), ...errorResponses },
    }),
    async (c) => c.json({ rateLimits: await c.var.service.rateLimits() }, 200),
  );

  app.openapi(
    route("listConcurrency", {
      method: "get",
      path: "/api/v1/concurrency",
      summary: "Concurrency keys that hold or queue runs",
      responses: { 200: json(ConcurrencyListSchema, "Each active key: running, queued, maxRuns"), ...errorResponses },
    }),
    async (c) => c.json({ concurrency: await c.var.service.concurrency() }, 200),
  );

  app.openapi(
    route("registerWorker", {
      method: "post",
      path: "/api/v1/workers",
      summary: "Register (or re-sync) a worker served over HTTPS",
      description:
        "The engine asks the worker at `url` (served with `spindle.serve()`) to describe itself, with a request signed by the tenant's key, and stores the URL. A worker that refuses the signature answers 409 `worker.refused`; one that cannot be reached 502 `worker.unreachable`. Either way it is listed by `GET /api/v1/workers` with the reason.",
      request: { body: { required: true, content: { "application/json": { schema: RegisterWorkerBodySchema } } } },
      responses: {
        200: json(WorkerSchema, "The worker, active (a workflow whose definition differs from another worker's is refused on its own: see `workflows`)"),
        409: json(ErrorSchema, "The worker refused the engine's signature (it holds another token), or its name is taken"),
        502: json(ErrorSchema, "The worker could not be reached or did not answer as a Spindle worker"),
        ...notJson,
        ...errorResponses,
      },
    }),
    async (c) => c.json(await c.var.service.registerUrl(c.req.valid("json").url, new URL(c.req.url).origin), 200),
  );

  app.doc31(OPENAPI_PATH, (c) => ({
    openapi: "3.1.0",
    info: {
      title: "Spindle API",
      version: "1",
      description: "Durable task orchestration on Cloudflare. Every operation takes `Authorization: Bearer <token>`; this document is public.",
      license: { name: "MIT", identifier: "MIT" },
    },
    servers: [{ url: new URL(c.req.url).origin, description: "This engine" }],
    security: [{ bearer: [] }],
  }));
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer", description: "An API token of the tenant" });

  return app;
}

function isEnded(status: RunStatus): boolean {
  return status === "COMPLETED" || status === "FAILED" || status === "CANCELLED";
}

function hasJson(c: Context): boolean {
  return /^application\/([\w.-]+\+)?json/i.test(c.req.header("content-type") ?? "");
}

function errorResponse(c: Context, err: unknown): Response {
  if (err instanceof SpindleError) {
    const status = err.code === "request.unsupported_media_type" ? 415 : httpStatusOf(err.code);
    const body: { code: string; message: string; fields?: { path: string; message: string }[] } = {
      code: err.code,
      message: err.message,
    };
    if (err.fields) body.fields = err.fields;
    return c.json({ error: body }, status as ContentfulStatusCode);
  }
  if (err instanceof HTTPException) {
    const code = err.status === 400 && /json/i.test(err.message) ? "request.invalid_json" : "request.invalid";
    const message = code === "request.invalid_json" ? "the request body is not valid JSON" : err.message;
    return c.json({ error: { code, message } }, err.status);
  }
  console.error("unhandled error", err);
  return c.json({ error: { code: "internal.error", message: "internal error" } }, 500);
}
