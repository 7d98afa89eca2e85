import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { constantTimeEqual, sign, verifySignature, type SignatureConfig } from "../../src/core/webhook-signature";

const github: SignatureConfig = { header: "X-Hub-Signature-256", algorithm: "hmac-sha256", encoding: "hex", prefix: "sha256=" };
const stripe: SignatureConfig = { header: "Stripe-Signature", algorithm: "hmac-sha256", encoding: "hex", timestamped: true };
const bytes = (s: string) => new TextEncoder().encode(s);

describe("webhook signatures", () => {
  it("accepts GitHub's format as GitHub computes it, over the raw body", async () => {
    const body = '{"action":"opened"}';
    const header = `sha256=${createHmac("sha256", "s3cret").update(body).digest("hex")}`;
    expect(await sign(github, "s3cret", body)).toBe(header);
    expect(await verifySignature(github, "s3cret", bytes(body), header, Date.now())).toEqual({ ok: true });
    expect((await verifySignature(github, "s3cret", bytes(`${body} `), header, Date.now())).ok).toBe(false);
    expect((await verifySignature(github, "other", bytes(body), header, Date.now())).ok).toBe(false);
    expect(await verifySignature(github, "s3cret", bytes(body), null, Date.now())).toEqual({ ok: false, reason: "missing X-Hub-Signature-256 header" });
    expect((await verifySignature(github, "s3cret", bytes(body), header.slice(7), Date.now())).ok).toBe(false);
  });

  it("accepts Stripe's format within the tolerance and refuses an old timestamp", async () => {
    const body = '{"type":"charge.succeeded"}';
    const now = 1_800_000_000_000;
    const t = now / 1000;
    const header = `t=${t},v1=${createHmac("sha256", "whsec").update(`${t}.${body}`).digest("hex")}`;
    expect(await sign(stripe, "whsec", body, t)).toBe(header);
    expect(await verifySignature(stripe, "whsec", bytes(body), `${header},v0=ignored`, now + 60_000)).toEqual({ ok: true });
    expect(await verifySignature(stripe, "whsec", bytes(body), header, now + 301_000)).toMatchObject({ ok: false, reason: expect.stringMatching(/timestamp/) });
    expect((await verifySignature(stripe, "whsec", bytes(body), "v1=abc", now)).ok).toBe(false);
  });

  it("compares equal-length values in full", () => {
    expect(constantTimeEqual(bytes("abc"), bytes("abc"))).toBe(true);
    expect(constantTimeEqual(bytes("abc"), bytes("abd"))).toBe(false);
    expect(constantTimeEqual(bytes("abc"), bytes("ab"))).toBe(false);
  });
});
