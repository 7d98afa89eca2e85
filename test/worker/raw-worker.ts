import { WorkerEntrypoint } from "cloudflare:workers";
import type { Assignment, TaskOutcome, WorkerDescription, WorkflowDefinition } from "@spindle/worker-sdk/protocol";
import { count } from "./workflows";

/**
 * A worker written against the wire protocol, without the SDK, to prove what the engine does on
 * its own: `t-raw-hang` never answers, `t-raw-late` answers success long after its timeout.
 * (`t-raw-hang` answers after 30 s, far past its 300 ms timeout.)
 */
const TIMEOUT_MS = 300;

const definition = (name: string, retries = 0): WorkflowDefinition => ({
  name,
  kind: "task",
  tasks: [{ name, kind: "task", parents: [], retries, executionTimeoutMs: TIMEOUT_MS, scheduleTimeoutMs: 60_000 }],
});

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export class RawWorker extends WorkerEntrypoint<{ SPINDLE_API_TOKEN: string }> {
  async describe(): Promise<WorkerDescription> {
    return {
      registration: {
        name: "raw",
        slots: 10,
        durableSlots: 0,
        sdkVersion: "raw",
        workflows: [definition("t-raw-hang"), definition("t-raw-late", 1)],
      },
      tokenHash: await sha256Hex(this.env.SPINDLE_API_TOKEN),
    };
  }

  async execute(a: Assignment): Promise<TaskOutcome> {
    count(`${a.workflowName}:${a.runId}:started`);
    if (a.workflowName === "t-raw-hang") {
      // Answers only after 30 s (a pending timer, so workerd does not take it for a hung promise).
      await new Promise<void>((resolve) => setTimeout(resolve, 30_000));
      return { status: "completed", output: { released: true }, logs: [] };
    }
    await new Promise((r) => setTimeout(r, TIMEOUT_MS * 3));
    count(`${a.workflowName}:${a.runId}:answered`);
    return { status: "completed", output: { late: a.attempt }, logs: [{ at: Date.now(), level: "info", message: `late answer of attempt ${a.attempt}` }] };
  }
}
