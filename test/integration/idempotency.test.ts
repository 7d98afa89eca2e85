import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { SpindleError } from "@spindle/worker-sdk";
import type { RunView } from "@spindle/worker-sdk/protocol";
import { HttpClient } from "../../worker-sdk/src/client";
import { advanceClock } from "../../src/core/clock";
import { IDEMPOTENCY_TTL_MS, idempotencyShard } from "../../src/core/idempotency";
import { idempotencyName } from "../../src/core/names";
import { EventBus } from "../../src/events/event-bus";
import { IDEMPOTENCY_MIGRATIONS } from "../../src/idempotency/idempotency-keys";
import { migrate, schemaVersion } from "../../src/storage/migrate";
import { WorkflowRun, type RunInit } from "../../src/run/workflow-run";
import { idemCount } from "../worker/idempotency";
import { effects, spindle } from "../worker/workflows";
import { api, push, result, task, TOKEN, trigger, until } from "./helpers";

/** A POST with an Idempotency-Key header, as any HTTP client would send it. */
async function post(path: string, body: unknown, key: string): Promise<{ status: number; body: any }> {
  const res = await exports.default.fetch(`http://spindle.test${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json", "idempotency-key": key },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

const triggerCount = (tag: string, n: number, key: string) =>
  post("/api/v1/workflows/t-idem-count/runs", { input: { tag, n }, additionalMetadata: { tag } }, key);

/** The runs the index lists with this tag, once `ready` holds of them (the index is written after the run). */
async function listed(tag: string, ready: (runs: { runId: string; status: string }[]) => boolean): Promise<{ runId: string; status: string }[]> {
  let runs: { runId: string; status: string }[] = [];
  await vi.waitUntil(
    async () => {
      runs = (await api("GET", `/api/v1/runs?metadata=tag:${tag}&limit=500`)).body.runs;
      return ready(runs);
    },
    { timeout: 20_000, interval: 50 },
  );
  return runs;
}

const ended = (runIds: string[]) => (runs: { runId: string; status: string }[]) =>
  runIds.every((id) => runs.some((r) => r.runId === id && r.status === "COMPLETED"));

const fresh = (what: string) => `${what}-${crypto.randomUUID()}`;

/** The durable task `d-idem-twice` of `run` is waiting for its `n`-th event. */
const waitingFor = (n: number) => (run: RunView) => {
  const t = task(run, "d-idem-twice");
  return t.evicted === true && (t.eventLog ?? []).filter((c) => c.kind === "wait").length === n;
};

describe("idempotency keys on triggers", () => {
  it("answers a retried trigger with the first run, and runs it once", async () => {
    const tag = fresh("retry");
    const key = fresh("key");
    const first = await triggerCount(tag, 1, key);
    expect(first.status).toBe(202);
    const again = await triggerCount(tag, 1, key);
    expect(again.status).toBe(202);
    expect(again.body).toMatchObject({ runId: first.body.runId });
    expect(Object.keys(again.body).sort()).toEqual(Object.keys(first.body).sort());
    expect((await result(first.body.runId)).output).toEqual({ n: 1, ran: 1 });
    // And once more after it ended: still the same run, not a new one.
    expect((await triggerCount(tag, 1, key)).body.runId).toBe(first.body.runId);
    const runs = await listed(tag, ended([first.body.runId]));
    expect(runs.map((r) => r.runId)).toEqual([first.body.runId]);
    expect(effects.get(`t-idem-count:${tag}:1`)).toBe(1);
  });

  it("creates one run for concurrent triggers with one key", async () => {
    const tag = fresh("race");
    const key = fresh("key");
    const answers = await Promise.all(Array.from({ length: 6 }, () => triggerCount(tag, 1, key)));
    expect(answers.map((a) => a.status)).toEqual(Array(6).fill(202));
    const ids = new Set(answers.map((a) => a.body.runId));
    expect(ids.size).toBe(1);
    const [runId] = [...ids] as [string];
    await result(runId);
    expect((await listed(tag, ended([runId]))).map((r) => r.runId)).toEqual([runId]);
    expect(effects.get(`t-idem-count:${tag}:1`)).toBe(1);
  });

  it("refuses the same key with a different body with 409 naming the key, and creates nothing", async () => {
    const tag = fresh("conflict");
    const key = fresh("key");
    const first = await triggerCount(tag, 1, key);
    expect(first.status).toBe(202);
    const other = await triggerCount(tag, 2, key);
    expect(other.status).toBe(409);
    expect(other.body.error.code).toBe("idempotency.conflict");
    expect(other.body.error.message).toContain(`'${key}'`);
    expect(other.body.error.fields).toEqual([{ path: "header.Idempotency-Key", message: `key '${key}' is bound to a different request` }]);
    // Another workflow with the same key is a different request too.
    const otherWorkflow = await post("/api/v1/workflows/t-echo/runs", { input: { tag, n: 1 }, additionalMetadata: { tag } }, key);
    expect(otherWorkflow.status).toBe(409);
    await result(first.body.runId);
    expect((await listed(tag, ended([first.body.runId]))).map((r) => r.runId)).toEqual([first.body.runId]);
    expect(effects.get(`t-idem-count:${tag}:2`)).toBeUndefined();
  });

  it("refuses a malformed key naming the header, and creates nothing", async () => {
    const res = await triggerCount(fresh("bad-key"), 1, "x".repeat(257));
    expect(res.status).toBe(400);
    expect(res.body.error.fields[0].path).toBe("header.Idempotency-Key");
  });

  it("keeps run keys and event keys apart, and one tenant's keys from another's", async () => {
    const key = fresh("key");
    const tag = fresh("scopes");
    const run = await triggerCount(tag, 1, key);
    expect(run.status).toBe(202);
    const event = await post("/api/v1/events", { key: fresh("nobody-waits"), payload: { tag } }, key);
    expect(event.status).toBe(200);
    expect(event.body.eventId).not.toBe(run.body.runId);
    // Each key still answers its own route's first request.
    expect((await triggerCount(tag, 1, key)).body.runId).toBe(run.body.runId);
    expect((await post("/api/v1/events", { key: "nobody", payload: { tag } }, key)).status).toBe(409);
    // Another tenant's use of the key is its own: a new event, then that event again.
    const otherTenant = async () => {
      const res = await exports.default.fetch("http://spindle.test/api/v1/events", {
        method: "POST",
        headers: { authorization: "Bearer test-token-other-tenant", "content-type": "application/json", "idempotency-key": key },
        body: JSON.stringify({ key: "other-tenant-event", payload: { tag } }),
      });
      return { status: res.status, body: (await res.json()) as { eventId: string } };
    };
    const mine = await otherTenant();
    expect(mine.status).toBe(200);
    expect(mine.body.eventId).not.toBe(event.body.eventId);
    expect((await otherTenant()).body.eventId).toBe(mine.body.eventId);
    await result(run.body.runId);
  });

  it("finishes the job when the engine died between recording the key and creating the run", async () => {
    const tag = fresh("crash");
    const key = fresh("key");
    const original = WorkflowRun.prototype.create;
    let chosen: string | null = null;
    WorkflowRun.prototype.create = async function (this: WorkflowRun, init: RunInit) {
      if (chosen === null && (init.input as { tag?: string } | null)?.tag === tag) {
        chosen = init.runId;
        throw new Error("injected: the engine died before creating the run");
      }
      return original.call(this, init);
    };
    try {
      const died = await triggerCount(tag, 1, key);
      expect(died.status).toBe(500);
      expect(chosen).not.toBeNull();
      const retried = await triggerCount(tag, 1, key);
      expect(retried.status).toBe(202);
      expect(retried.body.runId).toBe(chosen);
    } finally {
      WorkflowRun.prototype.create = original;
    }
    await result(chosen!);
    expect((await listed(tag, ended([chosen!]))).map((r) => r.runId)).toEqual([chosen]);
    expect(effects.get(`t-idem-count:${tag}:1`)).toBe(1);
  });

  it("forgets a key 24 hours after its first use (the alarm deletes it)", async () => {
    const tag = fresh("expiry");
    const key = fresh("key");
    const first = await triggerCount(tag, 1, key);
    await result(first.body.runId);
    expect((await triggerCount(tag, 2, key)).status).toBe(409);
    const shard = env.IDEMPOTENCY.getByName(idempotencyName("default", idempotencyShard("run", key)));
    const held = () => runInDurableObject(shard, (_i, state) => state.storage.sql.exec("SELECT COUNT(*) AS n FROM keys WHERE key = ?", key).one().n);
    expect(await held()).toBe(1);
    // (Its schema is at the latest version, and migrating again changes nothing.)
    await runInDurableObject(shard, (_i, state) => {
      const latest = Math.max(...IDEMPOTENCY_MIGRATIONS.map((m) => m.version));
      expect(schemaVersion(state.storage)).toBe(latest);
      expect(migrate(state.storage, IDEMPOTENCY_MIGRATIONS)).toBe(latest);
    });
    expect(await held()).toBe(1);
    advanceClock(IDEMPOTENCY_TTL_MS + 1_000);
    try {
      expect(await runDurableObjectAlarm(shard)).toBe(true);
      expect(await held()).toBe(0);
      const later = await triggerCount(tag, 2, key);
      expect(later.status).toBe(202);
      expect(later.body.runId).not.toBe(first.body.runId);
      expect((await result(later.body.runId)).output).toEqual({ n: 2, ran: 1 });
    } finally {
      advanceClock(-(IDEMPOTENCY_TTL_MS + 1_000));
    }
  });
});

describe("idempotency keys on events", () => {
  it("answers a retried push with the first event, and wakes its waiter once", async () => {
    const eventKey = fresh("ev");
    const runId = await trigger("d-idem-twice", { key: eventKey });
    await until(runId, waitingFor(1), 20_000);
    const key = fresh("key");
    const first = await post("/api/v1/events", { key: eventKey, payload: { n: "A" } }, key);
    expect(first.status).toBe(200);
    // The retry lands once the task waits for its second event: it must not be that event.
    await until(runId, waitingFor(2), 20_000);
    const again = await post("/api/v1/events", { key: eventKey, payload: { n: "A" } }, key);
    expect(again).toEqual({ status: 200, body: { eventId: first.body.eventId, runs: [] } });
    await push(eventKey, { n: "B" });
    const run = await result(runId);
    expect(run.output).toEqual({ first: { n: "A" }, second: { n: "B" } });
    expect(effects.get(`d-idem-twice:${runId}:after-first`)).toBe(1);
    expect(effects.get(`d-idem-twice:${runId}:after-second`)).toBe(1);
  });

  it("wakes nothing twice when the push was recorded but its answer was lost", async () => {
    const eventKey = fresh("ev");
    const runId = await trigger("d-idem-twice", { key: eventKey });
    await until(runId, waitingFor(1), 20_000);
    const original = EventBus.prototype.publish;
    let recorded: string | null = null;
    EventBus.prototype.publish = async function (this: EventBus, tenant, key, event) {
      const woke = await original.call(this, tenant, key, event);
      if (key === eventKey && recorded === null) {
        recorded = event.id;
        throw new Error("injected: the answer of the push was lost");
      }
      return woke;
    };
    const idem = fresh("key");
    try {
      const lost = await post("/api/v1/events", { key: eventKey, payload: { n: "A" } }, idem);
      expect(lost.status).toBe(500);
      await until(runId, waitingFor(2), 20_000);
      const retried = await post("/api/v1/events", { key: eventKey, payload: { n: "A" } }, idem);
      expect(retried).toEqual({ status: 200, body: { eventId: recorded, runs: [] } });
    } finally {
      EventBus.prototype.publish = original;
    }
    await push(eventKey, { n: "B" });
    expect((await result(runId)).output).toEqual({ first: { n: "A" }, second: { n: "B" } });
    expect(effects.get(`d-idem-twice:${runId}:after-second`)).toBe(1);
  });

  it("wakes a waiter armed between a push's first try and its retry: the event's time is when the bus records it, not its id's", async () => {
    const eventKey = fresh("ev");
    const original = EventBus.prototype.publish;
    let reserved: string | null = null;
    // The first try reserves the key (and the event's id) and dies before the bus has the event.
    EventBus.prototype.publish = async function (this: EventBus, tenant, key, event) {
      if (key === eventKey && reserved === null) {
        reserved = event.id;
        throw new Error("injected: the push died before reaching the bus");
      }
      return original.call(this, tenant, key, event);
    };
    const idem = fresh("key");
    try {
      const died = await post("/api/v1/events", { key: eventKey, payload: { n: "A" } }, idem);
      expect(died.status).toBe(500);
      expect(reserved).not.toBeNull();
      // A waiter arms after the id was chosen, then the client retries the push.
      const runId = await trigger("d-idem-twice", { key: eventKey });
      await until(runId, waitingFor(1), 20_000);
      const retried = await post("/api/v1/events", { key: eventKey, payload: { n: "A" } }, idem);
      expect(retried.status).toBe(200);
      expect(retried.body.eventId).toBe(reserved);
      await until(runId, waitingFor(2), 20_000);
      await push(eventKey, { n: "B" });
      expect((await result(runId)).output).toEqual({ first: { n: "A" }, second: { n: "B" } });
      expect(effects.get(`d-idem-twice:${runId}:after-first`)).toBe(1);
    } finally {
      EventBus.prototype.publish = original;
    }
  });

  it("refuses the same key with a different payload with 409, and wakes nothing", async () => {
    const eventKey = fresh("ev");
    const key = fresh("key");
    const first = await post("/api/v1/events", { key: eventKey, payload: { n: "A" } }, key);
    expect(first.status).toBe(200);
    const runId = await trigger("d-idem-twice", { key: eventKey });
    await until(runId, waitingFor(1), 20_000);
    const other = await post("/api/v1/events", { key: eventKey, payload: { n: "X" } }, key);
    expect(other.status).toBe(409);
    expect(other.body.error).toMatchObject({ code: "idempotency.conflict", fields: [{ path: "header.Idempotency-Key" }] });
    expect(other.body.error.message).toContain(`'${key}'`);
    await push(eventKey, { n: "B" });
    await until(runId, waitingFor(2), 20_000);
    await push(eventKey, { n: "C" });
    expect((await result(runId)).output).toEqual({ first: { n: "B" }, second: { n: "C" } });
  });
});

describe("bulk triggers and pushes over HTTP: every item or none", () => {
  it("creates no run when one item of a bulk trigger is invalid", async () => {
    const tag = fresh("bulk");
    const res = await api("POST", "/api/v1/runs/bulk", {
      runs: [
        { workflow: "t-idem-count", input: { tag, n: 1 }, additionalMetadata: { tag } },
        { workflow: "t-idem-count", input: { tag, n: "two" }, additionalMetadata: { tag } },
      ],
    });
    expect(res.status).toBe(400);
    expect(res.body.error.fields[0].path).toBe("runs[1].input.n");
    const ok = await api("POST", "/api/v1/runs/bulk", {
      runs: [
        { workflow: "t-idem-count", input: { tag, n: 3 }, additionalMetadata: { tag }, idempotencyKey: fresh("key") },
        { workflow: "t-idem-count", input: { tag, n: 4 }, additionalMetadata: { tag } },
      ],
    });
    expect(ok.status).toBe(202);
    const ids = ok.body.runs.map((r: { runId: string }) => r.runId);
    await Promise.all(ids.map((id: string) => result(id)));
    expect((await listed(tag, ended(ids))).map((r) => r.runId).sort()).toEqual([...ids].sort());
    expect(effects.get(`t-idem-count:${tag}:1`)).toBeUndefined();
  });
});

describe("idempotency keys through the SDK", () => {
  it("returns the first run to a retried runNoWait and run with the same key", async () => {
    const tag = fresh("sdk");
    const idempotencyKey = fresh("key");
    const options = { idempotencyKey, additionalMetadata: { tag } };
    const [a, b] = await Promise.all([idemCount.runNoWait({ tag, n: 1 }, options), idemCount.runNoWait({ tag, n: 1 }, options)]);
    expect(b.runId).toBe(a.runId);
    expect(await idemCount.run({ tag, n: 1 }, options)).toEqual({ n: 1, ran: 1 });
    const conflict = await idemCount.runNoWait({ tag, n: 2 }, options).catch((e: unknown) => e);
    expect(conflict).toBeInstanceOf(SpindleError);
    expect((conflict as SpindleError).code).toBe("idempotency.conflict");
    expect((conflict as SpindleError).fields?.[0]?.path).toBe("idempotencyKey");
    expect((await listed(tag, ended([a.runId]))).map((r) => r.runId)).toEqual([a.runId]);
    expect(effects.get(`t-idem-count:${tag}:1`)).toBe(1);
  });

  it("creates no run of a runMany when one item's key is bound to another request or malformed", async () => {
    const tag = fresh("many");
    const taken = fresh("key");
    const before = await idemCount.runNoWait({ tag, n: 0 }, { idempotencyKey: taken, additionalMetadata: { tag } });
    const keys = [fresh("key"), taken, fresh("key")];
    const err = await idemCount
      .runManyNoWait([{ tag, n: 1 }, { tag, n: 2 }, { tag, n: 3 }], { additionalMetadata: { tag }, idempotencyKey: (_input, i) => keys[i]! })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpindleError);
    expect((err as SpindleError).code).toBe("idempotency.conflict");
    expect((err as SpindleError).message).toContain(`'${taken}'`);
    expect((err as SpindleError).fields?.[0]?.path).toBe("runs[1].idempotencyKey");
    const malformed = await idemCount
      .runManyNoWait([{ tag, n: 4 }, { tag, n: 5 }], { additionalMetadata: { tag }, idempotencyKey: (_input, i) => (i === 1 ? "" : fresh("key")) })
      .catch((e: unknown) => e);
    expect((malformed as SpindleError).fields?.[0]?.path).toBe("runs[1].idempotencyKey");
    // The refused batch reserved nothing: its first key is free for another request.
    const reused = await idemCount.runNoWait({ tag, n: 6 }, { idempotencyKey: keys[0]!, additionalMetadata: { tag } });
    await Promise.all([before.result(), reused.result()]);
    const runs = await listed(tag, ended([before.runId, reused.runId]));
    expect(runs.map((r) => r.runId).sort()).toEqual([before.runId, reused.runId].sort());
    for (const n of [1, 2, 3, 4, 5]) expect(effects.get(`t-idem-count:${tag}:${n}`)).toBeUndefined();
  });

  it("finishes a runMany that died half-way when it is sent again with the same keys", async () => {
    const tag = fresh("many-crash");
    const inputs = [1, 2, 3].map((n) => ({ tag, n }));
    const options = { additionalMetadata: { tag }, idempotencyKey: (input: { n: number }) => `${tag}:${input.n}` };
    const original = WorkflowRun.prototype.create;
    const created = new Map<number, string>();
    let crashed = false;
    WorkflowRun.prototype.create = async function (this: WorkflowRun, init: RunInit) {
      const input = init.input as { tag?: string; n?: number } | null;
      if (input?.tag === tag) {
        if (input.n === 2 && !crashed) {
          crashed = true;
          throw new Error("injected: the engine died in the middle of the batch");
        }
        created.set(input.n!, init.runId);
      }
      return original.call(this, init);
    };
    try {
      await expect(idemCount.runManyNoWait(inputs, options)).rejects.toThrow();
      expect(crashed).toBe(true);
      const refs = await idemCount.runManyNoWait(inputs, options);
      expect(refs.map((r) => r.runId)).toEqual([1, 2, 3].map((n) => created.get(n)));
      expect(await Promise.all(refs.map((r) => r.result()))).toEqual([1, 2, 3].map((n) => ({ n, ran: 1 })));
      expect((await listed(tag, ended(refs.map((r) => r.runId)))).length).toBe(3);
    } finally {
      WorkflowRun.prototype.create = original;
    }
  });

  it("wakes a waiter once for concurrent pushes with one key", async () => {
    const eventKey = fresh("ev");
    const runId = await trigger("d-idem-twice", { key: eventKey });
    await until(runId, waitingFor(1), 20_000);
    const idempotencyKey = fresh("key");
    const pushes = await Promise.all([1, 2, 3].map(() => spindle.events.push(eventKey, { n: "A" }, { idempotencyKey })));
    expect(new Set(pushes.map((p) => p.eventId)).size).toBe(1);
    await until(runId, waitingFor(2), 20_000);
    expect((await spindle.events.push(eventKey, { n: "A" }, { idempotencyKey })).eventId).toBe(pushes[0]!.eventId);
    await spindle.events.push(eventKey, { n: "B" });
    expect((await result(runId)).output).toEqual({ first: { n: "A" }, second: { n: "B" } });
    expect(effects.get(`d-idem-twice:${runId}:after-first`)).toBe(1);
  });

  it("pushes no event of a bulkPush when one item's key is bound to another event", async () => {
    const eventKey = fresh("ev");
    const taken = fresh("key");
    await spindle.events.push(fresh("elsewhere"), { n: "old" }, { idempotencyKey: taken });
    const runId = await trigger("d-idem-twice", { key: eventKey });
    await until(runId, waitingFor(1), 20_000);
    const first = fresh("key");
    const err = await spindle.events
      .bulkPush([
        { key: eventKey, payload: { n: "bulk-0" }, idempotencyKey: first },
        { key: eventKey, payload: { n: "bulk-1" }, idempotencyKey: taken },
      ])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpindleError);
    expect((err as SpindleError).code).toBe("idempotency.conflict");
    expect((err as SpindleError).fields?.[0]?.path).toBe("events[1].idempotencyKey");
    const malformed = await spindle.events
      .bulkPush([{ key: eventKey, payload: { n: "bulk-2" } }, { key: eventKey, payload: { n: "bulk-3" }, idempotencyKey: "\u00e9" }])
      .catch((e: unknown) => e);
    expect((malformed as SpindleError).fields?.[0]?.path).toBe("events[1].idempotencyKey");
    // Nothing of either batch was pushed: the waiter's first event is the next one, and the first
    // batch's unused key is free.
    await spindle.events.push(eventKey, { n: "B" }, { idempotencyKey: first });
    await until(runId, waitingFor(2), 20_000);
    await spindle.events.push(eventKey, { n: "C" });
    expect((await result(runId)).output).toEqual({ first: { n: "B" }, second: { n: "C" } });
  });
});

describe("idempotency keys through the SDK over HTTPS", () => {
  const http = new HttpClient("http://spindle.test", TOKEN, (input, init) => exports.default.fetch(input as string, init));

  it("sends the key as the Idempotency-Key header, and bulk requests all or none", async () => {
    const tag = fresh("https");
    const idempotencyKey = fresh("key");
    const req = { workflow: "t-idem-count", input: { tag, n: 1 }, additionalMetadata: { tag }, idempotencyKey };
    const first = await http.trigger(req);
    expect((await http.trigger(req)).runId).toBe(first.runId);
    const keys = [fresh("key"), idempotencyKey];
    const err = await http
      .triggerMany([2, 3].map((n, i) => ({ workflow: "t-idem-count", input: { tag, n }, additionalMetadata: { tag }, idempotencyKey: keys[i]! })))
      .catch((e: unknown) => e);
    expect((err as SpindleError).code).toBe("idempotency.conflict");
    expect((err as SpindleError).fields?.[0]?.path).toBe("runs[1].idempotencyKey");
    const many = await http.triggerMany([4, 1].map((n, i) => ({ workflow: "t-idem-count", input: { tag, n }, additionalMetadata: { tag }, idempotencyKey: [keys[0]!, idempotencyKey][i]! })));
    expect(many[1]!.runId).toBe(first.runId);
    const ids = many.map((r) => r.runId);
    await Promise.all(ids.map((id) => result(id)));
    expect((await listed(tag, ended(ids))).map((r) => r.runId).sort()).toEqual([...ids].sort());
    expect(effects.get(`t-idem-count:${tag}:2`)).toBeUndefined();

    const eventKey = fresh("ev");
    const pushed = await http.pushEvents([{ key: eventKey, payload: 1, idempotencyKey: fresh("key") }, { key: eventKey, payload: 2, idempotencyKey }]);
    expect(await http.pushEvent({ key: eventKey, payload: 2, idempotencyKey })).toEqual(pushed[1]);
  });
});
