import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { OTHER_TOKEN, result, TOKEN, trigger } from "./helpers";

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
