import { runDurableObjectAlarm } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { advanceClock, clock, resetClock } from "../../src/core/clock";
import { flowOpened } from "../worker/flow";
import { api, OTHER_TOKEN, push, result, task, TOKEN, trigger, until } from "./helpers";

const ORIGIN = "http://spindle.test";
const fetchPage = (path: string, init: RequestInit = {}) => exports.default.fetch(`${ORIGIN}${path}`, { redirect: "manual", ...init });
const signIn = (token: string, origin = ORIGIN, base = ORIGIN) =>
  exports.default.fetch(`${base}/sign-in`, {
    method: "POST",
    redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded", origin },
    body: new URLSearchParams({ token }).toString(),
  });

describe("the dashboard's session", () => {
  it("sends a visitor without a session to sign in", async () => {
    const res = await fetchPage("/");
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/sign-in");
    const form = await (await fetchPage("/sign-in")).text();
    expect(form).toContain('<label for="token">API token</label>');
  });

  it("keeps the token in an HttpOnly, SameSite=Strict cookie, Secure over HTTPS; a wrong token gets none", async () => {
    const good = await signIn(TOKEN);
    expect(good.status).toBe(303);
    expect(good.headers.get("set-cookie")).toBe(`spindle_session=${TOKEN}; Path=/; HttpOnly; SameSite=Strict`);
    const secure = await signIn(TOKEN, "https://spindle.test", "https://spindle.test");
    expect(secure.headers.get("set-cookie")).toContain("; Secure");
    const bad = await signIn("not-a-token-of-anyone");
    expect(bad.status).toBe(401);
    expect(bad.headers.get("set-cookie")).toBeNull();
    const crossSite = await signIn(TOKEN, "https://evil.example");
    expect(crossSite.status).toBe(403);
    expect(crossSite.headers.get("set-cookie")).toBeNull();
  });

  it("lets the session call the API from the dashboard's own origin only", async () => {
    const runId = await trigger("t-echo", {});
    await result(runId);
    const cookie = `spindle_session=${TOKEN}`;
    const read = await fetchPage(`/api/v1/runs/${runId}`, { headers: { cookie } });
    expect(read.status).toBe(200);
    const post = (origin?: string) =>
      fetchPage("/api/v1/runs/cancel", {
        method: "POST",
        headers: { cookie, "content-type": "application/json", ...(origin ? { origin } : {}) },
        body: JSON.stringify({ runIds: [runId] }),
      });
    expect((await post(ORIGIN)).status).toBe(200);
    for (const origin of ["https://evil.example", undefined]) {
      const res = await post(origin);
      expect(res.status).toBe(403);
      expect(((await res.json()) as any).error.code).toBe("auth.cross_origin");
    }
  });

  it("shows a run's page to its tenant, and nothing of it to another", async () => {
    const runId = await trigger("t-echo", { secret: "only-for-default" });
    await result(runId);
    const mine = await fetchPage(`/runs/${runId}`, { headers: { cookie: `spindle_session=${TOKEN}` } });
    expect(mine.status).toBe(200);
    const page = await mine.text();
    expect(page.startsWith("<!DOCTYPE html>")).toBe(true);
    expect(page).toContain("only-for-default");
    const theirs = await fetchPage(`/runs/${runId}`, { headers: { cookie: `spindle_session=${OTHER_TOKEN}` } });
    expect(theirs.status).toBe(404);
    const text = await theirs.text();
    expect(text).toContain("This tenant has no run");
    expect(text).not.toContain("only-for-default");
  });
});

/** A page as the signed-in tenant (or another) sees it. */
async function pageText(path: string, token = TOKEN): Promise<{ status: number; text: string }> {
  const res = await fetchPage(path, { headers: { cookie: `spindle_session=${token}` } });
  return { status: res.status, text: await res.text() };
}

const rowsOf = (html: string, attribute: string) => [...html.matchAll(new RegExp(`<tr ${attribute}="([^"]+)"`, "g"))].map((m) => m[1]);

describe("the dashboard's events page", () => {
  it("lists pushed events newest first with their key, payload, metadata, the runs they started and the workflows they refused", async () => {
    const name = `Dash-${crypto.randomUUID()}`;
    const started = await api("POST", "/api/v1/events", { key: "tr:user:created", payload: { name }, additionalMetadata: { source: "dash-test" } });
    expect(started.status).toBe(200);
    const runId = started.body.runs[0].runId as string;
    const refused = await api("POST", "/api/v1/events", { key: "tr:user:created", payload: { name: 7 } });
    expect(refused.body.runs).toEqual([]);

    const page = await pageText("/events?key=tr%3Auser%3Acreated");
    expect(page.status).toBe(200);
    const rows = rowsOf(page.text, "data-event-id");
    expect(rows.indexOf(refused.body.eventId)).toBeGreaterThanOrEqual(0);
    expect(rows.indexOf(refused.body.eventId)).toBeLessThan(rows.indexOf(started.body.eventId));
    expect(page.text).toContain(`href="/events/${started.body.eventId}"`);
    expect(page.text).toContain(`href="/runs/${runId}"`);
    expect(page.text).toContain(name);
    expect(page.text).toContain("source:dash-test");
    expect(page.text).toContain("REFUSED</span> tr-greet");
    expect(page.text).toContain('aria-current="page">Events</a>');

    // Filters: another key, or a time range that ends before the events, shows neither.
    for (const query of ["key=tr%3Aorder%3Apaid", "key=tr%3Auser%3Acreated&until=2020-01-01T00%3A00%3A00"]) {
      const other = await pageText(`/events?${query}`);
      expect(other.status).toBe(200);
      expect(rowsOf(other.text, "data-event-id")).not.toContain(started.body.eventId);
      expect(other.text).not.toContain(name);
    }
    const aMinuteAgo = new Date(Date.now() - 60_000).toISOString().slice(0, 19);
    const since = (await pageText(`/events?key=tr%3Auser%3Acreated&since=${encodeURIComponent(aMinuteAgo)}`)).text;
    expect(rowsOf(since, "data-event-id")).toContain(started.body.eventId);
    const bad = await pageText("/events?since=yesterday");
    expect(bad.text).toContain("since: not a date and time");
  });

  it("pages through events with a cursor, 50 at a time", async () => {
    const key = `dash:page:${crypto.randomUUID()}`;
    const ids: string[] = [];
    for (let i = 0; i < 51; i++) ids.push(await push(key, { i }));
    const first = await pageText(`/events?key=${encodeURIComponent(key)}`);
    expect(rowsOf(first.text, "data-event-id")).toEqual(ids.slice(1).reverse());
    const older = first.text.match(/href="(\/events\?[^"]*cursor=[^"]+)">\s*Older events/);
    expect(older).not.toBeNull();
    const second = await pageText(older![1]!.replaceAll("&amp;", "&"));
    expect(rowsOf(second.text, "data-event-id")).toEqual([ids[0]]);
    expect(second.text).not.toContain("Older events");
    expect(second.text).toContain("Newest");
  });

  it("shows an event's own page with its payload and the waiting task it woke; another tenant gets a 404 and none of it", async () => {
    const userId = `dash-${crypto.randomUUID()}`;
    const waiter = await trigger("d-event", { userId });
    await until(waiter, (run) => task(run, "d-event").evicted === true);
    const eventId = await push("d:update", { userId, note: "woken-by-dashboard-test" }, { additionalMetadata: { origin: "dash" } });
    expect((await result(waiter)).status).toBe("COMPLETED");
    let page = { status: 0, text: "" };
    await vi.waitUntil(async () => (page = await pageText(`/events/${eventId}`)).text.includes(`href="/runs/${waiter}"`), { timeout: 10_000 });
    expect(page.status).toBe(200);
    expect(page.text).toContain("woken-by-dashboard-test");
    expect(page.text).toContain("origin:dash");
    expect(page.text).toMatch(new RegExp(`d-event of\\s*<a class="mono" href="/runs/${waiter}"`));

    const theirs = await pageText(`/events/${eventId}`, OTHER_TOKEN);
    expect(theirs.status).toBe(404);
    expect(theirs.text).toContain(`This tenant has no event ${eventId}.`);
    expect(theirs.text).not.toContain("woken-by-dashboard-test");
    const theirList = await pageText("/events", OTHER_TOKEN);
    expect(theirList.status).toBe(200);
    expect(theirList.text).not.toContain(eventId);
    expect(theirList.text).not.toContain("woken-by-dashboard-test");
    expect((await pageText("/events/not-an-event-id")).status).toBe(404);
  });
});

describe("the dashboard's trigger pages", () => {
  afterEach(() => resetClock());

  it("lists crons with their workflow, expression, time zone, source and next run; filters by workflow; another tenant sees none", async () => {
    const name = `dash-cron-${crypto.randomUUID()}`;
    const created = await api("POST", "/api/v1/workflows/t-echo/crons", { name, expression: "0 9 * * *", timezone: "Europe/Berlin" });
    expect(created.status).toBe(201);
    const page = await pageText("/crons");
    expect(page.status).toBe(200);
    const row = page.text.slice(page.text.indexOf(`data-cron-id="${created.body.id}"`));
    expect(row).toMatch(new RegExp(`<strong>${name}</strong>.*<td>t-echo</td><td class="mono">0 9 \\* \\* \\*</td><td>Europe/Berlin</td><td>API</td><td>${created.body.nextRunAt.replace("T", " ").replace(/\.\d+Z$/, "Z")}</td><td>—</td>`, "s"));
    expect((await pageText("/crons?workflow=t-echo")).text).toContain(name);
    expect((await pageText("/crons?workflow=tr-greet")).text).not.toContain(name);
    expect((await pageText("/crons", OTHER_TOKEN)).text).not.toContain(name);
  });

  it("lists one-time schedules with their time and status, and the run once fired; another tenant sees none", async () => {
    const at = new Date(clock.now() + 3_600_000).toISOString();
    const created = await api("POST", "/api/v1/workflows/t-echo/schedules", { at, input: { from: "dashboard" } });
    expect(created.status).toBe(201);
    const { scheduleId } = created.body as { scheduleId: string };
    const rowOf = (html: string) => html.slice(html.indexOf(`data-schedule-id="${scheduleId}"`)).split("</tr>")[0]!;
    const before = await pageText("/schedules");
    expect(rowOf(before.text)).toContain("SCHEDULED");
    expect(rowOf(before.text)).toContain("not yet started");
    expect((await pageText("/schedules?status=FIRED")).text).not.toContain(scheduleId);

    advanceClock(3_600_000 + 1_000);
    expect(await runDurableObjectAlarm(env.TRIGGERS.getByName("triggers:default"))).toBe(true);
    const fired = (await api("GET", `/api/v1/schedules/${scheduleId}`)).body;
    expect(fired.status).toBe("FIRED");
    const after = await pageText("/schedules?status=FIRED");
    expect(rowOf(after.text)).toContain('<span class="status s-FIRED">FIRED</span>');
    expect(rowOf(after.text)).toContain(`href="/runs/${fired.runId}"`);
    expect((await pageText("/schedules", OTHER_TOKEN)).text).not.toContain(scheduleId);
  });
});

describe("the dashboard's flow control page", () => {
  it("shows rate limits with units left and the concurrency keys holding runs; another tenant sees none", async () => {
    const key = `dash-rl-${crypto.randomUUID()}`;
    expect((await api("PUT", `/api/v1/rate-limits/${key}`, { limit: 3, duration: "minute" })).status).toBe(200);
    const group = `dash-cc-${crypto.randomUUID()}`;
    const held = await trigger("f-rr", { group, tag: group });
    await vi.waitUntil(async () => ((await api("GET", "/api/v1/concurrency")).body.concurrency as { key: string; running: number }[]).some((k) => k.key === group && k.running === 1), { timeout: 10_000 });
    try {
      const page = await pageText("/flow");
      expect(page.status).toBe(200);
      expect(page.text).toMatch(new RegExp(`data-rate-limit="${key}"><td class="mono">${key}</td><td>static</td><td>3 per minute</td><td>3 / 3</td><td>—</td>`));
      expect(page.text).toMatch(new RegExp(`data-concurrency-key="${group}"><td class="mono">${group}</td><td>f-rr</td><td><span class="muted">the whole workflow</span></td><td>GROUP_ROUND_ROBIN</td><td>1</td><td>0</td><td>2</td>`));
      const theirs = await pageText("/flow", OTHER_TOKEN);
      expect(theirs.status).toBe(200);
      expect(theirs.text).not.toContain(key);
      expect(theirs.text).not.toContain(group);
    } finally {
      flowOpened.add(group);
      await result(held);
    }
  });
});
