import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { signRequest } from "@spindle/worker-sdk/protocol";
import { registration, taskDef, workflowDef } from "../support/definitions";
import { flaky, shardedSharingInFlight } from "../worker/conformance";
import { api, result, TOKEN, trigger } from "./helpers";

const worker = async (name: string) => (await api("GET", "/api/v1/workers")).body.workers.find((w: any) => w.name === name);

describe("registration that explains itself", () => {
  it("keeps a bound worker whose token is no tenant's as refused, with its workflows, and answers their triggers 409 with the reason", async () => {
    const entry = await worker("stranger-bound");
    expect(entry).toMatchObject({ transport: "binding", status: "refused", workflows: [{ name: "t-stranger-bound", status: "refused" }] });
    expect(entry.reason).toContain("is not the token of any tenant");
    const res = await api("POST", "/api/v1/workflows/t-stranger-bound/runs", { input: {} });
    expect(res.status).toBe(409);
    expect(res.body.error).toMatchObject({ code: "workflow.unavailable", message: expect.stringContaining("worker 'stranger-bound' is refused: its SPINDLE_API_TOKEN is not the token of any tenant") });
  });

  it("keeps a served worker that refuses the engine's signature as refused, with the reason", async () => {
    const res = await api("POST", "/api/v1/workers", { url: "https://stranger.test/" });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("worker.refused");
    expect(res.body.error.message).toContain("refused the engine's signature");
    const entry = await worker("https://stranger.test/");
    expect(entry).toMatchObject({ transport: "https", status: "refused", url: "https://stranger.test/" });
    expect(entry.reason).toContain("not this tenant's token");
  });

  it("keeps a URL with no worker behind it as unreachable, with the reason", async () => {
    const res = await api("POST", "/api/v1/workers", { url: "https://down.test/" });
    expect(res.status).toBe(502);
    expect(res.body.error.code).toBe("worker.unreachable");
    expect(await worker("https://down.test/")).toMatchObject({ status: "unreachable", reason: expect.stringContaining("HTTP 404") });
  });

  it("refuses a registration URL that is not http(s), naming the field", async () => {
    const res = await api("POST", "/api/v1/workers", { url: "ftp://x.test/" });
    expect(res.status).toBe(400);
    expect(res.body.error.fields[0].path).toBe("body.url");
  });

  it("answers a trigger of a workflow whose only worker cannot be reached with 409 and the reason, not workflow.not_found", async () => {
    const reply = await env.SPINDLE.register(TOKEN, registration("nowhere", [workflowDef("t-nowhere", [taskDef("t-nowhere")], "task")]));
    expect(reply.ok).toBe(true);
    const res = await api("POST", "/api/v1/workflows/t-nowhere/runs", { input: {} });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("workflow.unavailable");
    expect(res.body.error.message).toContain("worker 'nowhere' is unreachable");
    expect(res.body.error.message).toContain("WORKER_NOWHERE");
    expect(await worker("nowhere")).toMatchObject({ transport: "binding", status: "unreachable", workflows: [{ name: "t-nowhere", status: "active" }] });
    // A name no worker declares is still not found.
    expect((await api("POST", "/api/v1/workflows/t-nobody-declares/runs", { input: {} })).status).toBe(404);
  });

  it("shares a workflow between workers that declare it equally, and refuses a differing one for that workflow alone", async () => {
    for (const host of ["share-a", "share-b", "share-c"]) {
      const res = await api("POST", "/api/v1/workers", { url: `https://${host}.test/` });
      expect(res.status).toBe(200);
    }
    const [a, b, c] = [await worker("share-a"), await worker("share-b"), await worker("share-c")];
    expect(a.workflows).toContainEqual({ name: "t-shared", status: "active", reason: expect.stringContaining("'share-c' declares a different definition") });
    expect(b.workflows).toContainEqual({ name: "t-shared", status: "active", reason: expect.stringContaining("'share-c'") });
    expect(c.status).toBe("active");
    expect(c.workflows).toContainEqual({ name: "t-shared", status: "refused", reason: expect.stringContaining("differs from the one registered by worker 'share-a', 'share-b'") });
    // Its other workflow registered all the same, and runs.
    expect(c.workflows).toContainEqual({ name: "t-own-share-c", status: "active", reason: null });
    expect((await result(await trigger("t-own-share-c", {}))).output).toEqual({ ranOn: "share-c" });

    // Runs of the shared workflow go to either equal worker, never to the refused one.
    const ran = new Set<string>();
    for (let i = 0; i < 6; i++) ran.add(((await result(await trigger("t-shared", {}))).output as { ranOn: string }).ranOn);
    expect([...ran].every((w) => w === "share-a" || w === "share-b")).toBe(true);
  });

  it("shares a workflow between a worker whose pool is served by 2 task queues and one served by 1: every run ends, no worker over its slots", async () => {
    for (const host of ["share-sharded", "share-single"]) expect((await api("POST", "/api/v1/workers", { url: `https://${host}.test/` })).status).toBe(200);
    const ids = await Promise.all(Array.from({ length: 16 }, () => trigger("t-shared-sharded", { ms: 150 })));
    const ranOn = new Set<string>();
    for (const id of ids) {
      const run = await result(id, { timeoutMs: 60_000 });
      expect(run.status).toBe("COMPLETED");
      ranOn.add((run.output as { ranOn: string }).ranOn);
    }
    expect([...ranOn].every((w) => w === "share-sharded" || w === "share-single")).toBe(true);
    const sharded = shardedSharingInFlight.get("share-sharded");
    const single = shardedSharingInFlight.get("share-single");
    expect((sharded?.ran ?? 0) + (single?.ran ?? 0)).toBe(16);
    expect(sharded?.ran ?? 0).toBeGreaterThan(0);
    expect(sharded?.max ?? 0).toBeLessThanOrEqual(4);
    expect(single?.max ?? 0).toBeLessThanOrEqual(1);
    // Every slot taken was given back, on each queue of each pool.
    await vi.waitUntil(async () => {
      const [a, b] = [await worker("share-sharded"), await worker("share-single")];
      return a.slotsInUse.regular === 0 && b.slotsInUse.regular === 0;
    }, { timeout: 10_000 });
  });

  it("shows a worker that stopped answering as unreachable, and queues its runs until it is back", async () => {
    expect((await api("POST", "/api/v1/workers", { url: "https://flaky.test/" })).status).toBe(200);
    flaky.down = true;
    try {
      const first = await trigger("t-flaky-served", {});
      await vi.waitUntil(async () => (await worker("flaky")).status === "unreachable", { timeout: 10_000 });
      expect((await worker("flaky")).reason).toContain("HTTP 503");
      // It answered before: a trigger is queued (it may be restarting), not refused.
      const second = await api("POST", "/api/v1/workflows/t-flaky-served/runs", { input: {} });
      expect(second.status).toBe(202);
      flaky.down = false;
      for (const id of [first, second.body.runId]) expect((await result(id)).status).toBe("COMPLETED");
    } finally {
      flaky.down = false;
    }
  });

  it("lists a worker's slots in use while its tasks run", async () => {
    const entry = await worker("test");
    expect(entry).toMatchObject({ transport: "binding", status: "active", binding: "WORKER_TEST", slotsInUse: { regular: expect.any(Number), durable: expect.any(Number) } });
    expect(entry.lastSeenAt).not.toBeNull();
  });
});

describe("signed calls from served workers", () => {
  const call = async (headers: Record<string, string>, body: string) => {
    const res = await env.ENGINE_HTTP.fetch("http://spindle.test/worker/v1/calls", { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
    return { status: res.status, body: (await res.json()) as any };
  };
  const body = JSON.stringify({ method: "listRuns", args: [{ limit: 1 }] });

  it("answers a correctly signed call", async () => {
    const res = await call(await signRequest(TOKEN, body), body);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ ok: true, value: { runs: expect.any(Array) } });
  });

  it("refuses a call signed with another token's key", async () => {
    const headers = await signRequest("a-token-of-no-tenant-at-all", body);
    const res = await call(headers, body);
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("signature.invalid");
    // The right tenant's key id with the wrong key is refused too.
    const forged = { ...headers, "x-spindle-key": (await signRequest(TOKEN, body))["x-spindle-key"]! };
    expect((await call(forged, body)).body.error.code).toBe("signature.invalid");
  });

  it("refuses a call whose body was changed after signing", async () => {
    const res = await call(await signRequest(TOKEN, body), body.replace("1", "2"));
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("signature.invalid");
  });

  it("refuses a call signed more than five minutes ago", async () => {
    const res = await call(await signRequest(TOKEN, body, Date.now() - 5 * 60_000 - 1_000), body);
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("signature.expired");
  });

  it("refuses the same signed call sent twice", async () => {
    const headers = await signRequest(TOKEN, body);
    expect((await call(headers, body)).status).toBe(200);
    const again = await call(headers, body);
    expect(again.status).toBe(401);
    expect(again.body.error.code).toBe("signature.replayed");
  });

  it("refuses an unsigned call", async () => {
    const res = await call({}, body);
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("signature.invalid");
  });
});

describe("a served worker checks the engine's signature", () => {
  const describeBody = JSON.stringify({ op: "describe" });
  const send = (headers: Record<string, string>, body = describeBody) =>
    env.HTTPS_OUTBOUND!.fetch("https://conf-https.test/", { method: "POST", headers: { "content-type": "application/json", ...headers }, body });

  it("answers a signed describe, and refuses it wrong, expired or replayed", async () => {
    const headers = await signRequest(TOKEN, describeBody);
    const ok = await send(headers);
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as any).registration.name).toBe("conf-https");
    expect(((await (await send(headers)).json()) as any).error.code).toBe("signature.replayed");
    expect(((await (await send(await signRequest("another-token-entirely", describeBody))).json()) as any).error.code).toBe("signature.invalid");
    const old = await send(await signRequest(TOKEN, describeBody, Date.now() - 6 * 60_000));
    expect(old.status).toBe(401);
    expect(((await old.json()) as any).error.code).toBe("signature.expired");
  });
});
