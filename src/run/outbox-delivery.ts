import type { Env } from "../env";
import type { EnqueueItem, EnqueueReply, TaskQueueIdentity } from "../scheduler/messages";
import type { Waiter } from "../events/event-bus";
import type { IndexEntry } from "./run-index";
import type { OutboxKind, OutboxMessage } from "./outbox";

/** Payloads of the outbox's messages, by kind. */
export interface OutboxPayloads {
  enqueue: { identity: TaskQueueIdentity; items: EnqueueItem[] };
  dequeue: { keys: string[] };
  index: IndexEntry;
  cancel_run: Record<string, never>;
  link_child: { runId: string; task: string; position: number };
  child_ended: ChildEnded;
  child_lost: ChildLost;
  subscribe: { tenant: string; key: string; waiters: Waiter[] };
  unsubscribe: { ids: string[] };
  /** `holders` null: every key the run holds in that flow object (the run ended). */
  flow_release: { tenant: string; runId: string; holders: { id: string; holder: string }[] | null };
  flow_started: { tenant: string; units: { key: string; holder: string }[]; at: number };
}

export interface ChildEnded {
  childRunId: string;
  parentTask: string;
  status: "COMPLETED" | "FAILED" | "CANCELLED";
  output: unknown;
  error: unknown;
}

/** A child's report could not reach its parent within its tries: what the parent is told instead. */
export interface ChildLost {
  childRunId: string;
  parentTask: string;
  status: ChildEnded["status"];
  tries: number;
  error: string;
}

export type DeliveryResult = { kind: "enqueue"; reply: EnqueueReply; items: EnqueueItem[] } | { kind: "other" };

/**
 * Sends a group of outbox messages of one kind to one target. Enqueues to the same task queue are
 * merged into one call.
 */
export async function deliver(env: Env, kind: OutboxKind, target: string, messages: OutboxMessage[]): Promise<DeliveryResult> {
  switch (kind) {
    case "enqueue": {
      const payloads = messages.map((m) => m.payload as OutboxPayloads["enqueue"]);
      const items = payloads.flatMap((p) => p.items);
      // The run is the caller: what is admitted of it at once comes back in the reply.
      const reply = await env.TASK_QUEUES.getByName(target).enqueue(payloads[0]!.identity, items, items[0]?.runId);
      return { kind: "enqueue", reply, items };
    }
    case "dequeue": {
      const keys = messages.flatMap((m) => (m.payload as OutboxPayloads["dequeue"]).keys);
      await env.TASK_QUEUES.getByName(target).remove(keys);
      return { kind: "other" };
    }
    case "index": {
      const latest = messages[messages.length - 1]!.payload as OutboxPayloads["index"];
      await env.RUN_INDEX.getByName(target).upsert(latest);
      return { kind: "other" };
    }
    case "cancel_run":
      await env.RUNS.getByName(target).cancel();
      return { kind: "other" };
    case "link_child": {
      const stub = env.RUNS.getByName(target);
      await stub.linkChildren(messages.map((m) => m.payload as OutboxPayloads["link_child"]));
      return { kind: "other" };
    }
    case "subscribe": {
      const first = messages[0]!.payload as OutboxPayloads["subscribe"];
      const waiters = messages.flatMap((m) => (m.payload as OutboxPayloads["subscribe"]).waiters);
      await env.EVENTS.getByName(target).subscribe(first.tenant, first.key, waiters);
      return { kind: "other" };
    }
    case "unsubscribe": {
      await env.EVENTS.getByName(target).unsubscribe(messages.flatMap((m) => (m.payload as OutboxPayloads["unsubscribe"]).ids));
      return { kind: "other" };
    }
    case "flow_release": {
      const stub = env.FLOW.getByName(target);
      for (const m of messages) {
        const p = m.payload as OutboxPayloads["flow_release"];
        await stub.release(p.tenant, p.runId, p.holders);
      }
      return { kind: "other" };
    }
    case "flow_started": {
      const stub = env.FLOW.getByName(target);
      for (const m of messages) {
        const p = m.payload as OutboxPayloads["flow_started"];
        await stub.started(p.tenant, p.units, p.at);
      }
      return { kind: "other" };
    }
    case "child_ended": {
      const stub = env.RUNS.getByName(target);
      for (const m of messages) await stub.childEnded(m.payload as OutboxPayloads["child_ended"]);
      return { kind: "other" };
    }
    case "child_lost": {
      const stub = env.RUNS.getByName(target);
      for (const m of messages) await stub.childLost(m.payload as OutboxPayloads["child_lost"]);
      return { kind: "other" };
    }
  }
}
