import { describe, expect, it } from "vitest";
import { api } from "./helpers";

describe("the OpenAPI document", () => {
  it("describes every route with its request and response schemas", async () => {
    const res = await api("GET", "/api/v1/openapi.json");
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe("3.1.0");
    expect(Object.keys(res.body.paths).sort()).toEqual([
      "/api/v1/concurrency",
      "/api/v1/crons",
      "/api/v1/crons/{id}",
      "/api/v1/events",
      "/api/v1/events/bulk",
      "/api/v1/events/{eventId}",
      "/api/v1/filters",
      "/api/v1/filters/{id}",
      "/api/v1/live/index/{shard}",
      "/api/v1/live/runs/{runId}",
      "/api/v1/rate-limits",
      "/api/v1/rate-limits/{key}",
      "/api/v1/runs",
      "/api/v1/runs/bulk",
      "/api/v1/runs/cancel",
      "/api/v1/runs/replay",
      "/api/v1/runs/{runId}",
      "/api/v1/runs/{runId}/cancel",
      "/api/v1/runs/{runId}/replay",
      "/api/v1/runs/{runId}/result",
      "/api/v1/runs/{runId}/stream",
      "/api/v1/schedules",
      "/api/v1/schedules/{id}",
      "/api/v1/webhooks",
      "/api/v1/webhooks/{name}",
      "/api/v1/workers",
      "/api/v1/workflows",
      "/api/v1/workflows/{name}/crons",
      "/api/v1/workflows/{name}/runs",
      "/api/v1/workflows/{name}/schedules",
      "/webhooks/{tenant}/{name}",
    ]);
    // A webhook delivery takes no bearer token: its signature is the credential.
    expect(res.body.paths["/webhooks/{tenant}/{name}"].post.security).toEqual([]);
    expect(res.body.paths["/api/v1/workflows/{name}/crons"].post.responses["201"].content["application/json"].schema.$ref).toBe("#/components/schemas/CronCreated");
    const trigger = res.body.paths["/api/v1/workflows/{name}/runs"].post;
    expect(trigger.requestBody.content["application/json"].schema.$ref).toBe("#/components/schemas/TriggerRun");
    expect(Object.keys(trigger.responses)).toEqual(expect.arrayContaining(["202", "400", "401", "404"]));
    expect(res.body.components.schemas.Run.properties.tasks).toBeDefined();
    // Both routes that create something take an Idempotency-Key and say when it conflicts.
    for (const route of [trigger, res.body.paths["/api/v1/events"].post]) {
      expect(route.parameters).toEqual(expect.arrayContaining([expect.objectContaining({ name: "Idempotency-Key", in: "header", required: false })]));
      expect(Object.keys(route.responses)).toContain("409");
    }
  });
});
