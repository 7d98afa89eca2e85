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
  /** How long a slot may stay leased before the queue takes it back (timeout plus grace). */
  leaseMs: number;
}

export interface TaskQueueIdentity {
  tenant: string;
  worker: string;
  pool: Pool;
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
}

export const dispatchKey = (runId: string, task: string, attempt: number, invocation: number): string =>
  `${runId}/${task}/${attempt}/${invocation}`;
