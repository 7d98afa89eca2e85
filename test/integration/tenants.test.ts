import { describe, expect, it } from "vitest";
import { api, OTHER_TOKEN, result, trigger } from "./helpers";

describe("tenants", () => {
  it("keeps one tenant's runs invisible to another", async () => {
    const runId = await trigger("t-echo", { secret: true });
    await result(runId);
    const other = await api("GET", `/api/v1/runs/${runId}`, undefined, { token: OTHER_TOKEN });
    expect(other.status).toBe(404);
    const cancel = await api("POST", `/api/v1/runs/${runId}/cancel`, undefined, { token: OTHER_TOKEN });
    expect(cancel.status).toBe(404);
    const list = await api("GET", "/api/v1/runs?limit=500", undefined, { token: OTHER_TOKEN });
    expect(list.body.runs.map((r: any) => r.runId)).not.toContain(runId);
  });

  it("does not let a tenant run another tenant's workflows", async () => {
    // The test workers hold the default tenant's token; the other tenant has no workflows.
    const res = await api("POST", "/api/v1/workflows/t-echo/runs", { input: {} }, { token: OTHER_TOKEN });
    expect(res.status).toBe(404);
    const workflows = await api("GET", "/api/v1/workflows", undefined, { token: OTHER_TOKEN });
    expect(workflows.body.workflows).toEqual([]);
  });
});
