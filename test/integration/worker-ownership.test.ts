import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { effects } from "../worker/workflows";
import { registration, taskDef, workflowDef } from "../support/definitions";
import { api, OTHER_TOKEN, result } from "./helpers";

/**
 * A bound worker belongs to the tenant whose token it holds. A registration pushed by another
 * tenant under that worker's name is refused, so no tenant can route runs to another's code.
 */
describe("a tenant cannot reach another tenant's worker", () => {
  it("refuses (or never dispatches) a push registration that names another tenant's bound worker", async () => {
    // The worker bound as WORKER_TEST holds the default tenant's token (test-token-default).
    const reply = await env.SPINDLE.register(OTHER_TOKEN, registration("test", [workflowDef("t-echo", [taskDef("t-echo", [], { executionTimeoutMs: 5_000, scheduleTimeoutMs: 5_000 })], "task")], 5));
    const res = await api("POST", "/api/v1/workflows/t-echo/runs", { input: { stolen: true } }, { token: OTHER_TOKEN });
    if (!reply.ok || res.status !== 202) return; // refused: what we want
    const run = await result(res.body.runId, { token: OTHER_TOKEN });
    // The default tenant's t-echo body must not have run for the other tenant's run.
    expect(effects.get(`t-echo:${res.body.runId}`), "default tenant's task code ran for tenant 'other'").toBeUndefined();
    expect(run.status).not.toBe("COMPLETED");
  });
});
