import { flowLimitsName, flowShardOf, needId, type Need } from "../core/flow";
import type { Env } from "../env";
import type { AcquireRequest } from "../flow/limits-store";

/** A task the queue is admitting, with the needs its run resolved (empty for a task with no limits). */
export interface FlowItem {
  key: string;
  runId: string;
  queuedAt: number;
  needs: Need[];
}

export type FlowOutcome =
  | { granted: true }
  | { granted: false; blockedOn: string; reason: string; retryAt: number | null };

/** How soon a task whose flow objects could not be reached is tried again. */
export const FLOW_UNREACHABLE_RETRY_MS = 1_000;

/**
 * Takes every need of each item from the `FlowLimits` objects that hold them (one call per object,
 * in parallel), all or none per item: an item refused anywhere gives back what it took elsewhere
 * before its outcome is returned, so a task that waits holds no key and no unit. A workflow-level
 * key its run already held stays held (it is the run's, not this admission's).
 */
export async function takeFlow(env: Env, tenant: string, queue: string, items: FlowItem[]): Promise<FlowOutcome[]> {
  const byShard = new Map<number, { item: number; request: AcquireRequest }[]>();
  items.forEach((item, i) => {
    const perShard = new Map<number, Need[]>();
    for (const need of item.needs) perShard.set(flowShardOf(need), [...(perShard.get(flowShardOf(need)) ?? []), need]);
    for (const [shard, needs] of perShard) {
      byShard.set(shard, [...(byShard.get(shard) ?? []), { item: i, request: { runId: item.runId, queuedAt: item.queuedAt, needs } }]);
    }
  });
  const outcomes: FlowOutcome[] = items.map(() => ({ granted: true }));
  const taken: { shard: number; ids: Set<string> }[][] = items.map(() => []);
  await Promise.all(
    [...byShard].map(async ([shard, entries]) => {
      try {
        const results = await env.FLOW.getByName(flowLimitsName(tenant, shard)).acquire(tenant, queue, entries.map((e) => e.request));
        results.forEach((r, j) => {
          const i = entries[j]!.item;
          if (r.granted) taken[i]!.push({ shard, ids: new Set(r.taken) });
          else if (outcomes[i]!.granted) outcomes[i] = r;
        });
      } catch (err) {
        console.error(`task queue ${queue}: flow limits ${shard} unreachable`, err);
        for (const e of entries) {
          if (outcomes[e.item]!.granted) {
            outcomes[e.item] = { granted: false, blockedOn: "", reason: "waiting for its flow limits to answer", retryAt: Date.now() + FLOW_UNREACHABLE_RETRY_MS };
          }
        }
      }
    }),
  );
  await Promise.all(
    items.map((item, i) => (outcomes[i]!.granted ? undefined : giveBack(env, tenant, item, (shard, need) => taken[i]!.some((t) => t.shard === shard && t.ids.has(needId(need)))))),
  );
  return outcomes;
}

/**
 * Gives back what an admission took: its attempt's keys and units (`took` says whether this
 * admission took a workflow-level key, which otherwise stays with its run).
 */
export async function giveBack(env: Env, tenant: string, item: FlowItem, took: (shard: number, need: Need) => boolean): Promise<void> {
  const byShard = new Map<number, { holders: { id: string; holder: string }[]; refunds: { key: string; holder: string }[] }>();
  for (const need of item.needs) {
    const shard = flowShardOf(need);
    const own = need.kind === "rate" || need.task !== null || took(shard, need);
    if (!own) continue;
    const entry = byShard.get(shard) ?? { holders: [], refunds: [] };
    if (need.kind === "concurrency") entry.holders.push({ id: need.id, holder: need.holder });
    else entry.refunds.push({ key: need.key, holder: need.holder });
    byShard.set(shard, entry);
  }
  await Promise.all(
    [...byShard].map(([shard, e]) =>
      env.FLOW.getByName(flowLimitsName(tenant, shard))
        .release(tenant, item.runId, e.holders, e.refunds)
        // What is not given back here is freed once its run says it no longer holds it (FlowLimits' holder check).
        .catch((err: unknown) => console.error(`could not give back the flow needs of ${item.key}`, err)),
    ),
  );
}
