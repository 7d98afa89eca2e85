import { z } from "zod";
import { CONCURRENCY_LIMIT_STRATEGIES, RATE_LIMIT_DURATIONS, type WorkerRegistration } from "@spindle/worker-sdk/protocol";
import { checkExpression, MAX_EXPRESSION_LENGTH } from "../core/cel";
import { MAX_FLOW_KEY_LENGTH } from "../core/flow";
import { MAX_QUEUE_SHARDS } from "../core/names";
import { SpindleError } from "../core/errors";
import { checkInput } from "../core/input-schema";
import { jsonBytes, MAX_DEFINITION_BYTES } from "../core/limits";
import { sha256Hex } from "../core/ids";
import { checkCron, checkFilterExpression } from "../core/triggers";
import type { DeclaredTriggers } from "../triggers/triggers";

/** A registration arrives from another worker: check its shape before trusting any of it. */
const leaf = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("sleep"), durationMs: z.number().int().nonnegative(), key: z.string().optional() }),
  z.object({
    kind: z.literal("event"),
    eventKey: z.string().min(1),
    expression: z.string().optional(),
    scope: z.string().optional(),
    lookbackMs: z.number().int().nonnegative().optional(),
    key: z.string().optional(),
  }),
  z.object({ kind: z.literal("parent"), parent: z.string().min(1), expression: z.string().min(1), key: z.string().optional() }),
]);
const condition = z.union([leaf, z.object({ kind: z.literal("or"), conditions: z.array(leaf).min(1) })]);

const celOrCount = z.union([z.number().int().min(1), z.string().min(1).max(MAX_EXPRESSION_LENGTH)]);
const concurrency = z
  .array(
    z.object({
      expression: z.string().min(1).max(MAX_EXPRESSION_LENGTH),
      maxRuns: celOrCount,
      limitStrategy: z.enum(CONCURRENCY_LIMIT_STRATEGIES),
    }),
  )
  .max(16);
const rateLimits = z
  .array(
    z.union([
      z.object({ staticKey: z.string().min(1).max(MAX_FLOW_KEY_LENGTH), units: celOrCount }),
      z.object({ dynamicKey: z.string().min(1).max(MAX_EXPRESSION_LENGTH), units: celOrCount, limit: celOrCount, duration: z.enum(RATE_LIMIT_DURATIONS) }),
    ]),
  )
  .max(16);

const task = z.object({
  name: z.string().min(1).max(128),
  kind: z.enum(["task", "durable"]),
  role: z.enum(["on_failure", "on_success"]).optional(),
  parents: z.array(z.string()),
  retries: z.number().int().min(0).max(100),
  backoff: z.object({ factor: z.number().positive(), maxSeconds: z.number().positive() }).optional(),
  executionTimeoutMs: z.number().int().positive(),
  scheduleTimeoutMs: z.number().int().positive(),
  priority: z.number().int().min(1).max(3).optional(),
  waitFor: z.array(condition).optional(),
  skipIf: z.array(condition).optional(),
  cancelIf: z.array(condition).optional(),
  concurrency: concurrency.optional(),
  rateLimits: rateLimits.optional(),
  slotCost: z.number().int().min(1).max(10_000).optional(),
});

const workflow = z.object({
  name: z.string().min(1).max(128),
  description: z.string().optional(),
  kind: z.enum(["task", "workflow"]),
  inputSchema: z.record(z.string(), z.unknown()).optional(),
  defaultPriority: z.number().int().min(1).max(3).optional(),
  concurrency: concurrency.optional(),
  tasks: z.array(task).min(1),
  onEvents: z.array(z.string().min(1).max(256)).max(100).optional(),
  onCrons: z.array(z.string().min(1).max(256)).max(100).optional(),
  cronInput: z.unknown().optional(),
  defaultFilters: z.array(z.object({ expression: z.string().min(1), scope: z.string().min(1).max(256).optional(), payload: z.unknown().optional() })).max(100).optional(),
});

export const registrationSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/, "letters, digits, '_' and '-', at most 63"),
  slots: z.number().int().min(0).max(10_000),
  durableSlots: z.number().int().min(0).max(10_000),
  queueShards: z.number().int().min(1).max(MAX_QUEUE_SHARDS).optional(),
  workflows: z.array(workflow),
  sdkVersion: z.string(),
});

export function validateRegistration(raw: unknown): WorkerRegistration {
  const parsed = registrationSchema.safeParse(raw);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => ({ path: ["registration", ...i.path].join("."), message: i.message }));
    throw new SpindleError("registration.invalid", `invalid worker registration: ${fields.map((f) => `${f.path}: ${f.message}`).join("; ")}`, {
      fields,
    });
  }
  // Triggers are checked where they are declared: a cron that does not parse, a filter that does
  // not compile, or a cron input its own schema refuses is a registration error naming it.
  for (const [i, wf] of parsed.data.workflows.entries()) {
    const at = `registration.workflows.${i}`;
    try {
      for (const [j, expression] of (wf.onCrons ?? []).entries()) checkCron(expression, "UTC", { expression: `${at}.onCrons.${j}`, timezone: `${at}.onCrons.${j}` });
      for (const [j, f] of (wf.defaultFilters ?? []).entries()) checkFilterExpression(f.expression, `${at}.defaultFilters.${j}.expression`);
      if (wf.onCrons?.length) {
        try {
          checkInput(wf.inputSchema, wf.cronInput ?? null);
        } catch (err) {
          throw new SpindleError("registration.invalid", `${at}.cronInput: ${(err as Error).message}`, { fields: [{ path: `${at}.cronInput`, message: (err as Error).message }] });
        }
      }
    } catch (err) {
      const e = err as SpindleError;
      throw new SpindleError("registration.invalid", `invalid worker registration: ${e.message}`, { fields: e.fields });
    }
  }
  // Each run keeps its workflow's definition as one value: bound it here, where it is declared.
  for (const [i, wf] of parsed.data.workflows.entries()) {
    checkFlowExpressions(wf, `registration.workflows.${i}`);
    const bytes = jsonBytes(wf);
    if (bytes > MAX_DEFINITION_BYTES) {
      const path = `registration.workflows.${i}`;
      const message = `the definition of '${wf.name}' is ${bytes} bytes; the limit is ${MAX_DEFINITION_BYTES} bytes`;
      throw new SpindleError("registration.invalid", `invalid worker registration: ${path}: ${message}`, { fields: [{ path, message }] });
    }
  }
  return parsed.data as WorkerRegistration;
}

/** The crons and filters a registration declares; a declared filter's id derives from what it is. */
export async function declaredTriggers(registration: WorkerRegistration): Promise<DeclaredTriggers> {
  const crons: DeclaredTriggers["crons"] = [];
  const filters: DeclaredTriggers["filters"] = [];
  for (const wf of registration.workflows) {
    for (const expression of new Set(wf.onCrons ?? [])) crons.push({ workflow: wf.name, expression, input: wf.cronInput ?? null });
    for (const spec of wf.defaultFilters ?? []) {
      const id = `decl-${(await sha256Hex(JSON.stringify([wf.name, spec.expression, spec.scope ?? null, spec.payload ?? null]))).slice(0, 24)}`;
      if (!filters.some((f) => f.id === id)) filters.push({ id, workflow: wf.name, spec });
    }
  }
  return { crons, filters };
}

/** Every CEL expression of a workflow's flow control parses (the SDK checks too; a raw registration may not). */
function checkFlowExpressions(wf: z.infer<typeof workflow>, path: string): void {
  const check = (expression: string | number, at: string) => {
    if (typeof expression !== "string") return;
    try {
      checkExpression(expression);
    } catch (err) {
      const message = (err as Error).message;
      throw new SpindleError("registration.invalid", `invalid worker registration: ${at}: ${message}`, { fields: [{ path: at, message }] });
    }
  };
  const checkConcurrency = (list: z.infer<typeof concurrency> | undefined, at: string) =>
    list?.forEach((c, j) => {
      check(c.expression, `${at}.concurrency.${j}.expression`);
      check(c.maxRuns, `${at}.concurrency.${j}.maxRuns`);
    });
  checkConcurrency(wf.concurrency, path);
  wf.tasks.forEach((t, k) => {
    checkConcurrency(t.concurrency, `${path}.tasks.${k}`);
    t.rateLimits?.forEach((r, j) => {
      const at = `${path}.tasks.${k}.rateLimits.${j}`;
      check(r.units, `${at}.units`);
      if ("dynamicKey" in r) {
        check(r.dynamicKey, `${at}.dynamicKey`);
        check(r.limit, `${at}.limit`);
      }
    });
  });
}
