import { child, childWorkflows } from "./children";
import { dag } from "./dag";
import { dagConditions, durableEvent, durableFanout, durableOr, durableSleep, fanoutChild, welcomeEmail } from "./durable";
import { durableCheckout, slowTask } from "./effects";
import {
  concurrencyCancelInProgress,
  concurrencyCancelNewest,
  concurrencyMultipleKeys,
  concurrencyRr,
  rateLimit,
  rateLimitStatic,
  slotCost,
} from "./flow";
import { onFailure, onSuccess } from "./hooks";
import { nonRetryable, retries } from "./retries";
import { simple } from "./simple";
import { spindle } from "./spindle";
import { stream } from "./stream";
import { cancellation, timeout } from "./timeout";
import { onCron, onEvent, orderAudit } from "./triggers";

/**
 * The example worker. Its default export is the entrypoint the engine dispatches to (through the
 * engine's WORKER_EXAMPLE binding); the engine learns these workflows by asking it.
 */
export default spindle.worker({
  name: "example",
  slots: 100,
  workflows: [
    simple,
    dag,
    retries,
    nonRetryable,
    timeout,
    cancellation,
    onFailure,
    onSuccess,
    child,
    childWorkflows,
    durableSleep,
    durableEvent,
    durableOr,
    fanoutChild,
    durableFanout,
    welcomeEmail,
    dagConditions,
    slowTask,
    durableCheckout,
    onEvent,
    orderAudit,
    onCron,
    concurrencyRr,
    concurrencyCancelInProgress,
    concurrencyCancelNewest,
    concurrencyMultipleKeys,
    rateLimit,
    rateLimitStatic,
    slotCost,
    stream,
  ],
});
