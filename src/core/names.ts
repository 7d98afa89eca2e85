import type { TaskDefinition } from "@spindle/worker-sdk/protocol";
import { fnv1a } from "./ids";

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
/** A pool's task queue `shard` (shard 0 keeps the unsharded name). */
export const taskQueueName = (tenant: string, worker: string, pool: Pool, shard = 0): string =>
  shard === 0 ? `tq:${tenant}:${worker}:${pool}` : `tq:${tenant}:${worker}:${pool}:${shard}`;

export const MAX_QUEUE_SHARDS = 16;

/** The task queue shard of a run's tasks: by run id. */
export const queueShardOf = (runId: string, shards: number): number => (shards > 1 ? fnv1a(runId) % shards : 0);

/** Shard `shard` of `shards` gets this many of a pool's `slots`. */
export const shardSlots = (slots: number, shards: number, shard: number): number => Math.floor(slots / shards) + (shard < slots % shards ? 1 : 0);

/** The engine reaches a worker named `my-worker` through the service binding `WORKER_MY_WORKER`. */
export function workerBindingName(worker: string): string {
  return `WORKER_${worker.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

export function isWorkerBindingName(name: string): boolean {
  return name.startsWith("WORKER_");
}

export const eventBusName = (tenant: string, key: string): string => `events:${tenant}:${key}`;
/** The event log's shards per tenant (here, not in event-index.ts, so the router's graph holds no Durable Object class). */
export const EVENT_INDEX_SHARDS = 4;
export const eventIndexName = (tenant: string, shard: number): string => `evindex:${tenant}:${shard}`;
export const triggersName = (tenant: string): string => `triggers:${tenant}`;

/** One waiter per arming of a condition leaf: `${runId}|${task}|${seq}|${list}|${group}|${leaf}|${arming}`. */
export const waiterId = (runId: string, ref: { task: string; seq: number; list: string; group: number; leaf: number; arming: string }): string =>
  `${runId}|${ref.task}|${ref.seq}|${ref.list}|${ref.group}|${ref.leaf}|${ref.arming}`;

/** Durable tasks draw from their own slot pool. */
export function poolOf(def: TaskDefinition): Pool {
  return def.kind === "durable" ? "durable" : "regular";
}
