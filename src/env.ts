import type { EventBus } from "./events/event-bus";
import type { EventIndex } from "./events/event-index";
import type { FlowLimits } from "./flow/flow-limits";
import type { IdempotencyKeys } from "./idempotency/idempotency-keys";
import type { Registry } from "./registry/registry";
import type { WorkflowRun } from "./run/workflow-run";
import type { RunIndex } from "./run/run-index";
import type { TaskQueue } from "./scheduler/task-queue";
import type { Triggers } from "./triggers/triggers";
import type { DispatchMessage } from "./scheduler/messages";
import type { WorkerService } from "./scheduler/worker-service";

export interface Env {
  RUNS: DurableObjectNamespace<WorkflowRun>;
  TASK_QUEUES: DurableObjectNamespace<TaskQueue>;
  REGISTRY: DurableObjectNamespace<Registry>;
  RUN_INDEX: DurableObjectNamespace<RunIndex>;
  EVENTS: DurableObjectNamespace<EventBus>;
  IDEMPOTENCY: DurableObjectNamespace<IdempotencyKeys>;
  TRIGGERS: DurableObjectNamespace<Triggers>;
  EVENT_INDEX: DurableObjectNamespace<EventIndex>;
  FLOW: DurableObjectNamespace<FlowLimits>;
  DISPATCH: Queue<DispatchMessage>;
  DISPATCH_DURABLE: Queue<DispatchMessage>;
  /** The token of the tenant `default` (a secret: `.dev.vars` locally, `wrangler secret put` deployed). */
  SPINDLE_API_TOKEN?: string;
  /** More tenants: JSON `{"tenant": "token"}` (a secret). */
  SPINDLE_TENANTS?: string;
  /** The largest input, output, event payload or memo result, in bytes (default and ceiling 1 MiB). */
  SPINDLE_MAX_PAYLOAD_BYTES?: string;
  /** The largest request body the API reads, in bytes (default 8 MiB); RPC arguments too. */
  SPINDLE_MAX_BODY_BYTES?: string;
  /** Origins allowed to call the API from a browser, comma-separated (`*` for any); CORS is off without it. */
  SPINDLE_CORS_ORIGINS?: string;
  /** Optional: carries the engine's requests to HTTPS workers instead of the global fetch. */
  HTTPS_OUTBOUND?: Fetcher;
  /** Service bindings to workers, one per worker, named `WORKER_<NAME>`. */
  [worker: `WORKER_${string}`]: WorkerService | undefined;
}
