import { listDurableObjectIds, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { api } from "./helpers";

/** Every refused request must leave no trace: no run object, no index entry. */
async function expectNoNewRuns(action: () => Promise<void>) {
  const before = (await listDurableObjectIds(env.RUNS)).length;
  const listed = (await api("GET", "/api/v1/runs?limit=500")).body.runs.length;
  await action();
  expect((await listDurableObjectIds(env.RUNS)).length).toBe(before);
  expect((await api("GET", "/api/v1/runs?limit=500")).body.runs.length).toBe(listed);
}

describe("bad triggers", () => {
  it("answers 404 for an unknown workflow", async () => {
    await expectNoNewRuns(async () => {
      const res = await api("POST", "/api/v1/workflows/no-such-workflow/runs", { input: {} });
      expect(res.status).toBe(404);
      expect(res.body.error).toMatchObject({ code: "workflow.not_found" });
      expect(res.body.error.message).toContain("no-such-workflow");
    });
  });

  it("answers 400 naming the field when the input fails the schema", async () => {
    await expectNoNewRuns(async () => {
      const wrongType = await api("POST", "/api/v1/workflows/t-typed/runs", { input: { Message: 42 } });
      expect(wrongType.status).toBe(400);
      expect(wrongType.body.error.code).toBe("input.invalid");
      expect(wrongType.body.error.fields).toEqual([{ path: "input.Message", message: expect.stringContaining("string") }]);

      const missing = await api("POST", "/api/v1/workflows/t-typed/runs", { input: {} });
      expect(missing.status).toBe(400);
      expect(missing.body.error.fields).toEqual([{ path: "input.Message", message: "is required" }]);

      const nested = await api("POST", "/api/v1/workflows/t-typed/runs", { input: { Message: "x", user: { email: "nope" } } });
      expect(nested.status).toBe(400);
      expect(nested.body.error.fields[0].path).toBe("input.user.email");
    });
  });

  it("answers 400 for malformed JSON and for a bad request field", async () => {
    await expectNoNewRuns(async () => {
      const malformed = await api("POST", "/api/v1/workflows/t-echo/runs", undefined, { rawBody: '{"input": {' });
      expect(malformed.status).toBe(400);
      expect(malformed.body.error.code).toBe("request.invalid_json");

      const priority = await api("POST", "/api/v1/workflows/t-echo/runs", { input: {}, priority: 9 });
      expect(priority.status).toBe(400);
      expect(priority.body.error.fields[0].path).toBe("body.priority");

      const unknownField = await api("POST", "/api/v1/workflows/t-echo/runs", { input: {}, colour: "red" });
      expect(unknownField.status).toBe(400);
      expect(unknownField.body.error.message).toContain("colour");

      const notJson = await api("POST", "/api/v1/workflows/t-echo/runs", undefined, { rawBody: "input=1", contentType: "application/x-www-form-urlencoded" });
      expect(notJson.status).toBe(415);
      expect(notJson.body.error.message).toContain("application/json");
    });
  });

  it("answers 401 without a token or with a wrong one", async () => {
    await expectNoNewRuns(async () => {
      const missing = await api("POST", "/api/v1/workflows/t-echo/runs", { input: {} }, { token: null });
      expect(missing.status).toBe(401);
      expect(missing.body.error.code).toBe("auth.missing_token");
      const wrong = await api("POST", "/api/v1/workflows/t-echo/runs", { input: {} }, { token: "not-a-token" });
      expect(wrong.status).toBe(401);
      expect(wrong.body.error.code).toBe("auth.invalid_token");
    });
    for (const path of ["/api/v1/runs", "/api/v1/workflows", "/api/v1/workers", "/api/v1/runs/01JH8X7Q2K3M4N5P6Q7R8S9T0V"]) {
      expect((await api("GET", path, undefined, { token: null })).status).toBe(401);
    }
    // The OpenAPI document is public.
    expect((await api("GET", "/api/v1/openapi.json", undefined, { token: null })).status).toBe(200);
  });

  it("answers 404 for a run id that does not exist or cannot be one", async () => {
    await expectNoNewRuns(async () => {
      expect((await api("GET", "/api/v1/runs/not-a-run-id")).status).toBe(404);
      expect((await api("POST", "/api/v1/runs/not-a-run-id/cancel")).status).toBe(404);
    });
    // A well-formed id reaches its object, which answers without writing a thing.
    const unknown = "01JH8X7Q2K3M4N5P6Q7R8S9T0V";
    const res = await api("GET", `/api/v1/runs/${unknown}`);
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("run.not_found");
    expect((await api("POST", `/api/v1/runs/${unknown}/cancel`)).status).toBe(404);
    expect((await api("POST", `/api/v1/runs/${unknown}/replay`)).status).toBe(404);
    const tables = await runInDurableObject(env.RUNS.getByName(`run:default:${unknown}`), (_instance, state) =>
      state.storage.sql.exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '_cf_%'").toArray(),
    );
    expect(tables).toEqual([]);
  });
});
