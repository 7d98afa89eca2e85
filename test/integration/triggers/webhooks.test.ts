import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { sign, type SignatureConfig } from "../../../src/core/webhook-signature";
import { api, result } from "../helpers";

/** Webhook receivers: the signature over the raw body is the only credential of a delivery. */
const github: SignatureConfig = { header: "X-Hub-Signature-256", algorithm: "hmac-sha256", encoding: "hex", prefix: "sha256=" };
const stripe: SignatureConfig = { header: "Stripe-Signature", algorithm: "hmac-sha256", encoding: "hex", timestamped: true, toleranceSeconds: 300 };

async function deliver(path: string, body: string, headers: Record<string, string>) {
  const res = await exports.default.fetch(`http://spindle.test${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function receiver(signature: SignatureConfig, eventKey = "tr:user:created") {
  const name = `hook-${crypto.randomUUID().slice(0, 8)}`;
  const secret = `secret-${crypto.randomUUID()}`;
  const res = await api("PUT", `/api/v1/webhooks/${name}`, { eventKey, secret, signature });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  expect(res.body).toEqual({ name, eventKey, signature, url: `/webhooks/default/${name}` });
  return { name, secret, url: res.body.url as string };
}

const eventsOf = async (key: string) => (await api("GET", `/api/v1/events?key=${encodeURIComponent(key)}&limit=500`)).body.events as any[];

describe("webhook receivers", () => {
  it("turns a delivery with GitHub's X-Hub-Signature-256 into an event that starts its workflow", async () => {
    const hook = await receiver(github);
    // The exact bytes are signed: spacing a JSON parser would drop still counts.
    const body = '{ "name":  "Octo" }';
    const res = await deliver(hook.url, body, { "X-Hub-Signature-256": await sign(github, hook.secret, body) });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.runs).toEqual([{ workflow: "tr-greet", runId: expect.any(String) }]);
    const run = await result(res.body.runs[0].runId);
    expect(run.output).toEqual({ greeted: "Octo" });
    expect(run.additionalMetadata).toMatchObject({ webhook: hook.name, eventKey: "tr:user:created" });
  });

  it("refuses a wrong or missing signature with 401 and creates nothing", async () => {
    const key = `tr:hook:${crypto.randomUUID()}`;
    const hook = await receiver(github, key);
    const body = JSON.stringify({ name: "Mallory" });
    const good = await deliver(hook.url, body, { "X-Hub-Signature-256": await sign(github, hook.secret, body) });
    expect(good.status).toBe(200);
    const wrongSecret = await deliver(hook.url, body, { "X-Hub-Signature-256": await sign(github, "not-the-secret", body) });
    expect(wrongSecret.status).toBe(401);
    expect(wrongSecret.body.error.code).toBe("webhook.unauthorized");
    const tampered = await deliver(hook.url, JSON.stringify({ name: "Eve" }), { "X-Hub-Signature-256": await sign(github, hook.secret, body) });
    expect(tampered.status).toBe(401);
    const missing = await deliver(hook.url, body, {});
    expect(missing.status).toBe(401);
    expect(missing.body.error.message).toContain("missing X-Hub-Signature-256");
    // The bearer token of the tenant is no substitute for the signature.
    expect((await deliver(hook.url, body, { authorization: "Bearer test-token-default" })).status).toBe(401);
    expect((await eventsOf(key)).map((e) => e.eventId)).toEqual([good.body.eventId]);
  });

  it("verifies Stripe-style timestamped signatures, refuses a replay with an old timestamp, and takes a resent delivery once", async () => {
    const key = `tr:stripe:${crypto.randomUUID()}`;
    const hook = await receiver(stripe, key);
    const body = JSON.stringify({ type: "invoice.paid", id: "in_1" });
    const now = Math.floor(Date.now() / 1000);
    const header = await sign(stripe, hook.secret, body, now);
    expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    const first = await deliver(hook.url, body, { "Stripe-Signature": header });
    expect(first.status).toBe(200);
    const resent = await deliver(hook.url, body, { "Stripe-Signature": header });
    expect(resent.status).toBe(200);
    expect(resent.body.eventId).toBe(first.body.eventId);
    const old = await deliver(hook.url, body, { "Stripe-Signature": await sign(stripe, hook.secret, body, now - 3_600) });
    expect(old.status).toBe(401);
    expect(old.body.error.message).toMatch(/timestamp/);
    // The timestamp is signed too: a fresh t= on an old signature does not pass.
    const moved = header.replace(/^t=\d+/, `t=${now + 1}`);
    expect((await deliver(hook.url, body, { "Stripe-Signature": moved })).status).toBe(401);
    expect((await eventsOf(key)).map((e) => e.eventId)).toEqual([first.body.eventId]);
    expect((await eventsOf(key))[0]).toMatchObject({ payload: { type: "invoice.paid", id: "in_1" }, additionalMetadata: { webhook: hook.name } });
  });

  it("accepts base64 signatures, answers 404 for an unknown receiver or tenant, and refuses a bad configuration naming the field", async () => {
    const base64: SignatureConfig = { header: "X-Signature", algorithm: "hmac-sha256", encoding: "base64" };
    const hook = await receiver(base64, `tr:b64:${crypto.randomUUID()}`);
    const body = JSON.stringify({ ok: true });
    expect((await deliver(hook.url, body, { "X-Signature": await sign(base64, hook.secret, body) })).status).toBe(200);
    expect((await deliver("/webhooks/default/no-such-hook", body, {})).status).toBe(404);
    expect((await deliver(`/webhooks/nobody/${hook.name}`, body, {})).status).toBe(404);
    const bad = await api("PUT", "/api/v1/webhooks/bad", { eventKey: "k", secret: "long-enough-secret", signature: { header: "X", algorithm: "md5", encoding: "hex" } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.fields[0].path).toBe("body.signature.algorithm");
    const listed = await api("GET", "/api/v1/webhooks");
    expect(listed.body.map((w: any) => w.name)).toContain(hook.name);
    expect(JSON.stringify(listed.body)).not.toContain(hook.secret);
  });
});
