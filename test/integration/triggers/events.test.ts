import { env, exports } from "cloudflare:workers";
import { runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { EngineService } from "../../../src/api/service";
import { advanceClock, resetClock } from "../../../src/core/clock";
import { EVENT_INDEX_SHARDS, START_GRACE_MS } from "../../../src/events/event-index";
import { api, result, task, trigger, until } from "../helpers";

/** Events that start workflows: key patterns, filters, the input schema, idempotent pushes, the event log. */
const pushed = async (body: Record<string, unknown>, headers: Record<string, string> = {}) => {
  const res = await fetchApi("POST", "/api/v1/events", body, headers);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as { eventId: string; runs: { workflow: string; runId: string }[] };
};

async function fetchApi(method: string, path: string, body: unknown, headers: Record<string, string> = {}) {
  if (!Object.keys(headers).length) return api(method, path, body);
  const res = await exports.default.fetch(`http://spindle.test${path}`, {
    method,
    headers: { authorization: "Bearer test-token-default", "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

const runOf = (event: { runs: { workflow: string; runId: string }[] }, workflow: string) => {
  const found = event.runs.find((r) => r.workflow === workflow);
  if (!found) throw new Error(`no run of ${workflow} in ${JSON.stringify(event.runs)}`);
  return found.runId;
};

describe("events that start workflows", () => {
  it("starts one run of the matching workflow with the payload as input and the event's metadata, eventId and eventKey", async () => {
    const event = await pushed({ key: "tr:user:created", payload: { name: "Ada" }, additionalMetadata: { source: "signup" } });
    expect(event.runs).toEqual([{ workflow: "tr-greet", runId: expect.any(String) }]);
    const run = await result(runOf(event, "tr-greet"));
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ greeted: "Ada" });
    expect(run.input).toEqual({ name: "Ada" });
    expect(run.additionalMetadata).toEqual({ source: "signup", eventId: event.eventId, eventKey: "tr:user:created" });
    expect(run.trigger).toEqual({ kind: "event", eventId: event.eventId, eventKey: "tr:user:created" });
  });

  it("matches a trailing * against any suffix, and starts every workflow that matches", async () => {
    const created = await pushed({ key: "tr:order:created", payload: { id: 1 } });
    expect(created.runs.map((r) => r.workflow)).toEqual(["tr-orders"]);
    const paid = await pushed({ key: "tr:order:paid", payload: { id: 2 } });
    expect(paid.runs.map((r) => r.workflow).sort()).toEqual(["tr-orders", "tr-paid"]);
    expect((await result(runOf(created, "tr-orders"))).output).toMatchObject({ input: { id: 1 }, metadata: { eventKey: "tr:order:created" } });
    expect((await result(runOf(paid, "tr-paid"))).output).toEqual({ book: { eventKey: "tr:order:paid" } });
    // `tr:order:*` needs the colon: `tr:orders` is another key, and nothing listens to it.
    expect((await pushed({ key: "tr:orders", payload: {} })).runs).toEqual([]);
    expect((await pushed({ key: "tr:order", payload: {} })).runs).toEqual([]);
  });

  it("starts no run for a payload that fails the workflow's schema, and says why on the event, naming the field", async () => {
    const event = await pushed({ key: "tr:user:created", payload: { name: 42 } });
    expect(event.runs).toEqual([]);
    const view = await api("GET", `/api/v1/events/${event.eventId}`);
    expect(view.status).toBe(200);
    expect(view.body.runs).toEqual([]);
    expect(view.body.refused).toEqual([
      { workflow: "tr-greet", error: expect.objectContaining({ code: "input.invalid", fields: [expect.objectContaining({ path: "input.name" })] }) },
    ]);
  });

  it("starts nothing twice when a push is retried with the same Idempotency-Key", async () => {
    const key = `push-${crypto.randomUUID()}`;
    const body = { key: "tr:user:created", payload: { name: key } };
    const first = await pushed(body, { "idempotency-key": key });
    const again = await pushed(body, { "idempotency-key": key });
    expect(again).toEqual(first);
    await result(runOf(first, "tr-greet"));
    const runs = await api("GET", `/api/v1/runs?workflow=tr-greet&metadata=eventId:${first.eventId}`);
    expect(runs.body.runs).toHaveLength(1);
  });

  it("starts the runs of a push whose request died after recording the event, from the event log's alarm", async () => {
    const probe = crypto.randomUUID();
    const original = EngineService.prototype.startEventRun;
    EngineService.prototype.startEventRun = async function () {
      throw new Error("the request died here");
    };
    let res;
    try {
      res = await api("POST", "/api/v1/events", { key: "tr:user:created", payload: { name: "Late" }, additionalMetadata: { probe } });
    } finally {
      EngineService.prototype.startEventRun = original;
    }
    expect(res.status).toBe(500);
    const runsOfProbe = async () => (await api("GET", `/api/v1/runs?workflow=tr-greet&metadata=probe:${probe}`)).body.runs as any[];
    try {
      advanceClock(START_GRACE_MS + 1_000);
      for (let shard = 0; shard < EVENT_INDEX_SHARDS; shard++) await runDurableObjectAlarm(env.EVENT_INDEX.getByName(`evindex:default:${shard}`));
    } finally {
      resetClock();
    }
    await vi.waitUntil(async () => (await runsOfProbe()).length === 1, { timeout: 10_000, interval: 50 });
    const [run] = await runsOfProbe();
    expect((await result(run.runId)).output).toEqual({ greeted: "Late" });
    const event = await api("GET", `/api/v1/events/${run.additionalMetadata.eventId}`);
    expect(event.body.runs).toEqual([{ workflow: "tr-greet", runId: run.runId }]);
  });

  it("answers bulkPush with each event's runs", async () => {
    const res = await api("POST", "/api/v1/events/bulk", {
      events: [
        { key: "tr:user:created", payload: { name: "Bo" } },
        { key: "tr:nothing", payload: {} },
      ],
    });
    expect(res.status).toBe(200);
    expect(res.body.events).toEqual([
      { eventId: expect.any(String), runs: [{ workflow: "tr-greet", runId: expect.any(String) }] },
      { eventId: expect.any(String), runs: [] },
    ]);
    expect((await result(res.body.events[0].runs[0].runId)).output).toEqual({ greeted: "Bo" });
  });
});

describe("filters", () => {
  it("checks an event with a scope against that scope's filters, and gives the filter's payload to the run", async () => {
    const scope = `tenant-${crypto.randomUUID()}`;
    const created = await api("POST", "/api/v1/filters", { workflow: "tr-filtered", expression: "input.amount > payload.min", scope, payload: { min: 10 } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ id: expect.any(String), workflow: "tr-filtered", scope, payload: { min: 10 }, declared: false });
    const held = await pushed({ key: "tr:filtered", payload: { amount: 20 }, scope });
    const run = await result(runOf(held, "tr-filtered"));
    expect(run.output).toEqual({ input: { amount: 20 }, filterPayload: { min: 10 } });
    expect(run.trigger).toMatchObject({ kind: "event", filterId: created.body.id, filterPayload: { min: 10 } });
    // The filter does not hold: no run. Another scope, or none, is not filtered by it.
    expect((await pushed({ key: "tr:filtered", payload: { amount: 5 }, scope })).runs).toEqual([]);
    expect((await pushed({ key: "tr:filtered", payload: { amount: 5 }, scope: `${scope}-other` })).runs).toHaveLength(1);
    expect((await pushed({ key: "tr:filtered", payload: { amount: 5 } })).runs).toHaveLength(1);
    // Listed, then deleted: the scope's events run unfiltered again.
    const listed = await api("GET", "/api/v1/filters?workflow=tr-filtered&limit=500");
    expect(listed.body.filters.map((f: any) => f.id)).toContain(created.body.id);
    expect((await api("DELETE", `/api/v1/filters/${created.body.id}`)).status).toBe(200);
    expect((await pushed({ key: "tr:filtered", payload: { amount: 5 }, scope })).runs).toHaveLength(1);
    expect((await api("DELETE", `/api/v1/filters/${created.body.id}`)).status).toBe(404);
  });

  it("runs a workflow with several filters for a scope when any of them holds", async () => {
    const scope = `any-${crypto.randomUUID()}`;
    await api("POST", "/api/v1/filters", { workflow: "tr-filtered", expression: "input.kind == 'a'", scope, payload: { which: "a" } });
    await api("POST", "/api/v1/filters", { workflow: "tr-filtered", expression: "additional_metadata.kind == 'b'", scope, payload: { which: "b" } });
    const a = await pushed({ key: "tr:filtered", payload: { kind: "a" }, scope });
    const b = await pushed({ key: "tr:filtered", payload: {}, scope, additionalMetadata: { kind: "b" } });
    expect((await pushed({ key: "tr:filtered", payload: { kind: "c" }, scope })).runs).toEqual([]);
    expect((await result(runOf(a, "tr-filtered"))).output).toMatchObject({ filterPayload: { which: "a" } });
    expect((await result(runOf(b, "tr-filtered"))).output).toMatchObject({ filterPayload: { which: "b" } });
  });

  it("applies the filters a workflow declares (defaultFilters), listed as declared and not deletable", async () => {
    expect((await pushed({ key: "tr:vip", payload: { tier: "basic" } })).runs).toEqual([]);
    const vip = await pushed({ key: "tr:vip", payload: { tier: "vip" } });
    expect((await result(runOf(vip, "tr-default-filtered"))).output).toEqual({ input: { tier: "vip" }, filterPayload: { tier: "vip" } });
    const listed = await api("GET", "/api/v1/filters?workflow=tr-default-filtered");
    expect(listed.body.filters).toEqual([expect.objectContaining({ workflow: "tr-default-filtered", declared: true, expression: "input.tier == payload.tier" })]);
    expect((await api("DELETE", `/api/v1/filters/${listed.body.filters[0].id}`)).status).toBe(409);
  });

  it("refuses a filter that does not compile, or for an unknown workflow, naming the field, and stores nothing", async () => {
    const bad = await api("POST", "/api/v1/filters", { workflow: "tr-filtered", expression: "input.amount >" });
    expect(bad.status).toBe(400);
    expect(bad.body.error.fields).toEqual([expect.objectContaining({ path: "body.expression" })]);
    expect((await api("POST", "/api/v1/filters", { workflow: "no-such-workflow", expression: "true" })).status).toBe(404);
    const listed = await api("GET", "/api/v1/filters?workflow=no-such-workflow");
    expect(listed.body.filters).toEqual([]);
  });
});

describe("the event log", () => {
  it("lists events by key with their payload, the runs they started and the waiting tasks they woke, a page at a time", async () => {
    const key = `tr:log:${crypto.randomUUID()}`;
    const waiter = await trigger("d-filter", { key, expression: "input.go == true" });
    await until(waiter, (r) => task(r, "d-filter").evicted === true);
    await vi.waitUntil(async () => (await env.EVENTS.getByName(`events:default:${key}`).waiterCount()) === 1, { timeout: 10_000, interval: 50 });
    const first = await pushed({ key, payload: { go: false } });
    const second = await pushed({ key, payload: { go: true } });
    await result(waiter);
    const page1 = await api("GET", `/api/v1/events?key=${encodeURIComponent(key)}&limit=1`);
    expect(page1.status).toBe(200);
    expect(page1.body.events).toEqual([
      expect.objectContaining({ eventId: second.eventId, key, payload: { go: true }, runs: [], woke: [{ runId: waiter, task: "d-filter" }] }),
    ]);
    expect(page1.body.nextCursor).toBe(second.eventId);
    const page2 = await api("GET", `/api/v1/events?key=${encodeURIComponent(key)}&limit=1&cursor=${page1.body.nextCursor}`);
    expect(page2.body.events).toEqual([expect.objectContaining({ eventId: first.eventId, payload: { go: false }, woke: [] })]);
    expect(page2.body.nextCursor).toBeNull();
  });

  it("pages through events with large payloads without losing or repeating one", async () => {
    const key = `tr:big:${crypto.randomUUID()}`;
    const blob = "x".repeat(900 * 1024);
    const pushedIds: string[] = [];
    for (let i = 0; i < 24; i++) pushedIds.push((await pushed({ key, payload: { i, blob } })).eventId);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: { status: number; body: any } = await api("GET", `/api/v1/events?key=${encodeURIComponent(key)}&limit=500${cursor ? `&cursor=${cursor}` : ""}`);
      expect(res.status).toBe(200);
      seen.push(...res.body.events.map((e: any) => e.eventId));
      cursor = res.body.nextCursor;
      pages++;
    } while (cursor);
    // About 21 MiB of payloads: more than one page, every event once, newest first.
    expect(pages).toBeGreaterThan(1);
    expect(seen).toEqual([...pushedIds].sort().reverse());
  });

  it("shows the runs an event started, filters by time, and answers 404 for an unknown event", async () => {
    const before = new Date(Date.now() - 1000).toISOString();
    const event = await pushed({ key: "tr:user:created", payload: { name: "Cy" } });
    const one = await api("GET", `/api/v1/events/${event.eventId}`);
    expect(one.body).toMatchObject({ eventId: event.eventId, key: "tr:user:created", payload: { name: "Cy" }, runs: event.runs, refused: [] });
    const since = await api("GET", `/api/v1/events?key=tr:user:created&since=${before}&limit=500`);
    expect(since.body.events.map((e: any) => e.eventId)).toContain(event.eventId);
    const until = await api("GET", `/api/v1/events?key=tr:user:created&until=${before}&limit=500`);
    expect(until.body.events.map((e: any) => e.eventId)).not.toContain(event.eventId);
    expect((await api("GET", "/api/v1/events/01JH8X7Q2K3M4N5P6Q7R8S9T0V")).status).toBe(404);
    expect((await api("GET", "/api/v1/events?since=yesterday")).status).toBe(400);
  });
});
