import type { Need } from "../core/flow";
import type { Pool } from "../core/names";

/** A task attempt (or durable invocation) that is ready to start, as the run hands it to a queue. */
export interface EnqueueItem {
  /** `${runId}/${task}/${attempt}/${invocation}`: unique per dispatch, the idempotency key. */
  key: string;
  runId: string;
  task: string;
  attempt: number;
  invocation: number;
  priority: number;
  enqueuedAt: number;
  /** How long after sending it the queue sends the dispatch again if it has not been released. */
  leaseMs: number;
  /** Slots of the pool it takes (default 1). */
  slotCost?: number;
  /** What it must take from the flow objects before it starts, and its round-robin key. */
  flow?: { needs: Need[]; group: string | null };
}

/**
 * A dispatch the queue has sent and that no consumer has released within this time is sent again
 * (the message may have been lost before any consumer started it: the run refuses a start it has
 * already seen). Once an attempt has started, the run watches it itself (see `run/liveness.ts`).
 */
export const DISPATCH_RESEND_MS = 30_000;

export interface TaskQueueIdentity {
  tenant: string;
  worker: string;
  pool: Pool;
  /** Which of the pool's task queues (0 when it has one). */
  shard?: number;
}

/** The message on the dispatch queue: ids only; the consumer fetches the payload from the run. */
export interface DispatchMessage extends TaskQueueIdentity {
  key: string;
  runId: string;
  task: string;
  attempt: number;
  invocation: number;
}

export interface EnqueueReply {
  /** Set when the queue cannot dispatch now, e.g. no worker has registered for it. */
  blockedReason: string | null;
  /** Tasks of the calling run admitted at once: the run starts them itself (their slots are leased). */
  admitted?: DispatchMessage[];
}

export const dispatchKey = (runId: string, task: string, attempt: number, invocation: number): string =>
  `${runId}/${task}/${attempt}/${invocation}`;
