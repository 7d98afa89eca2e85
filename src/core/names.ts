import type { TaskDefinition } from "@spindle/worker-sdk/protocol";

/**
 * Names of Durable Objects and bindings. Every object name carries the tenant, so two tenants can
 * never touch each other's runs, queues or registries.
 */
export type Pool = "regular" | "durable";

export const RUN_INDEX_SHARDS = 4;

export const runObjectName = (tenant: string, runId: string): string => `run:${tenant}:${runId}`;
export const registryName = (tenant: string): string => `registry:${tenant}`;
export const runIndexName = (tenant: string, shard: number): string => `index:${tenant}:${shard}`;
export const idempotencyName = (tenant: string, shard: number): string => `idem:${tenant}:${shard}`;
export const taskQueueName = (tenant: string, worker: string, pool: Pool): string => `tq:${tenant}:${worker}:${pool}`;

/** The engine reaches a worker named `my-worker` through the service binding `WORKER_MY_WORKER`. */
export function workerBindingName(worker: string): string {
  return `WORKER_${worker.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

export function isWorkerBindingName(name: string): boolean {
  return name.startsWith("WORKER_");
}

export const eventBusName = (tenant: string, key: string): string => `events:${tenant}:${key}`;
export const eventIndexName = (tenant: string, shard: number): string => `evindex:${tenant}:${shard}`;
export const triggersName = (tenant: string): string => `triggers:${tenant}`;

/** One waiter per arming of a condition leaf: `${runId}|${task}|${seq}|${list}|${group}|${leaf}|${arming}`. */
export const waiterId = (runId: string, ref: { task: string; seq: number; list: string; group: number; leaf: number; arming: string }): string =>
  `${runId}|${ref.task}|${ref.seq}|${ref.list}|${ref.group}|${ref.leaf}|${ref.arming}`;

/** Durable tasks draw from their own slot pool. */
export function poolOf(def: TaskDefinition): Pool {
  return def.kind === "durable" ? "durable" : "regular";
}
