import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { registration, taskDef, workflowDef } from "../support/definitions";
import { api, OTHER_TOKEN } from "./helpers";

/**
 * A bound worker belongs to the tenant whose token it holds. A registration pushed by another
 * tenant under that worker's name is refused, so no tenant can route runs to another's code.
 */
describe("a tenant cannot reach another tenant's worker", () => {
  it("refuses a push registration that names another tenant's bound worker, and only that", async () => {
    const def = (name: string) => workflowDef(name, [taskDef(name, [], { executionTimeoutMs: 5_000, scheduleTimeoutMs: 5_000 })], "task");
    const echo = def("t-echo");
    // A registration of the same shape under a name no bound worker holds is accepted: the refusal
    // below is about whose worker it names, not about what it registers.
    const suffix = crypto.randomUUID().slice(0, 8);
    const own = await env.SPINDLE.register(OTHER_TOKEN, registration(`other-${suffix}`, [def(`t-own-${suffix}`)], 5));
    expect(own).toMatchObject({ ok: true, value: { workflows: [`t-own-${suffix}`] } });

    // The worker bound as WORKER_TEST holds the default tenant's token (test-token-default).
    const stolen = await env.SPINDLE.register(OTHER_TOKEN, registration("test", [echo], 5));
    expect(stolen).toEqual({
      ok: false,
      error: expect.objectContaining({
        code: "registry.forbidden",
        message: "worker 'test' is bound to the engine but does not belong to this tenant",
      }),
    });
    const workers = await api("GET", "/api/v1/workers", undefined, { token: OTHER_TOKEN });
    expect(workers.status).toBe(200);
    expect(workers.body.workers.map((w: { name: string }) => w.name)).not.toContain("test");
  });
});
