import { createExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { createApp } from "../../src/api/app";
import { describe, expect, it } from "vitest";
import { api } from "./helpers";

describe("the HTTP API's edges", () => {
  it("answers a wrong method on a known route with 405 and the methods it allows", async () => {
    const res = await exports.default.fetch("http://spindle.test/api/v1/runs/01ARZ3NDEKTSV4RRFFQ69G5FAV", {
      method: "DELETE",
      headers: { authorization: "Bearer test-token-default" },
    });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET, HEAD");
    expect(((await res.json()) as any).error.code).toBe("route.method_not_allowed");
    const put = await api("PUT", "/api/v1/workers");
    expect(put.status).toBe(405);
    // An unknown path is still a 404.
    expect((await api("GET", "/api/v1/nothing-here")).status).toBe(404);
  });

  it("answers CORS for the origins SPINDLE_CORS_ORIGINS names, preflight included, and for no other", async () => {
    const app = createApp();
    const withCors = { ...env, SPINDLE_CORS_ORIGINS: "https://app.example, https://admin.example" };
    const preflight = await app.fetch(
      new Request("http://spindle.test/api/v1/workflows/simple/runs", {
        method: "OPTIONS",
        headers: { origin: "https://app.example", "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
      }),
      withCors,
      createExecutionContext(),
    );
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("https://app.example");
    expect(preflight.headers.get("access-control-allow-headers")).toContain("authorization");
    const get = await app.fetch(
      new Request("http://spindle.test/api/v1/workflows", { headers: { authorization: "Bearer test-token-default", origin: "https://admin.example" } }),
      withCors,
      createExecutionContext(),
    );
    expect(get.status).toBe(200);
    expect(get.headers.get("access-control-allow-origin")).toBe("https://admin.example");
    const other = await app.fetch(
      new Request("http://spindle.test/api/v1/workflows", { headers: { authorization: "Bearer test-token-default", origin: "https://evil.example" } }),
      withCors,
      createExecutionContext(),
    );
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("sends no CORS headers when SPINDLE_CORS_ORIGINS is not set", async () => {
    const res = await exports.default.fetch("http://spindle.test/api/v1/workflows", {
      headers: { authorization: "Bearer test-token-default", origin: "https://app.example" },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("serves the OpenAPI document without a token, every operation named and behind the bearer scheme", async () => {
    const res = await api("GET", "/api/v1/openapi.json", undefined, { token: null });
    expect(res.status).toBe(200);
    const doc = res.body;
    expect(doc.servers).toEqual([{ url: "http://spindle.test", description: "This engine" }]);
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
    const operations = Object.values(doc.paths).flatMap((p: any) => Object.values(p)) as any[];
    expect(operations.length).toBe(37);
    const ids = operations.map((o) => o.operationId);
    expect(ids.every((id) => typeof id === "string" && id.length > 0)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    // A webhook delivery is the one public operation: its signature is the credential.
    const delivery = doc.paths["/webhooks/{tenant}/{name}"].post;
    expect(delivery.operationId).toBe("deliverWebhook");
    expect(delivery.security).toEqual([]);
    for (const op of operations) {
      if (op !== delivery) expect(op.security).toEqual([{ bearer: [] }]);
      expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(["400", "401"]));
    }
    expect(Object.keys(doc.paths["/api/v1/workers"].post.responses)).toEqual(expect.arrayContaining(["200", "409", "415", "502"]));
    expect(Object.keys(doc.paths["/api/v1/workflows/{name}/runs"].post.responses)).toEqual(expect.arrayContaining(["200", "202", "409", "413", "415"]));
    // A write may be refused for a cookie sent from another origin; a read may not.
    expect(Object.keys(doc.paths["/api/v1/runs/cancel"].post.responses)).toEqual(expect.arrayContaining(["200", "403", "415"]));
    expect(Object.keys(doc.paths["/api/v1/runs"].get.responses)).not.toContain("403");
  });
});
