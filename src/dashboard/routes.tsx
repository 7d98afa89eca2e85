/** @jsxImportSource hono/jsx */
import { Hono, type Context, type MiddlewareHandler } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { html } from "hono/html";
import type { Child } from "hono/jsx";
import { EngineService } from "../api/service";
import { SpindleError } from "../core/errors";
import { isUlid } from "../core/ids";
import { RUN_INDEX_SHARDS } from "../core/names";
import { tenantForToken } from "../core/tenants";
import type { Env } from "../env";
import { CLIENT_SCRIPT } from "./client-script";
import { EventPage, EventsPage, parseEventsQuery } from "./events-page";
import { FlowPage } from "./flow-page";
import { NotFoundPage, SignInPage, WorkersPage } from "./other-pages";
import { RunLive, RunPage } from "./run-page";
import { parseRunsQuery, RunsLive, RunsPage, type RunsData } from "./runs-page";
import { STYLES } from "./styles";
import { CronsPage, parseTriggersQuery, SchedulesPage, TRIGGERS_PAGE_SIZE } from "./trigger-pages";

/** The session cookie: the tenant's API token, HttpOnly and SameSite=Strict (Secure over HTTPS). */
export const SESSION_COOKIE = "spindle_session";
/** The most stream chunks a run page shows (the whole stream is at `/api/v1/runs/{runId}/stream`). */
const STREAM_SHOWN = 2_000;

type DashEnv = { Bindings: Env; Variables: { service: EngineService } };

/** Pages answer only what changes when the client script asks for the live part. */
const wantsLivePart = (c: Context) => c.req.header("x-spindle-part") === "live";

/** A whole page, with its doctype (standards mode). */
const page = (c: Context, body: Child, status: 200 | 401 | 403 | 404 = 200) => c.html(html`<!DOCTYPE html>${body}`, status);

/** A page needs a session: without one (or with a token no longer valid) it sends you to sign in. */
const session: MiddlewareHandler<DashEnv> = async (c, next) => {
  const token = getCookie(c, SESSION_COOKIE);
  const tenant = token ? await tenantForToken(c.env, token) : null;
  if (!tenant) return c.redirect("/sign-in", 303);
  c.set("service", new EngineService(c.env, tenant));
  await next();
};

/** The tenant's workflow names, for the pages' workflow filters. */
const workflowNames = async (service: EngineService) => (await service.workflows()).map((w) => w.name).sort();

/** A form post must come from the dashboard's own pages. */
function sameOrigin(c: Context): boolean {
  return c.req.header("origin") === new URL(c.req.url).origin;
}

/** The dashboard: server-rendered pages (hono/jsx) and one small script that keeps them live. */
export function dashboard(): Hono<DashEnv> {
  const app = new Hono<DashEnv>();
  const asset = (body: string, type: string) => (c: Context) => c.body(body, 200, { "content-type": type, "cache-control": "no-cache" });
  app.get("/assets/app.js", asset(CLIENT_SCRIPT, "text/javascript; charset=utf-8"));
  app.get("/assets/app.css", asset(STYLES, "text/css; charset=utf-8"));

  app.get("/sign-in", (c) => page(c, <SignInPage />));
  app.post("/sign-in", async (c) => {
    if (!sameOrigin(c)) return page(c, <SignInPage error="Sign in from this page." />, 403);
    const form = await c.req.parseBody();
    const token = typeof form.token === "string" ? form.token.trim() : "";
    const tenant = token ? await tenantForToken(c.env, token) : null;
    if (!tenant) return page(c, <SignInPage error="That API token is not valid." />, 401);
    setCookie(c, SESSION_COOKIE, token, { httpOnly: true, sameSite: "Strict", secure: new URL(c.req.url).protocol === "https:", path: "/" });
    return c.redirect("/", 303);
  });
  app.post("/sign-out", (c) => {
    deleteCookie(c, SESSION_COOKIE, { path: "/", secure: new URL(c.req.url).protocol === "https:" });
    return c.redirect("/sign-in", 303);
  });

  app.get("/", session, async (c) => {
    const service = c.var.service;
    const { query, filter, problems } = parseRunsQuery((n) => c.req.query(n), (n) => c.req.queries(n));
    const { cursor: _c, limit: _l, status: _s, ...countFilter } = filter;
    const [list, counts, workflows] = await Promise.all([
      problems.length ? { runs: [], nextCursor: null } : service.listRuns(filter),
      problems.length ? {} : service.countRuns(countFilter),
      workflowNames(service),
    ]);
    const data: RunsData = { tenant: service.tenant, shards: RUN_INDEX_SHARDS, workflows, query, filter, problems, list, counts };
    return wantsLivePart(c) ? c.html(<RunsLive {...data} />) : page(c, <RunsPage {...data} />);
  });

  app.get("/runs/:runId", session, async (c) => {
    const service = c.var.service;
    const runId = c.req.param("runId");
    try {
      if (!isUlid(runId)) throw new SpindleError("run.not_found", "no such run");
      const [run, stream] = await Promise.all([service.getRun(runId), service.readStream(runId, 0, STREAM_SHOWN)]);
      const data = { tenant: service.tenant, run, stream };
      return wantsLivePart(c) ? c.html(<RunLive {...data} />) : page(c, <RunPage {...data} />);
    } catch (err) {
      if (err instanceof SpindleError && err.code === "run.not_found") {
        return page(c, <NotFoundPage tenant={service.tenant} what={`This tenant has no run ${runId}.`} />, 404);
      }
      throw err;
    }
  });

  app.get("/events", session, async (c) => {
    const service = c.var.service;
    const { query, filter, problems } = parseEventsQuery((n) => c.req.query(n));
    const list = problems.length ? { events: [], nextCursor: null } : await service.triggers.listEvents(filter);
    return page(c, <EventsPage tenant={service.tenant} query={query} problems={problems} list={list} />);
  });

  app.get("/events/:eventId", session, async (c) => {
    const service = c.var.service;
    const eventId = c.req.param("eventId");
    try {
      return page(c, <EventPage tenant={service.tenant} event={await service.triggers.getEvent(eventId)} />);
    } catch (err) {
      if (err instanceof SpindleError && err.code === "event.not_found") {
        return page(c, <NotFoundPage tenant={service.tenant} what={`This tenant has no event ${eventId}.`} />, 404);
      }
      throw err;
    }
  });

  app.get("/crons", session, async (c) => {
    const service = c.var.service;
    const query = parseTriggersQuery((n) => c.req.query(n));
    const [list, workflows] = await Promise.all([
      service.triggers.listCrons({ limit: TRIGGERS_PAGE_SIZE, ...(query.workflow ? { workflow: query.workflow } : {}), ...(query.cursor ? { cursor: query.cursor } : {}) }),
      workflowNames(service),
    ]);
    return page(c, <CronsPage tenant={service.tenant} workflows={workflows} query={query} list={list} />);
  });

  app.get("/schedules", session, async (c) => {
    const service = c.var.service;
    const query = parseTriggersQuery((n) => c.req.query(n));
    const [list, workflows] = await Promise.all([
      service.triggers.listSchedules({
        limit: TRIGGERS_PAGE_SIZE,
        ...(query.workflow ? { workflow: query.workflow } : {}),
        ...(query.status ? { status: query.status } : {}),
        ...(query.cursor ? { cursor: query.cursor } : {}),
      }),
      workflowNames(service),
    ]);
    return page(c, <SchedulesPage tenant={service.tenant} workflows={workflows} query={query} list={list} />);
  });

  app.get("/flow", session, async (c) => {
    const service = c.var.service;
    const [rateLimits, concurrency] = await Promise.all([service.rateLimits(), service.concurrency()]);
    return page(c, <FlowPage tenant={service.tenant} rateLimits={rateLimits} concurrency={concurrency} />);
  });

  app.get("/workers", session, async (c) => {
    const service = c.var.service;
    return page(c, <WorkersPage tenant={service.tenant} workers={await service.workers()} />);
  });

  return app;
}
