import { createApp } from "./api/app";
import type { Env } from "./env";
import { consumeDispatch } from "./scheduler/dispatch";
import type { DispatchMessage } from "./scheduler/messages";

export { Engine } from "./rpc/engine";
export { EventBus } from "./events/event-bus";
export { EventIndex } from "./events/event-index";
export { FlowLimits } from "./flow/flow-limits";
export { IdempotencyKeys } from "./idempotency/idempotency-keys";
export { Registry } from "./registry/registry";
export { RunIndex } from "./run/run-index";
export { WorkflowRun } from "./run/workflow-run";
export { TaskQueue } from "./scheduler/task-queue";
export { Triggers } from "./triggers/triggers";
export type { Env } from "./env";

const app = createApp();

export default {
  fetch: (request, env, ctx) => app.fetch(request, env, ctx),
  queue: (batch, env, ctx) => consumeDispatch(batch, env, ctx),
} satisfies ExportedHandler<Env, DispatchMessage>;
