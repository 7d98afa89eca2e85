import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { SpindleError } from "../core/errors";
import { knownTenant } from "../core/tenants";
import { checkJsonDepth, maxBodyBytes } from "./body-limits";
import { MAX_VALUE_DEPTH } from "@spindle/worker-sdk/protocol";
import { errorResponses, json, notJson, route, tooLarge, type AppEnv } from "./app";
import { ErrorSchema, WorkflowNameParams } from "./schemas";
import { EngineService } from "./service";
import {
  CronBodySchema,
  CronCreatedSchema,
  CronListQuery,
  CronListSchema,
  CronSchema,
  EventIdParams,
  EventListQuery,
  EventListSchema,
  EventPushResultSchema,
  EventViewSchema,
  FilterBodySchema,
  FilterListQuery,
  FilterListSchema,
  FilterSchema,
  IdParams,
  ScheduleBodySchema,
  ScheduleCreatedSchema,
  ScheduleListQuery,
  ScheduleListSchema,
  ScheduleSchema,
  WebhookBodySchema,
  WebhookDeliveryParams,
  WebhookNameParams,
  WebhookSchema,
} from "./trigger-schemas";

const conflict = (description: string) => ({ 409: { description, content: { "application/json": { schema: ErrorSchema } } } }) as const;

/** Filters, crons, schedules, the event log and webhook receivers; every route thin over `TriggerService`. */
export function registerTriggerRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(
    route("createFilter", {
      method: "post",
      path: "/api/v1/filters",
      summary: "Create a filter on the events that start a workflow",
      request: { body: { required: true, content: { "application/json": { schema: FilterBodySchema } } } },
      responses: { 201: json(FilterSchema, "The filter"), ...tooLarge, ...notJson, ...errorResponses },
    }),
    async (c) => c.json(await c.var.service.triggers.createFilter(c.req.valid("json"), "body."), 201),
  );

  app.openapi(
    route("listFilters", {
      method: "get",
      path: "/api/v1/filters",
      summary: "List filters, newest first",
      request: { query: FilterListQuery },
      responses: { 200: json(FilterListSchema, "A page of filters"), ...errorResponses },
    }),
    async (c) => c.json(await c.var.service.triggers.listFilters(c.req.valid("query")), 200),
  );

  app.openapi(
    route("deleteFilter", {
      method: "delete",
      path: "/api/v1/filters/{id}",
      summary: "Delete a filter",
      request: { params: IdParams },
      responses: { 200: json(FilterSchema, "The deleted filter"), ...conflict("The filter is declared in code (defaultFilters)"), ...errorResponses },
    }),
    async (c) => c.json(await c.var.service.triggers.deleteFilter(c.req.valid("param").id), 200),
  );

  app.openapi(
    route("listEvents", {
      method: "get",
      path: "/api/v1/events",
      summary: "List pushed events, newest first, with the runs they started and the waiting tasks they woke",
      request: { query: EventListQuery },
      responses: { 200: json(EventListSchema, "A page of events"), ...errorResponses },
    }),
    async (c) => c.json(await c.var.service.triggers.listEvents(c.req.valid("query")), 200),
  );

  app.openapi(
    route("getEvent", {
      method: "get",
      path: "/api/v1/events/{eventId}",
      summary: "One event, with the runs it started and the waiting tasks it woke",
      request: { params: EventIdParams },
      responses: { 200: json(EventViewSchema, "The event"), ...errorResponses },
    }),
    async (c) => c.json(await c.var.service.triggers.getEvent(c.req.valid("param").eventId), 200),
  );

  app.openapi(
    route("createCron", {
      method: "post",
      path: "/api/v1/workflows/{name}/crons",
      summary: "Create a cron: a run of the workflow at every tick",
      request: { params: WorkflowNameParams, body: { required: true, content: { "application/json": { schema: CronBodySchema } } } },
      responses: {
        201: json(CronCreatedSchema, "The cron and its next tick"),
        ...conflict("The workflow already has a cron of that name"),
        ...tooLarge,
        ...notJson,
        ...errorResponses,
      },
    }),
    async (c) => {
      const cron = await c.var.service.triggers.createCron(c.req.valid("param").name, c.req.valid("json"), "body.");
      return c.json({ id: cron.id, name: cron.name, expression: cron.expression, nextRunAt: cron.nextRunAt }, 201);
    },
  );

  app.openapi(
    route("listCrons", {
      method: "get",
      path: "/api/v1/crons",
      summary: "List crons, newest first",
      request: { query: CronListQuery },
      responses: { 200: json(CronListSchema, "A page of crons"), ...errorResponses },
    }),
    async (c) => c.json(await c.var.service.triggers.listCrons(c.req.valid("query")), 200),
  );

  app.openapi(
    route("getCron", {
      method: "get",
      path: "/api/v1/crons/{id}",
      summary: "One cron",
      request: { params: IdParams },
      responses: { 200: json(CronSchema, "The cron"), ...errorResponses },
    }),
    async (c) => c.json(await c.var.service.triggers.getCron(c.req.valid("param").id), 200),
  );

  app.openapi(
    route("deleteCron", {
      method: "delete",
      path: "/api/v1/crons/{id}",
      summary: "Delete a cron: no tick starts a run after this answers",
      request: { params: IdParams },
      responses: { 200: json(CronSchema, "The deleted cron"), ...conflict("The cron is declared in code (onCrons)"), ...errorResponses },
    }),
    async (c) => c.json(await c.var.service.triggers.deleteCron(c.req.valid("param").id), 200),
  );

  app.openapi(
    route("createSchedule", {
      method: "post",
      path: "/api/v1/workflows/{name}/schedules",
      summary: "Schedule one run of the workflow at a time in the future",
      description: "The input is checked against the workflow's schema now, not when the schedule fires.",
      request: { params: WorkflowNameParams, body: { required: true, content: { "application/json": { schema: ScheduleBodySchema } } } },
      responses: { 201: json(ScheduleCreatedSchema, "The schedule"), ...tooLarge, ...notJson, ...errorResponses },
    }),
    async (c) => {
      const schedule = await c.var.service.triggers.createSchedule(c.req.valid("param").name, c.req.valid("json"), "body.");
      return c.json({ scheduleId: schedule.scheduleId, at: schedule.at }, 201);
    },
  );

  app.openapi(
    route("listSchedules", {
      method: "get",
      path: "/api/v1/schedules",
      summary: "List schedules, newest first",
      request: { query: ScheduleListQuery },
      responses: { 200: json(ScheduleListSchema, "A page of schedules"), ...errorResponses },
    }),
    async (c) => c.json(await c.var.service.triggers.listSchedules(c.req.valid("query")), 200),
  );

  app.openapi(
    route("getSchedule", {
      method: "get",
      path: "/api/v1/schedules/{id}",
      summary: "One schedule, with the run it started once fired",
      request: { params: IdParams },
      responses: { 200: json(ScheduleSchema, "The schedule"), ...errorResponses },
    }),
    async (c) => c.json(await c.var.service.triggers.getSchedule(c.req.valid("param").id), 200),
  );

  app.openapi(
    route("deleteSchedule", {
      method: "delete",
      path: "/api/v1/schedules/{id}",
      summary: "Delete a schedule that has not fired: it never will",
      request: { params: IdParams },
      responses: { 200: json(ScheduleSchema, "The deleted schedule"), ...conflict("The schedule has already fired"), ...errorResponses },
    }),
    async (c) => c.json(await c.var.service.triggers.deleteSchedule(c.req.valid("param").id), 200),
  );

  app.openapi(
    route("putWebhook", {
      method: "put",
      path: "/api/v1/webhooks/{name}",
      summary: "Configure a webhook receiver: deliveries to /webhooks/{tenant}/{name} become events",
      request: { params: WebhookNameParams, body: { required: true, content: { "application/json": { schema: WebhookBodySchema } } } },
      responses: { 200: json(WebhookSchema, "The receiver (without its secret)"), ...errorResponses },
    }),
    async (c) => c.json(await c.var.service.triggers.putWebhook(c.req.valid("param").name, c.req.valid("json")), 200),
  );

  app.openapi(
    route("listWebhooks", {
      method: "get",
      path: "/api/v1/webhooks",
      summary: "List webhook receivers (without their secrets)",
      responses: { 200: json(WebhookSchema.array(), "The receivers"), ...errorResponses },
    }),
    async (c) => c.json(await c.var.service.triggers.listWebhooks(), 200),
  );

  app.openapi(
    route("deleteWebhook", {
      method: "delete",
      path: "/api/v1/webhooks/{name}",
      summary: "Delete a webhook receiver",
      request: { params: WebhookNameParams },
      responses: { 204: { description: "Deleted" }, ...errorResponses },
    }),
    async (c) => {
      await c.var.service.triggers.deleteWebhook(c.req.valid("param").name);
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      operationId: "deliverWebhook",
      method: "post",
      path: "/webhooks/{tenant}/{name}",
      summary: "A webhook delivery: no bearer token, the signature over the raw body is the credential",
      description: "A good signature turns the JSON body into an event with the receiver's key. A bad or missing one (or a timestamp outside the tolerance) is 401 and creates nothing.",
      security: [],
      request: { params: WebhookDeliveryParams },
      responses: { 200: json(EventPushResultSchema, "The event and the runs it started"), ...errorResponses },
    }),
    async (c) => {
      const { tenant, name } = c.req.valid("param");
      // An unknown tenant answers like an unknown receiver: nothing says which tenants exist.
      if (!(await knownTenant(c.env, tenant))) throw new SpindleError("webhook.not_found", `webhook '${name}' was not found`);
      const max = maxBodyBytes(c.env);
      if (Number(c.req.header("content-length") ?? 0) > max) throw new SpindleError("request.too_large", `the request body is larger than the limit of ${max} bytes`);
      const raw = new Uint8Array(await c.req.arrayBuffer());
      if (raw.length > max) throw new SpindleError("request.too_large", `the request body is larger than the limit of ${max} bytes`);
      checkJsonDepth(new TextDecoder().decode(raw), MAX_VALUE_DEPTH);
      const result = await new EngineService(c.env, tenant).triggers.receiveWebhook(name, raw, (h) => c.req.header(h) ?? null);
      return c.json(result, 200);
    },
  );
}
