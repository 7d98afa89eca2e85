import { z } from "zod";
import type { WorkerRegistration } from "@spindle/worker-sdk/protocol";
import { SpindleError } from "../core/errors";

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
});

const workflow = z.object({
  name: z.string().min(1).max(128),
  description: z.string().optional(),
  kind: z.enum(["task", "workflow"]),
  inputSchema: z.record(z.string(), z.unknown()).optional(),
  defaultPriority: z.number().int().min(1).max(3).optional(),
  tasks: z.array(task).min(1),
});

export const registrationSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/, "letters, digits, '_' and '-', at most 63"),
  slots: z.number().int().min(0).max(10_000),
  durableSlots: z.number().int().min(0).max(10_000),
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
  return parsed.data as WorkerRegistration;
}
